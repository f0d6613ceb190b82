"""Posterior draws of a fitted SVI model as ArviZ ``InferenceData``: the guide's draws replayed
through the model (posterior, deterministic sites, posterior predictive, pointwise
log-likelihood, observed and constant data).

Draws are vectorized over a ``_draws`` plate left of the model's plates (a family's models are
written for that) or replayed one at a time (a user's program, whose code may not be), in chunks,
so memory stays bounded by ``draw_batch`` draws at a time. :func:`draw_traces` is shared with
the PSIS diagnostic.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine

from bayesvae.data.validation import check_positive_int
from bayesvae.infer.coords import check_coords, label_dims, present_dims
from bayesvae.models.contract import ModelContract
from bayesvae.models.program import (
    PyroProgram,
    inspect_sites,
    named_inputs,
    program_inputs,
    site_dims,
)

__all__ = ["svi_to_inference_data", "draw_traces", "prepare_inputs", "sample_sites"]

_DRAWS = "_draws"
logger = logging.getLogger(__name__)


def prepare_inputs(
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


def draw_traces(
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


def sample_sites(trace: Any) -> dict[str, dict[str, Any]]:
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and type(site["fn"]).__name__ != "_Subsample" and name != _DRAWS
    }


def _is_deterministic(site: dict[str, Any]) -> bool:
    return bool(site["infer"].get("_deterministic")) if "infer" in site else False


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
    coords: dict[str, Any] | None = None,
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
        coords: labels of named dims, ``{dim: labels}`` (a plate's name is its dim, e.g.
            ``{"school": names}``); checked against the dims (see :func:`label_dims`). A program
            argument called ``coords`` must then be passed positionally.

    Returns:
        ``InferenceData`` with ``posterior`` (latent and ``pyro.deterministic`` sites),
        ``posterior_predictive``, ``observed_data``, ``log_likelihood`` (one variable per
        observed site, pointwise, for LOO/WAIC), and for a program ``constant_data`` (its tensor
        arguments that are not observed); one chain (the draws are independent; no R-hat
        pretends otherwise), dims named after the plates, coordinates from ``arviz_dims()``.
    """
    import arviz as az

    num_samples = check_positive_int("num_samples", num_samples)
    coords_given = check_coords(coords)
    args, kwargs = prepare_inputs(model, data, kwargs)
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
            guide_trace, model_trace = draw_traces(model, args, kwargs, chunk, draw_state)
            for name, site in sample_sites(model_trace).items():
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
    if isinstance(model, PyroProgram):  # its pandas inputs' labels, where their dims are
        coords_given = {**present_dims(idata, model.input_coords), **coords_given}
    return label_dims(idata, coords_given)


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
        if torch.is_tensor(value) and name not in observed
    }
