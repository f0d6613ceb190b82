"""SVI diagnostics: posterior draws from a guide as ArviZ ``InferenceData``, guide quality by
Pareto-smoothed importance sampling (k̂), and ELBO convergence.

Draws are vectorized over a ``_draws`` plate left of the model's plates and taken in chunks, so
memory stays bounded by ``draw_batch`` draws at a time.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine

__all__ = [
    "svi_to_inference_data",
    "psis_diagnostic",
    "PSISResult",
    "elbo_convergence",
    "KHAT_GOOD",
    "KHAT_USABLE",
]

KHAT_GOOD, KHAT_USABLE = 0.5, 0.7
_DRAWS = "_draws"


def _prepare(model: Any, data: tuple[Any, ...]) -> tuple[torch.Tensor, ...]:
    check = getattr(model, "check_data", None)
    tensors = check(*data) if (check is not None and data) else data
    device = model.device if hasattr(model, "device") else torch.device("cpu")
    return tuple(torch.as_tensor(t).to(device) for t in (tensors or ()))


def _vectorized_traces(model: Any, data: tuple[torch.Tensor, ...], draws: int) -> tuple[Any, Any]:
    """Guide and replayed model traces with a leading plate of ``draws`` draws."""
    nesting = getattr(model, "max_plate_nesting", None) or 0
    with pyro.plate(_DRAWS, draws, dim=-(nesting + 1)):
        guide_trace = poutine.trace(model.guide).get_trace(*data)
        model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(*data)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    return guide_trace, model_trace


def _sample_sites(trace: Any) -> dict[str, dict[str, Any]]:
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and type(site["fn"]).__name__ != "_Subsample" and name != _DRAWS
    }


def _site_dims(name: str, site: dict[str, Any], rest: tuple[int, ...], event_dim: int) -> list[str]:
    """Dim names for a value shaped ``rest`` (without the draws): plate names where a plate
    owns the dimension, ``<site>_dim_<i>`` otherwise."""
    batch_len = len(rest) - event_dim
    plates = {frame.dim: frame.name for frame in site["cond_indep_stack"] if frame.name != _DRAWS}
    names = []
    for i in range(len(rest)):
        relative = i - batch_len  # negative for batch dims
        if i < batch_len and relative in plates:
            names.append(plates[relative])
        else:
            names.append(f"{name}_dim_{i}")
    return names


@torch.no_grad()
def svi_to_inference_data(
    model: Any,
    *data: Any,
    num_samples: int = 500,
    draw_batch: int = 100,
    posterior_predictive: bool = True,
    seed: int = 0,
) -> Any:
    """ArviZ ``InferenceData`` from the guide of a fitted SVI model.

    Args:
        model: a fitted model family (``model``/``guide``/``check_data``; optional
            ``arviz_dims()`` for coordinates and ``max_plate_nesting``).
        data: the data the model conditions on (all of it is passed in one call; for large data
            sets pass a subset: memory grows with ``draw_batch x N``).
        num_samples: guide draws; ``draw_batch`` of them are drawn at a time.
        posterior_predictive: also draw the observed sites from the model given each draw.

    Returns:
        ``InferenceData`` with ``posterior`` (latent sites), ``posterior_predictive``,
        ``observed_data`` and ``log_likelihood`` (pointwise, for LOO/WAIC), one chain (the draws
        are independent; no R-hat pretends otherwise), dims named after the plates.
    """
    import arviz as az

    tensors = _prepare(model, data)
    pyro.set_rng_seed(seed)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    posterior: dict[str, list[np.ndarray]] = {}
    predictive: dict[str, list[np.ndarray]] = {}
    log_lik: dict[str, list[np.ndarray]] = {}
    observed: dict[str, np.ndarray] = {}
    dims: dict[str, list[str]] = {}
    log_lik_dims: dict[str, list[str]] = {}
    try:
        done = 0
        while done < num_samples:
            chunk = min(draw_batch, num_samples - done)
            guide_trace, model_trace = _vectorized_traces(model, tensors, chunk)
            for name, site in _sample_sites(model_trace).items():
                if site["is_observed"]:
                    log_prob = site["log_prob"].expand(chunk, *site["log_prob"].shape[1:])
                    log_lik.setdefault(name, []).append(log_prob.cpu().numpy())
                    observed[name] = site["value"].cpu().numpy()
                    dims.setdefault(
                        name,
                        _site_dims(name, site, tuple(site["value"].shape), site["fn"].event_dim),
                    )
                    log_lik_dims[name] = _site_dims(name, site, tuple(log_prob.shape[1:]), 0)
                    if posterior_predictive:
                        draw = site["fn"].sample()
                        predictive.setdefault(name, []).append(draw.cpu().numpy())
                elif name in guide_trace.nodes:
                    value = site["value"]
                    value = value.expand(chunk, *value.shape[1:]) if value.dim() else value
                    posterior.setdefault(name, []).append(value.cpu().numpy())
                    dims.setdefault(
                        name, _site_dims(name, site, tuple(value.shape[1:]), site["fn"].event_dim)
                    )
            done += chunk
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    coords, model_dims = model.arviz_dims() if hasattr(model, "arviz_dims") else ({}, {})
    dims.update(model_dims or {})

    def stack(group: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts)[None] for name, parts in group.items()}

    with warnings.catch_warnings():  # one chain: ArviZ notes that R-hat is unavailable
        warnings.simplefilter("ignore", UserWarning)
        idata = az.from_dict(
            posterior=stack(posterior),
            posterior_predictive=stack(predictive) if posterior_predictive else None,
            observed_data=observed,
            coords=coords or None,
            dims=dims,
        )
        # the pointwise log-likelihood has the observed site's plate dims only
        idata.add_groups(
            log_likelihood=az.from_dict(
                posterior=stack(log_lik),
                coords=coords or None,
                dims={
                    **log_lik_dims,
                    **{k: v for k, v in (model_dims or {}).items() if k in log_lik},
                },
            ).posterior
        )
    return idata


@dataclass(frozen=True)
class PSISResult:
    """Pareto k̂ of the importance weights ``p(x, z) / q(z)`` (Yao et al. 2018).

    ``khat``: one value for the joint (models without per-data-point latents), or ``None``;
    ``khat_per_point``: ``(N,)`` for amortized local latents (weights ``p(x_n, z_n) / q(z_n | x_n)``
    per data point), or ``None``. ``verdict``: "good" (k̂ < 0.5), "usable" (< 0.7) or
    "untrustworthy", from the joint k̂ or the worst per-point k̂.
    """

    khat: float | None
    khat_per_point: np.ndarray | None
    verdict: str
    num_samples: int

    @property
    def share_bad_points(self) -> float | None:
        """Share of data points with k̂ >= 0.7 (amortized models)."""
        if self.khat_per_point is None:
            return None
        return float(np.mean(self.khat_per_point >= KHAT_USABLE))


def _verdict(khat: float) -> str:
    if khat < KHAT_GOOD:
        return "good"
    return "usable" if khat < KHAT_USABLE else "untrustworthy"


@torch.no_grad()
def psis_diagnostic(
    model: Any,
    *data: Any,
    num_samples: int = 1000,
    local_plate: str | None = None,
    draw_batch: int = 250,
    seed: int = 0,
) -> PSISResult:
    """Guide quality by Pareto-smoothed importance sampling.

    Draws ``z ~ q`` and fits a generalized Pareto to the tail of ``log p(x, z) - log q(z)``.
    With ``local_plate`` (the plate of amortized per-data-point latents, e.g. ``"data"``;
    default: the model's ``local_plate`` attribute), the weights are per data point and so is
    k̂; otherwise one k̂ for the joint.
    """
    import arviz as az

    tensors = _prepare(model, data)
    local_plate = local_plate if local_plate is not None else getattr(model, "local_plate", None)
    pyro.set_rng_seed(seed)
    chunks = []
    done = 0
    while done < num_samples:
        chunk = min(draw_batch, num_samples - done)
        guide_trace, model_trace = _vectorized_traces(model, tensors, chunk)
        total = None
        for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for _, site in _sample_sites(trace).items():
                log_prob = site["log_prob"]
                if local_plate is not None:
                    frames = [f for f in site["cond_indep_stack"] if f.name == local_plate]
                    if not frames:
                        raise ValueError(
                            f"site {site['name']!r} is outside plate "
                            f"{local_plate!r}: per-point k̂ needs every latent to "
                            "be local."
                        )
                    # keep the draws and the local plate's dims, sum everything else
                    keep = {0, log_prob.dim() + frames[0].dim}
                    reduce = [d for d in range(log_prob.dim()) if d not in keep]
                    log_prob = log_prob.sum(reduce) if reduce else log_prob
                else:
                    log_prob = (
                        log_prob.reshape(log_prob.shape[0], -1).sum(-1)
                        if log_prob.dim() > 1
                        else log_prob.expand(chunk)
                    )
                total = sign * log_prob if total is None else total + sign * log_prob
        chunks.append(total.cpu().double().numpy())
        done += chunk
    log_weights = np.concatenate(chunks, axis=0)  # (S,) or (S, N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _, khat = az.psislw(np.moveaxis(log_weights, 0, -1))
    khat = np.asarray(khat, dtype=float)
    if local_plate is not None:
        return PSISResult(None, khat, _verdict(float(khat.max())), num_samples)
    value = float(khat)
    return PSISResult(value, None, _verdict(value), num_samples)


def elbo_convergence(
    history: Any, *, column: str = "train_elbo", window: int | None = None, rtol: float = 1e-3
) -> dict[str, Any]:
    """Plateau test on a smoothed ELBO curve.

    The curve is smoothed by a moving average over ``window`` epochs (default: a tenth of them,
    at least 2); the relative change between the means of the last two windows,
    ``|m_last - m_before| / |m_last|``, must be below ``rtol`` to count as converged.
    """
    import pandas as pd

    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if column not in frame:
        raise ValueError(f"history has no column {column!r}; columns: {list(frame.columns)}.")
    values = frame[column].to_numpy(dtype=float)
    window = window or max(2, len(values) // 10)
    if len(values) < 2 * window:
        return {
            "converged": False,
            "relative_change": math.nan,
            "window": window,
            "reason": f"too few epochs ({len(values)}) for two windows of {window}",
        }
    last, before = values[-window:].mean(), values[-2 * window : -window].mean()
    change = abs(last - before) / max(abs(last), 1e-12)
    smoothed = np.convolve(values, np.ones(window) / window, mode="valid")
    converged = bool(change < rtol)
    return {
        "converged": converged,
        "relative_change": float(change),
        "window": window,
        "smoothed": smoothed,
        "reason": (
            f"relative change {change:.2e} over the last {window} epochs "
            + ("<" if converged else ">=")
            + f" {rtol:g}"
        ),
    }
