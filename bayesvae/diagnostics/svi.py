"""SVI diagnostics: posterior draws from a guide as ArviZ ``InferenceData``, guide quality by
Pareto-smoothed importance sampling (k̂), and ELBO convergence.

Draws are vectorized over a ``_draws`` plate left of the model's plates and taken in chunks, so
memory stays bounded by ``draw_batch`` draws at a time.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine

from bayesvae.data.validation import check_positive_int
from bayesvae.models.contract import ModelContract
from bayesvae.models.program import (
    PyroProgram,
    inspect_sites,
    named_inputs,
    program_inputs,
    site_dims,
)

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
logger = logging.getLogger(__name__)


def _prepare(
    model: ModelContract, data: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A family's data through its ``check_data``; a program's arguments as
    :func:`~bayesvae.models.program.program_inputs` makes them; both moved to the model's
    device."""
    device = model.device
    if isinstance(model, PyroProgram):
        args, kwargs = program_inputs(model.model_fn, data, kwargs)
        if model.max_plate_nesting is None:
            model.max_plate_nesting = inspect_sites(model.model, args, kwargs).nesting
    else:
        if kwargs:
            raise TypeError(f"{type(model).__name__} takes data arrays only, got {sorted(kwargs)}.")
        args = tuple(model.check_data(*data)) if data else ()
        args = tuple(torch.as_tensor(t) for t in args)
    move = lambda v: v.to(device) if torch.is_tensor(v) else v  # noqa: E731
    return tuple(move(a) for a in args), {k: move(v) for k, v in kwargs.items()}


def _vectorized_traces(
    model: ModelContract, args: tuple[Any, ...], kwargs: dict[str, Any], draws: int
) -> tuple[Any, Any]:
    """Guide and replayed model traces with a leading plate of ``draws`` draws."""
    nesting = model.max_plate_nesting or 0
    with pyro.plate(_DRAWS, draws, dim=-(nesting + 1)):
        guide_trace = poutine.trace(model.guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    return guide_trace, model_trace


def _looped_traces(
    model: ModelContract, args: tuple[Any, ...], kwargs: dict[str, Any], draws: int
) -> tuple[Any, Any]:
    """The same as :func:`_vectorized_traces` for programs that cannot take a batch of draws
    (``X @ beta`` with a batched ``beta``, ...): one draw at a time, stacked into traces whose
    sites carry a leading ``draws`` dimension (values, log densities, posterior predictive)."""
    guide_traces, model_traces = [], []
    for _ in range(draws):
        guide_trace = poutine.trace(model.guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
        guide_trace.compute_log_prob()
        model_trace.compute_log_prob()
        guide_traces.append(guide_trace)
        model_traces.append(model_trace)
    return _stack_traces(guide_traces), _stack_traces(model_traces)


class _StackedSite(dict):
    """A site of several single-draw traces stacked along a new leading dimension."""


class _StackedTrace:
    def __init__(self, nodes: dict[str, dict[str, Any]]) -> None:
        self.nodes = nodes


class _StackedFn:
    """Stands in for a site's distribution: ``sample()`` stacks one draw from each trace's."""

    def __init__(self, fns: list[Any]) -> None:
        self.fns = fns
        self.event_dim = fns[0].event_dim

    def sample(self) -> torch.Tensor:
        return torch.stack([fn.sample() for fn in self.fns])


def _stack_traces(traces: list[Any]) -> _StackedTrace:
    nodes = {}
    for name, site in traces[0].nodes.items():
        if site["type"] != "sample" or type(site["fn"]).__name__ == "_Subsample":
            continue
        stacked = _StackedSite(site)
        stacked["value"] = (
            site["value"]  # observed data are the same in every draw
            if site["is_observed"] and not _is_deterministic(site)
            else torch.stack([t.nodes[name]["value"] for t in traces])
        )
        stacked["log_prob"] = torch.stack([t.nodes[name]["log_prob"] for t in traces])
        stacked["fn"] = _StackedFn([t.nodes[name]["fn"] for t in traces])
        stacked["cond_indep_stack"] = site["cond_indep_stack"]
        stacked["_looped"] = True
        nodes[name] = stacked
    return _StackedTrace(nodes)


def _draw_traces(
    model: ModelContract, args: tuple[Any, ...], kwargs: dict[str, Any], draws: int, state: dict
) -> tuple[Any, Any]:
    """Vectorized draws where the model takes them, else one at a time (logged once).

    A family's model is written for a batch of draws; a user's program may not be, and ordinary
    code can run under a batch of draws and still compute the wrong thing (``theta[group]``
    indexes the draws). So a program's draws are one at a time unless ``state["vectorize"]``.
    """
    if isinstance(model, PyroProgram) and not state.get("vectorize"):
        state["looped"] = True
    if not state.get("looped"):
        try:
            return _vectorized_traces(model, args, kwargs, draws)
        except (RuntimeError, ValueError, IndexError) as err:
            state["looped"] = True
            logger.info(
                "posterior draws one at a time: the model does not take a batch of draws (%s: %s)",
                type(err).__name__,
                str(err).splitlines()[0] if str(err) else "",
            )
    return _looped_traces(model, args, kwargs, draws)


def _sample_sites(trace: Any) -> dict[str, dict[str, Any]]:
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and type(site["fn"]).__name__ != "_Subsample" and name != _DRAWS
    }


def _is_deterministic(site: dict[str, Any]) -> bool:
    return bool(site["infer"].get("_deterministic")) if "infer" in site else False


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


def _tidy(
    name: str, site: dict[str, Any], value: torch.Tensor, chunk: int, nesting: int = 0
) -> tuple[np.ndarray, list[str]]:
    """A site's value under the draws, ``(chunk, *batch, *event)``, with the size-1 batch slots
    that no plate of the site owns removed (the draws plate left of every plate leaves one per
    outer plate a site is not in), and the dim names of what remains (plate names where a plate
    owns the dim, ``<site>_dim_<i>`` otherwise; a scalar site has none). A
    ``pyro.deterministic`` value's trailing dims beyond the ``nesting`` plate slots are its event
    dims (Pyro counts all of them as event dims)."""
    if site["infer"].get("_deterministic"):
        event_dim = max(0, value.dim() - 1 - nesting)
    else:
        event_dim = site["fn"].event_dim
    if value.dim() == 0:
        value = value.expand(chunk)
    elif value.shape[0] != chunk:
        value = value.expand(chunk, *value.shape[1:])
    batch = list(value.shape[1 : value.dim() - event_dim])
    plates = {f.dim: f.name for f in site["cond_indep_stack"] if f.name != _DRAWS and f.vectorized}
    keep, names = [0], []
    for i, size in enumerate(batch):
        relative = i - len(batch)
        if relative in plates:
            keep.append(1 + i)
            names.append(plates[relative])
        elif size != 1:
            keep.append(1 + i)
            names.append(f"{name}_dim_{len(names)}")
    drop = [1 + i for i in range(len(batch)) if 1 + i not in keep]
    for dim in reversed(drop):
        value = value.squeeze(dim)
    for _ in range(event_dim):
        names.append(f"{name}_dim_{len(names)}")
    return value.detach().cpu().numpy(), names


@torch.no_grad()
def svi_to_inference_data(
    model: ModelContract,
    *data: Any,
    num_samples: int = 500,
    draw_batch: int = 100,
    posterior_predictive: bool = True,
    seed: int = 0,
    vectorize: bool | None = None,
    **kwargs: Any,
) -> Any:
    """ArviZ ``InferenceData`` from the guide of a fitted SVI model.

    Args:
        model: a fitted model: a family, or a :class:`~bayesvae.models.program.PyroProgram`
            (``FitResult.model``).
        data, kwargs: the data the model conditions on — a family's arrays, or a program's own
            arguments (all of it is passed in one call; memory grows with ``draw_batch x N``).
        num_samples: guide draws; ``draw_batch`` of them are drawn at a time, vectorized over a
            plate left of the model's plates, or one by one.
        vectorize: draw a batch at once (``True``; falls back to one at a time, logged, when the
            model fails under it) or one at a time (``False``). Default: vectorized for a
            family, one at a time for a user's program (whose code may not be written for a
            batch of draws, e.g. ``theta[group]``; pass ``True`` when it is, for speed).
        posterior_predictive: also draw the observed sites from the model given each draw.

    Returns:
        ``InferenceData`` with ``posterior`` (latent and ``pyro.deterministic`` sites),
        ``posterior_predictive``, ``observed_data``, ``log_likelihood`` (one variable per
        observed site, pointwise, for LOO/WAIC), and for a program ``constant_data`` (its tensor
        arguments that are not observed); one chain (the draws are independent; no R-hat
        pretends otherwise), dims named after the plates, coordinates from ``arviz_dims()``.
    """
    import arviz as az

    num_samples = check_positive_int("num_samples", num_samples)
    args, kwargs = _prepare(model, data, kwargs)
    pyro.set_rng_seed(seed)
    was_training = model.training
    model.eval()
    posterior: dict[str, list[np.ndarray]] = {}
    predictive: dict[str, list[np.ndarray]] = {}
    log_lik: dict[str, list[np.ndarray]] = {}
    observed: dict[str, np.ndarray] = {}
    dims: dict[str, list[str]] = {}
    log_lik_dims: dict[str, list[str]] = {}
    draw_state: dict[str, Any] = {"vectorize": vectorize, "looped": vectorize is False}
    try:
        done = 0
        while done < num_samples:
            chunk = min(draw_batch, num_samples - done)
            guide_trace, model_trace = _draw_traces(model, args, kwargs, chunk, draw_state)
            for name, site in _sample_sites(model_trace).items():
                if site["is_observed"] and not _is_deterministic(site):
                    log_prob, log_prob_dims = _tidy(name, _as_event0(site), site["log_prob"], chunk)
                    log_lik.setdefault(name, []).append(log_prob)
                    log_lik_dims[name] = log_prob_dims
                    value = site["value"]  # the data: no draws dimension
                    observed[name] = value.detach().cpu().numpy()
                    dims.setdefault(name, site_dims(name, site, tuple(value.shape)))
                    if posterior_predictive:
                        draw, _ = _tidy(name, site, site["fn"].sample(), chunk)
                        predictive.setdefault(name, []).append(draw)
                elif name in guide_trace.nodes or _is_deterministic(site):
                    nesting = model.max_plate_nesting or 0
                    value, value_dims = _tidy(name, site, site["value"], chunk, nesting)
                    posterior.setdefault(name, []).append(value)
                    dims.setdefault(name, value_dims)
            done += chunk
    finally:
        model.train(was_training)
    coords, model_dims = model.arviz_dims()
    dims.update(model_dims or {})
    constant = _constant_data(model, args, kwargs, set(observed))

    def stack(group: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts)[None] for name, parts in group.items()}

    with warnings.catch_warnings():  # one chain: ArviZ notes that R-hat is unavailable
        warnings.simplefilter("ignore", UserWarning)
        idata = az.from_dict(
            posterior=stack(posterior),
            posterior_predictive=stack(predictive) if posterior_predictive else None,
            observed_data=observed,
            constant_data=constant or None,
            coords=coords or None,
            dims={k: v for k, v in dims.items() if k in posterior or k in observed},
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


class _Event0:
    event_dim = 0


def _as_event0(site: dict[str, Any]) -> dict[str, Any]:
    """The site with event_dim 0 (a log density has no event dims)."""
    return {**site, "fn": _Event0(), "infer": {}}


def _constant_data(
    model: ModelContract, args: tuple[Any, ...], kwargs: dict[str, Any], observed: set[str]
) -> dict[str, np.ndarray]:
    """A program's tensor arguments, by parameter name, except those passed as observations."""
    if not isinstance(model, PyroProgram):
        return {}
    named = named_inputs(model.model_fn, args, kwargs)
    return {
        name: value.detach().cpu().numpy()
        for name, value in named.items()
        if torch.is_tensor(value) and name not in observed and not _is_obs_arg(name, observed)
    }


def _is_obs_arg(name: str, observed: set[str]) -> bool:
    """An argument named like an observed site (``y`` for site ``y``, or ``obs``) is the data
    being modelled, not a constant."""
    return name in observed or name in ("obs", "observations")


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

    args, kwargs = _prepare(model, data, kwargs)
    local_plate = local_plate if local_plate is not None else model.local_plate
    pyro.set_rng_seed(seed)
    chunks = []
    done = 0
    draw_state: dict[str, Any] = {"vectorize": vectorize, "looped": vectorize is False}
    while done < num_samples:
        chunk = min(draw_batch, num_samples - done)
        guide_trace, model_trace = _draw_traces(model, args, kwargs, chunk, draw_state)
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
