"""SVI diagnostics: guide quality by Pareto-smoothed importance sampling (k̂) and ELBO
convergence. The guide's draws as ArviZ ``InferenceData`` come from
:func:`bayesvae.infer.posterior.svi_to_inference_data` (re-exported here)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import torch

from bayesvae.infer.posterior import (
    draw_traces,
    prepare_inputs,
    sample_sites,
    svi_to_inference_data,
)
from bayesvae.models.contract import ModelContract

__all__ = [
    "svi_to_inference_data",
    "psis_diagnostic",
    "PSISResult",
    "elbo_convergence",
    "KHAT_GOOD",
    "KHAT_USABLE",
]

KHAT_GOOD, KHAT_USABLE = 0.5, 0.7


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
    model: ModelContract,
    *data: Any,
    num_samples: int = 1000,
    local_plate: str | None = None,
    draw_batch: int = 250,
    seed: int = 0,
    vectorize: bool | None = None,
    **kwargs: Any,
) -> PSISResult:
    """Guide quality by Pareto-smoothed importance sampling.

    Draws ``z ~ q`` and fits a generalized Pareto to the tail of ``log p(x, z) - log q(z)``;
    ``data``/``kwargs`` and ``vectorize`` as in :func:`svi_to_inference_data`.
    With ``local_plate`` (the plate of amortized per-data-point latents, e.g. ``"data"``;
    default: the model's ``local_plate`` attribute), the weights are per data point and so is
    k̂; otherwise one k̂ for the joint.
    """
    import arviz as az

    args, kwargs = prepare_inputs(model, data, kwargs)
    local_plate = local_plate if local_plate is not None else model.local_plate
    pyro.set_rng_seed(seed)
    chunks = []
    done = 0
    draw_state: dict[str, Any] = {"vectorize": vectorize, "looped": vectorize is False}
    while done < num_samples:
        chunk = min(draw_batch, num_samples - done)
        guide_trace, model_trace = draw_traces(model, args, kwargs, chunk, draw_state)
        total = None
        for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for _, site in sample_sites(trace).items():
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
