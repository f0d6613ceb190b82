"""NUTS on Pyro, the engine of :func:`bayesvae.infer.mcmc.mcmc` with ``backend="pyro"``: one
``pyro.infer.MCMC`` per chain, run one after another, and a program's ArviZ groups built by
replaying every draw through it (so any program works). torch and Pyro are imported only when
it runs.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from bayesvae.infer.mcmc import NUTSRun

__all__ = ["pyro_family_nuts", "pyro_program_nuts"]


def _pyro_init(run: NUTSRun) -> Any:
    """Pyro's init strategy for ``run``: its starting values, else its named strategy."""
    import torch
    from pyro.infer.autoguide.initialization import (
        init_to_feasible,
        init_to_median,
        init_to_uniform,
        init_to_value,
    )

    if run.init_values is not None:
        return init_to_value(values={k: torch.as_tensor(v) for k, v in run.init_values.items()})
    return {"median": init_to_median, "uniform": init_to_uniform, "feasible": init_to_feasible}[
        run.init_strategy
    ]


def pyro_family_nuts(model: Any, tensors: tuple[torch.Tensor, ...], run: NUTSRun) -> Any:
    """NUTS on a family's Pyro ``model.model(*tensors)``, chain by chain, as ArviZ data
    (``az.from_pyro`` per chain, concatenated)."""
    import arviz as az

    chains = []
    samplers = _pyro_chains(model.model, tensors, {}, run, model.max_plate_nesting)
    for sampler in samplers:
        with warnings.catch_warnings():  # arviz notes that one chain cannot give R-hat
            warnings.simplefilter("ignore", UserWarning)
            chains.append(az.from_pyro(sampler, coords=run.coords, dims=run.dims))
    return chains[0] if run.num_chains == 1 else az.concat(*chains, dim="chain")


def _pyro_chains(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: NUTSRun,
    max_plate_nesting: int | None,
) -> Any:
    """One Pyro ``MCMC`` per chain, run one after another, seeded ``seed + chain``."""
    import pyro
    from pyro.infer import MCMC, NUTS

    for chain in range(run.num_chains):
        pyro.set_rng_seed(run.seed + chain)
        sampler = MCMC(
            NUTS(
                fn,
                target_accept_prob=run.target_accept_prob,
                init_strategy=_pyro_init(run),
                max_plate_nesting=max_plate_nesting,
                full_mass=run.dense_mass,
                max_tree_depth=run.max_tree_depth,
                jit_compile=run.jit_compile,
                ignore_jit_warnings=run.jit_compile,
            ),
            num_samples=run.num_samples,
            warmup_steps=run.num_warmup,
            disable_progbar=not run.progress,
        )
        with warnings.catch_warnings():
            if run.jit_compile:  # Pyro's compiler is torch.jit.trace, deprecated in torch 2.9
                warnings.filterwarnings(
                    "ignore",
                    message=r".*torch\.jit\.trace.* is deprecated",
                    category=DeprecationWarning,
                )
            sampler.run(*args, **kwargs)
        yield sampler


def pyro_program_nuts(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: NUTSRun,
    num_prior_draws: int,
) -> Any:
    """NUTS on a Pyro program, as ArviZ data built here: posterior (and deterministic sites),
    pointwise log-likelihood, posterior predictive, observed and constant data, prior groups,
    divergences. Draws are replayed through the program one at a time, so any program works."""
    import arviz as az
    import pyro
    import torch

    from bayesvae.models.program import inspect_sites, named_inputs, site_dims

    with pyro.validation_enabled(True):
        sites = inspect_sites(fn, args, kwargs)
    if not sites.observed:
        raise ValueError(
            "the model samples no observed site (no pyro.sample with obs= given data); "
            "there is nothing to condition on."
        )
    chains, diverging = [], []
    for sampler in _pyro_chains(fn, args, kwargs, run, sites.nesting):
        chains.append({k: v.detach().cpu() for k, v in sampler.get_samples().items()})
        flags = np.zeros(run.num_samples, dtype=bool)
        for index in sampler.diagnostics().get("divergences", {}).get("chain 0", []):
            flags[index] = True
        diverging.append(flags)
    pyro.set_rng_seed(run.seed + run.num_chains)
    replayed = [_replay(fn, args, kwargs, draws, sites) for draws in chains]
    names = list(chains[0])
    posterior = {n: np.stack([c[n].numpy() for c in chains]) for n in names}
    for name in sites.deterministic:
        posterior[name] = np.stack([r["deterministic"][name] for r in replayed])
    log_lik = {n: np.stack([r["log_lik"][n] for r in replayed]) for n in sites.observed}
    predictive = {n: np.stack([r["predictive"][n] for r in replayed]) for n in sites.observed}
    trace = sites.trace
    dims = {
        n: site_dims(n, trace.nodes[n], tuple(trace.nodes[n]["value"].shape), None, sites.nesting)
        for n in [*names, *sites.deterministic, *sites.observed]
    }
    log_lik_dims = {
        n: site_dims(n, trace.nodes[n], tuple(log_lik[n].shape[2:]), event_dim=0)
        for n in sites.observed
    }
    observed = {n: trace.nodes[n]["value"].detach().cpu().numpy() for n in sites.observed}
    constant = {
        name: value.detach().cpu().numpy()
        for name, value in named_inputs(fn, args, kwargs).items()
        if torch.is_tensor(value) and name not in sites.observed
    }
    prior, prior_predictive = {}, {}
    if num_prior_draws:
        from pyro.infer import Predictive

        with torch.no_grad():
            draws = Predictive(fn, num_samples=num_prior_draws, parallel=False)(*args, **kwargs)
        prior = {n: v[None].numpy() for n, v in draws.items() if n not in sites.observed}
        prior_predictive = {n: v[None].numpy() for n, v in draws.items() if n in sites.observed}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata = az.from_dict(
            posterior=posterior,
            posterior_predictive=predictive,
            sample_stats={"diverging": np.stack(diverging)},
            observed_data=observed,
            constant_data=constant or None,
            prior=prior or None,
            prior_predictive=prior_predictive or None,
            dims=dims,
        )
        # the pointwise log-likelihood has the observed site's batch dims only
        idata.add_groups(
            log_likelihood=az.from_dict(posterior=log_lik, dims=log_lik_dims).posterior
        )
    return idata


def _replay(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    draws: dict[str, torch.Tensor],
    sites: Any,
) -> dict[str, dict[str, np.ndarray]]:
    """Run the program once per posterior draw, conditioned on it: deterministic values, the
    observed sites' pointwise log densities and a posterior predictive draw of each."""
    import torch
    from pyro import poutine

    count = len(next(iter(draws.values())))
    out: dict[str, dict[str, list[np.ndarray]]] = {
        "deterministic": {n: [] for n in sites.deterministic},
        "log_lik": {n: [] for n in sites.observed},
        "predictive": {n: [] for n in sites.observed},
    }
    with torch.no_grad():
        for i in range(count):
            conditioned = poutine.condition(fn, data={k: v[i] for k, v in draws.items()})
            trace = poutine.trace(conditioned).get_trace(*args, **kwargs)
            for name in sites.deterministic:
                out["deterministic"][name].append(trace.nodes[name]["value"].numpy())
            for name in sites.observed:
                site = trace.nodes[name]
                out["log_lik"][name].append(site["fn"].log_prob(site["value"]).numpy())
                out["predictive"][name].append(site["fn"].sample().numpy())
    return {group: {n: np.stack(v) for n, v in values.items()} for group, values in out.items()}
