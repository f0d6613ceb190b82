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
from scipy.special import logsumexp

from bayesvae.data.validation import check_positive_int
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
    "importance_log_weights",
    "sandwich",
    "Sandwich",
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

    @classmethod
    def from_log_weights(cls, log_weights: np.ndarray) -> PSISResult:
        """k̂ from :func:`importance_log_weights`: ``(S,)`` gives the joint k̂, ``(S, N)`` one per
        data point. The joint weights of per-point ones are ``log_weights.sum(1)``."""
        import arviz as az

        log_weights = np.asarray(log_weights, dtype=float)
        if log_weights.ndim not in (1, 2):
            raise ValueError(f"log_weights must be (S,) or (S, N), got {log_weights.shape}.")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _, khat = az.psislw(np.moveaxis(log_weights, 0, -1))
        khat = np.asarray(khat, dtype=float)
        num_samples = int(log_weights.shape[0])
        if log_weights.ndim == 2:
            return cls(None, khat, _verdict(float(khat.max())), num_samples)
        value = float(khat)
        return cls(value, None, _verdict(value), num_samples)

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
def importance_log_weights(
    model: ModelContract,
    *data: Any,
    num_samples: int = 1000,
    local_plate: str | None = None,
    draw_batch: int = 250,
    seed: int = 0,
    vectorize: bool | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """``log p(x, z_s) - log q(z_s)`` for ``num_samples`` guide draws ``z_s ~ q``: ``(S,)`` for
    the joint, or ``(S, N)`` per data point of ``local_plate`` (every latent must sit in it);
    ``data``/``kwargs`` and ``vectorize`` as in :func:`svi_to_inference_data`."""
    args, kwargs = prepare_inputs(model, data, kwargs)
    num_samples = check_positive_int("num_samples", num_samples)
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
                            f"{local_plate!r}: per-point weights need every latent to "
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
    return np.concatenate(chunks, axis=0)


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
    local_plate = local_plate if local_plate is not None else model.local_plate
    log_weights = importance_log_weights(
        model,
        *data,
        num_samples=num_samples,
        local_plate=local_plate,
        draw_batch=draw_batch,
        seed=seed,
        vectorize=vectorize,
        **kwargs,
    )
    return PSISResult.from_log_weights(log_weights)


@dataclass(frozen=True)
class Sandwich:
    """Bounds on ``log p(x)`` from the same ``num_samples`` guide draws, in nats: ``elbo`` (the
    mean log weight) ``<= iwae`` (``log`` of the mean weight: the importance-sampled estimate,
    itself a stochastic lower bound) ``<= log p(x) <= cubo`` (the χ² upper bound,
    ``log(mean w²) / 2``, which holds as the draws grow). Each is ``(N,)`` per data point of
    ``local_plate``, or ``(1,)`` for the whole data set."""

    elbo: np.ndarray
    iwae: np.ndarray
    cubo: np.ndarray
    num_samples: int
    local_plate: str | None

    @classmethod
    def from_log_weights(cls, log_weights: np.ndarray, local_plate: str | None) -> Sandwich:
        """The bounds from :func:`importance_log_weights`: ``(S,)`` for the data set, ``(S, N)``
        per data point of ``local_plate``."""
        log_weights = np.asarray(log_weights, dtype=float)
        if log_weights.ndim not in (1, 2):
            raise ValueError(f"log_weights must be (S,) or (S, N), got {log_weights.shape}.")
        if log_weights.ndim == 1:
            log_weights = log_weights[:, None]
        log_k = math.log(log_weights.shape[0])
        return cls(
            elbo=log_weights.mean(0),
            iwae=logsumexp(log_weights, axis=0) - log_k,
            cubo=(logsumexp(2.0 * log_weights, axis=0) - log_k) / 2.0,
            num_samples=int(log_weights.shape[0]),
            local_plate=local_plate,
        )

    @property
    def width(self) -> np.ndarray:
        """``cubo - elbo`` per row: how far apart the bounds are (0 for the exact posterior)."""
        return self.cubo - self.elbo

    def to_frame(self) -> Any:
        """A DataFrame with columns ``elbo``, ``iwae``, ``cubo``, ``width``, one row per data
        point (or one for the data set)."""
        import pandas as pd

        return pd.DataFrame(
            {"elbo": self.elbo, "iwae": self.iwae, "cubo": self.cubo, "width": self.width}
        )

    def summary(self) -> dict[str, Any]:
        """Means over rows (per data point) of each bound and the width, plain floats."""
        return {
            "elbo": float(self.elbo.mean()),
            "iwae": float(self.iwae.mean()),
            "cubo": float(self.cubo.mean()),
            "width": float(self.width.mean()),
            "num_samples": self.num_samples,
            "local_plate": self.local_plate,
            "rows": int(self.elbo.size),
        }


def sandwich(
    model: ModelContract,
    *data: Any,
    num_samples: int = 1000,
    local_plate: str | None = None,
    seed: int = 0,
    vectorize: bool | None = None,
    **kwargs: Any,
) -> Sandwich:
    """``ELBO <= log p(x) <= CUBO`` for a fitted guide, per data point where every latent sits in
    ``local_plate`` (default: the model's ``local_plate``), else for the whole data set.

    ``data``/``kwargs`` as in :func:`svi_to_inference_data` (a family's data arrays ``x: (N,
    ...)``, or a program's arguments). A narrow sandwich says the guide is close to the
    posterior and ``iwae`` is a trustworthy ``log p(x)``; a wide one says neither bound can be
    read as the evidence. The CUBO estimate is biased low for few draws (a log of a mean), so
    ``num_samples`` should be large.
    """
    local_plate = local_plate if local_plate is not None else model.local_plate
    log_weights = importance_log_weights(
        model,
        *data,
        num_samples=num_samples,
        local_plate=local_plate,
        seed=seed,
        vectorize=vectorize,
        **kwargs,
    )
    return Sandwich.from_log_weights(log_weights, local_plate)


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
