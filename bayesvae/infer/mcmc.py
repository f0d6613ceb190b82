"""NUTS for the small models: NumPyro (default, jitted, chains vectorized or parallel) or Pyro.

Both give an :class:`MCMCResult` holding ArviZ ``InferenceData`` (posterior, sample_stats,
observed_data, log_likelihood) with named dims, and warn when the chains look unconverged.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bayesvae.data.validation import check_choice, check_positive_int

__all__ = [
    "mcmc",
    "MCMCResult",
    "ConvergenceWarning",
    "convergence_problems",
    "RHAT_THRESHOLD",
    "ESS_THRESHOLD",
]

logger = logging.getLogger(__name__)

RHAT_THRESHOLD = 1.01
ESS_THRESHOLD = 400
BACKENDS = ("numpyro", "pyro")


class ConvergenceWarning(UserWarning):
    """MCMC chains show R-hat > 1.01, bulk/tail ESS < 400 or divergent transitions."""


@dataclass
class MCMCResult:
    """Posterior draws from NUTS.

    Attributes:
        samples: site name -> array ``(chains, draws, ...)``.
        inference_data: the ArviZ ``InferenceData``.
        backend, num_chains, num_samples, num_warmup, seconds: how it ran.
        problems: convergence problems found (each also issued as a :class:`ConvergenceWarning`).
    """

    samples: dict[str, np.ndarray]
    inference_data: Any
    backend: str
    num_chains: int
    num_samples: int
    num_warmup: int
    seconds: float
    problems: list[str] = field(default_factory=list)

    def to_inference_data(self) -> Any:
        """The ArviZ ``InferenceData`` (chains honestly counted)."""
        return self.inference_data

    def summary(self, **kwargs: Any) -> Any:
        """``arviz.summary`` of the posterior: mean, sd, HDI, MCSE, ESS bulk/tail, R-hat."""
        import arviz as az

        return az.summary(self.inference_data, **kwargs)


def convergence_problems(idata: Any) -> list[str]:
    """R-hat > 1.01 (with 2+ chains), bulk or tail ESS < 400, and divergences, as sentences."""
    import arviz as az

    problems = []
    posterior = idata.posterior
    if posterior.sizes["chain"] > 1:
        rhat = az.rhat(idata)
        worst = {name: float(rhat[name].max()) for name in rhat.data_vars}
        bad = {k: round(v, 4) for k, v in worst.items() if not v <= RHAT_THRESHOLD}
        if bad:
            problems.append(
                f"R-hat above {RHAT_THRESHOLD} for {bad}: the chains disagree; "
                "run longer or reparameterize."
            )
    for method in ("bulk", "tail"):
        ess = az.ess(idata, method=method)
        low = {
            name: round(float(ess[name].min()))
            for name in ess.data_vars
            if float(ess[name].min()) < ESS_THRESHOLD
        }
        if low:
            problems.append(f"{method} ESS below {ESS_THRESHOLD} for {low}: draw more samples.")
    if "sample_stats" in idata.groups() and "diverging" in idata.sample_stats:
        divergent = int(idata.sample_stats["diverging"].sum())
        if divergent:
            problems.append(
                f"{divergent} divergent transitions: raise target_accept_prob or "
                "reparameterize; the posterior may be biased."
            )
    return problems


def mcmc(
    model: Any,
    *data: Any,
    backend: str = "numpyro",
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    target_accept_prob: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> MCMCResult:
    """Sample the posterior of ``model`` given ``data`` with NUTS.

    Args:
        model: a model family with ``model(*data)`` and, for ``backend="numpyro"``,
            ``numpyro_model()`` returning its NumPyro twin; ``check_data`` validates ``data``;
            ``arviz_dims()`` (optional) returns ``(coords, dims)`` for named dimensions.
        data: the model's data arrays.
        backend: ``"numpyro"`` (jitted; chains in parallel across devices when there are enough,
            else vectorized) or ``"pyro"`` (chains run one after another).
        target_accept_prob: NUTS step-size target; default: the model's
            ``nuts_target_accept_prob`` if it has one (funnel-shaped hierarchical posteriors need
            0.95-0.99), else 0.8.
        seed: chains are seeded from it; the same seed gives the same draws on CPU.

    Optional hooks on ``model``: ``nuts_init_values()`` (site -> constrained value: every chain
    starts there instead of at random), ``max_plate_nesting`` (Pyro enumeration), and
    ``postprocess_posterior(idata)`` (e.g. mixture relabelling) applied before diagnostics.
    """

    check_choice("backend", backend, BACKENDS)
    num_warmup = check_positive_int("num_warmup", num_warmup)
    num_samples = check_positive_int("num_samples", num_samples)
    num_chains = check_positive_int("num_chains", num_chains)
    if target_accept_prob is None:
        target_accept_prob = getattr(model, "nuts_target_accept_prob", 0.8)
    if not 0 < target_accept_prob < 1:
        raise ValueError(f"target_accept_prob must lie in (0, 1), got {target_accept_prob}.")
    check = getattr(model, "check_data", None)
    tensors = tuple(check(*data)) if check is not None else tuple(torch.as_tensor(d) for d in data)
    coords, dims = model.arviz_dims() if hasattr(model, "arviz_dims") else (None, None)
    started = time.perf_counter()
    run = _NUTSRun(
        num_warmup, num_samples, num_chains, target_accept_prob, seed, progress, coords, dims
    )
    sampler = _numpyro_nuts if backend == "numpyro" else _pyro_nuts
    idata = sampler(model, tensors, run)
    postprocess = getattr(model, "postprocess_posterior", None)
    if postprocess is not None:  # e.g. relabel mixture components before any diagnostic
        idata = postprocess(idata)
    seconds = time.perf_counter() - started
    samples = {name: idata.posterior[name].to_numpy() for name in idata.posterior.data_vars}
    problems = convergence_problems(idata)
    for problem in problems:
        warnings.warn(problem, ConvergenceWarning, stacklevel=2)
    return MCMCResult(
        samples=samples,
        inference_data=idata,
        backend=backend,
        num_chains=num_chains,
        num_samples=num_samples,
        num_warmup=num_warmup,
        seconds=seconds,
        problems=problems,
    )


@dataclass(frozen=True)
class _NUTSRun:
    """Settings shared by both backends' samplers."""

    num_warmup: int
    num_samples: int
    num_chains: int
    target_accept_prob: float
    seed: int
    progress: bool
    coords: Any
    dims: Any


def _init_values(model: Any) -> dict[str, Any] | None:
    hook = getattr(model, "nuts_init_values", None)
    return None if hook is None else hook()


def _numpyro_nuts(model: Any, tensors: tuple[torch.Tensor, ...], run: _NUTSRun) -> Any:
    import arviz as az
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    if not hasattr(model, "numpyro_model"):
        raise ValueError(f"{type(model).__name__} has no NumPyro twin; use backend='pyro'.")
    from numpyro.infer import init_to_uniform, init_to_value

    chain_method = "parallel" if jax.local_device_count() >= run.num_chains else "vectorized"
    init_values = _init_values(model)
    init_strategy = (
        init_to_uniform  # each backend's default
        if init_values is None
        else init_to_value(values={k: jnp.asarray(v) for k, v in init_values.items()})
    )
    sampler = MCMC(
        NUTS(
            model.numpyro_model(),
            target_accept_prob=run.target_accept_prob,
            init_strategy=init_strategy,
        ),
        num_warmup=run.num_warmup,
        num_samples=run.num_samples,
        num_chains=run.num_chains,
        chain_method=chain_method,
        progress_bar=run.progress,
    )
    sampler.run(
        jax.random.PRNGKey(run.seed),
        *(jnp.asarray(t.numpy()) for t in tensors),
        extra_fields=("diverging", "energy", "num_steps"),
    )
    return az.from_numpyro(sampler, coords=run.coords, dims=run.dims)


def _pyro_nuts(model: Any, tensors: tuple[torch.Tensor, ...], run: _NUTSRun) -> Any:
    import arviz as az
    import pyro
    from pyro.infer import MCMC, NUTS
    from pyro.infer.autoguide.initialization import init_to_uniform, init_to_value

    init_values = _init_values(model)
    init_strategy = (
        init_to_uniform  # each backend's default
        if init_values is None
        else init_to_value(values={k: torch.as_tensor(v) for k, v in init_values.items()})
    )
    chains = []
    for chain in range(run.num_chains):
        pyro.set_rng_seed(run.seed + chain)
        sampler = MCMC(
            NUTS(
                model.model,
                target_accept_prob=run.target_accept_prob,
                init_strategy=init_strategy,
                max_plate_nesting=getattr(model, "max_plate_nesting", None),
            ),
            num_samples=run.num_samples,
            warmup_steps=run.num_warmup,
            disable_progbar=not run.progress,
        )
        sampler.run(*tensors)
        with warnings.catch_warnings():  # arviz notes that one chain cannot give R-hat
            warnings.simplefilter("ignore", UserWarning)
            chains.append(az.from_pyro(sampler, coords=run.coords, dims=run.dims))
    return chains[0] if run.num_chains == 1 else az.concat(*chains, dim="chain")
