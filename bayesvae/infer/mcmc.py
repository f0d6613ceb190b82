"""NUTS for the small models: NumPyro (default, jitted, chains vectorized or parallel) or Pyro.

Both give an :class:`MCMCResult` holding ArviZ ``InferenceData`` (posterior, sample_stats,
observed_data, log_likelihood) with named dims, and warn when the chains look unconverged.
torch and Pyro are imported only by the paths that run Pyro: a family's NumPyro twin, given a
torch-free spec (an A/B test's), samples without them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesvae.data.validation import check_choice, check_positive_int
from bayesvae.infer.coords import check_coords, label_dims, present_dims
from bayesvae.models.contract import ModelContract, PyroProgramLike

if TYPE_CHECKING:
    import torch

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
BFMI_THRESHOLD = 0.3
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
    #: a user's program as sampled (its callable) and its ``(args, kwargs)``; ``None`` for a family
    model: Any = None
    data: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def to_inference_data(self) -> Any:
        """The ArviZ ``InferenceData`` (chains honestly counted)."""
        return self.inference_data

    def summary(self, **kwargs: Any) -> Any:
        """``arviz.summary`` of the posterior: mean, sd, HDI, MCSE, ESS bulk/tail, R-hat."""
        import arviz as az

        return az.summary(self.inference_data, **kwargs)


def convergence_problems(idata: Any) -> list[str]:
    """R-hat > 1.01 (with 2+ chains), bulk or tail ESS < 400, divergences and (where the sampler
    records energy) E-BFMI < 0.3, as sentences."""
    import arviz as az

    problems = []
    posterior = idata.posterior
    # elements fixed by construction (a Cholesky factor's unit diagonal and zero upper
    # triangle) have no R-hat or ESS: they are left out rather than reported as NaN
    varying = {
        name: (posterior[name].std(("chain", "draw")) > 0).to_numpy()
        for name in posterior.data_vars
    }

    def worst(stats: Any, pick: Any) -> dict[str, float]:
        out = {}
        for name in stats.data_vars:
            values = np.asarray(stats[name].to_numpy(), dtype=np.float64)[varying[name]]
            if values.size:
                out[name] = float(pick(values))
        return out

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(idata) if posterior.sizes["chain"] > 1 else None
        ess = {method: az.ess(idata, method=method) for method in ("bulk", "tail")}
    if rhat is not None:
        bad = {k: round(v, 4) for k, v in worst(rhat, np.nanmax).items() if not v <= RHAT_THRESHOLD}
        if bad:
            problems.append(
                f"R-hat above {RHAT_THRESHOLD} for {bad}: the chains disagree; "
                "run longer or reparameterize."
            )
    for method in ("bulk", "tail"):
        low = {
            name: round(value)
            for name, value in worst(ess[method], np.nanmin).items()
            if value < ESS_THRESHOLD
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
    if "sample_stats" in idata.groups() and "energy" in idata.sample_stats:
        bfmi = np.atleast_1d(az.bfmi(idata))
        low = [round(float(v), 3) for v in bfmi if v < BFMI_THRESHOLD]
        if low:
            problems.append(
                f"energy BFMI below {BFMI_THRESHOLD} in {len(low)} chain(s) ({low}): the sampler "
                "explores the tails poorly; reparameterize (e.g. non-centered)."
            )
    return problems


INIT_STRATEGIES = ("median", "uniform", "feasible")
DENSE_MASS_CHOICES = ("laplace",)
LAPLACE_NEEDS_NUMPYRO = "dense_mass='laplace' runs on backend='numpyro'; use True on 'pyro'."


def mcmc(
    model: Any,
    *data: Any,
    backend: str | None = None,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    target_accept_prob: float | None = None,
    dense_mass: bool | str | None = None,
    max_tree_depth: int = 10,
    jit_compile: bool = False,
    init_strategy: str | dict[str, Any] | None = None,
    num_prior_draws: int = 500,
    seed: int = 0,
    progress: bool = False,
    coords: dict[str, Any] | None = None,
    model_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> MCMCResult:
    """Sample the posterior of ``model`` given ``data`` with NUTS.

    Args:
        model: a user's program — a Pyro callable (Pyro NUTS) or a NumPyro callable (NumPyro
            NUTS), told apart by which library's ``sample`` it calls — given its own arguments
            ``*data, **kwargs`` (an argument named like an option goes in ``model_kwargs``); or a
            bayesvae family with ``model(*data)``, whose ``check_data`` validates ``data`` and
            whose NumPyro twin :func:`bayesvae.backends.numpyro.nuts_model` finds. An A/B
            family's torch-free spec (e.g. ``BetaBinomialSpec``) samples on ``"numpyro"``
            without importing torch or Pyro.
        backend: ``"numpyro"`` (compiled; chains in parallel across devices when there are
            enough, else one after another in one compiled program, or NumPyro's own way with
            ``progress``) or ``"pyro"`` (chains one after another). Default: the program's own
            library; ``"numpyro"`` for a family. A program given the other library's backend is
            refused (``TypeError``).
        target_accept_prob: NUTS step-size target; default: the model's
            ``nuts_target_accept_prob`` (0.8; funnels need 0.95-0.99).
        dense_mass: ``False``: adapt a diagonal mass matrix; ``True``: a dense one (correlated
            posteriors); ``"laplace"`` (NumPyro only): find the posterior mode by L-BFGS and
            hold the inverse Hessian there fixed as a dense inverse mass matrix (only the step
            size adapts), each chain starting at its own draw of that Gaussian. For posteriors
            that many rows make nearly Gaussian, concentrated and correlated, where adaptation
            from a few hundred draws fails (e.g. a mixture's covariance on 50,000 rows); it falls
            back to ``False`` with a warning when the Hessian there is not positive definite.
            Default: the model's ``nuts_dense_mass`` hook (``False`` for a program).
        max_tree_depth: NUTS's maximum tree depth (``2**depth`` leapfrog steps at most).
        jit_compile: Pyro backend: compile the potential energy with the PyTorch JIT (Pyro's
            ``NUTS(jit_compile=True)``, warnings of the tracer silenced), often 2-3x faster for a
            small model whose control flow does not depend on the sampled values (PyTorch marks
            its tracer deprecated; that warning is silenced). NumPyro is always compiled, so there
            it changes nothing.
        init_strategy: ``"median"`` (the prior median, default for programs), ``"uniform"`` (in
            (-2, 2) unconstrained, each backend's default for families), ``"feasible"`` or a
            dict of site values where every chain starts.
        num_prior_draws: a program's draws for the ``prior``/``prior_predictive`` groups (0: none).
        seed: chains are seeded from it; the same seed gives the same draws on CPU.
        coords: labels of named dims, ``{dim: labels}`` (a plate's name is its dim, e.g.
            ``{"school": names}``), put on every group; a program's plates are checked before
            sampling (unknown dims or wrong lengths: ``ValueError``).

    NumPyro runs in 64-bit when any array argument is float64 (32-bit would silently truncate
    it); pass float32 arrays for 32-bit speed.

    Returns:
        :class:`MCMCResult`; its ``inference_data`` has ``posterior`` (with
        ``pyro.deterministic`` sites), ``sample_stats`` (divergences; NumPyro also energy, tree
        depth), ``log_likelihood`` (per observed site, pointwise), ``posterior_predictive``,
        ``observed_data`` and, for a program, ``constant_data``, ``prior`` and
        ``prior_predictive``. R-hat, ESS, divergence and BFMI problems are issued as
        :class:`ConvergenceWarning`.

    Optional hooks of a family (see :mod:`bayesvae.models.contract`): ``nuts_init_values()``,
    ``max_plate_nesting``, ``postprocess_posterior(idata)``, ``arviz_dims()``.
    """
    if backend is not None:
        check_choice("backend", backend, BACKENDS)
    num_warmup = check_positive_int("num_warmup", num_warmup)
    num_samples = check_positive_int("num_samples", num_samples)
    num_chains = check_positive_int("num_chains", num_chains)
    max_tree_depth = check_positive_int("max_tree_depth", max_tree_depth)
    if dense_mass is not None and not isinstance(dense_mass, bool):
        if not isinstance(dense_mass, str):
            raise TypeError(f"dense_mass must be True, False or 'laplace', got {dense_mass!r}.")
        check_choice("dense_mass", dense_mass, DENSE_MASS_CHOICES)
    if not isinstance(jit_compile, bool):
        raise TypeError(f"jit_compile must be True or False, got {jit_compile!r}.")
    if (
        isinstance(num_prior_draws, bool)
        or not isinstance(num_prior_draws, int)
        or (num_prior_draws < 0)
    ):
        raise ValueError(
            f"num_prior_draws must be a non-negative integer, got {num_prior_draws!r}."
        )
    if isinstance(init_strategy, str):
        check_choice("init_strategy", init_strategy, INIT_STRATEGIES)
    elif init_strategy is not None and not isinstance(init_strategy, dict):
        raise TypeError(
            f"init_strategy must be one of {list(INIT_STRATEGIES)} or a dict of site values, "
            f"got {type(init_strategy).__name__}."
        )
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise TypeError(f"model_kwargs must be a dict, got {type(model_kwargs).__name__}.")
    program_kwargs = {**kwargs, **(model_kwargs or {})}
    coords = check_coords(coords)
    program = _program_wrapper(model)
    if program is not None or not isinstance(model, ModelContract):
        fn = model if program is None else program.model_fn
        if not callable(fn):
            raise TypeError(
                f"model must be a Pyro or NumPyro program (a callable) or a bayesvae model, got "
                f"{type(model).__name__}."
            )
        return _warned(
            _program_mcmc(
                fn,
                data,
                program_kwargs,
                backend=backend,
                run=_NUTSRun(
                    num_warmup,
                    num_samples,
                    num_chains,
                    _check_accept(0.8 if target_accept_prob is None else target_accept_prob),
                    seed,
                    progress,
                    None,
                    None,
                    False if dense_mass is None else dense_mass,
                    max_tree_depth,
                    jit_compile,
                ),
                init_strategy="median" if init_strategy is None else init_strategy,
                num_prior_draws=num_prior_draws,
                coords=coords,
            )
        )
    if program_kwargs:
        raise TypeError(
            f"{type(model).__name__} takes data arrays only, got {sorted(program_kwargs)}."
        )
    backend = "numpyro" if backend is None else backend
    if backend == "pyro" and not isinstance(model, PyroProgramLike):
        raise TypeError(
            f"{type(model).__name__} describes the {model.family} family but has no Pyro "
            f"model; sample it on backend='numpyro', or pass a {model.family} for 'pyro'."
        )
    target_accept_prob = _check_accept(
        model.nuts_target_accept_prob if target_accept_prob is None else target_accept_prob
    )
    if dense_mass is None:  # the family's choice; a Laplace start needs NumPyro
        dense_mass = model.nuts_dense_mass
        if dense_mass == "laplace" and backend == "pyro":
            dense_mass = False
    elif dense_mass == "laplace" and backend == "pyro":
        raise ValueError(LAPLACE_NEEDS_NUMPYRO)
    tensors = tuple(model.check_data(*data))
    coords, dims = model.arviz_dims()
    started = time.perf_counter()
    run = _NUTSRun(
        num_warmup,
        num_samples,
        num_chains,
        target_accept_prob,
        seed,
        progress,
        coords or None,
        dims or None,
        dense_mass,
        max_tree_depth,
        jit_compile,
    )
    init_values = init_strategy if isinstance(init_strategy, dict) else model.nuts_init_values()
    strategy_name = init_strategy if isinstance(init_strategy, str) else "uniform"
    if backend == "numpyro":
        from bayesvae.backends.numpyro import nuts_model

        numpyro_model = nuts_model(model)
        if numpyro_model is None:
            raise ValueError(f"{type(model).__name__} has no NumPyro twin; use backend='pyro'.")
        idata = _numpyro_nuts(
            numpyro_model, tensors, {}, run, init_values, strategy_name, model.nuts_float64
        )
    else:
        idata = _pyro_family_nuts(model, tensors, run, init_values, strategy_name)
    idata = label_dims(model.postprocess_posterior(idata), coords)  # relabel components first
    return _warned(_result(idata, backend, run, time.perf_counter() - started))


def _program_wrapper(model: Any) -> Any:
    """``model`` if it is a :class:`~bayesvae.models.program.PyroProgram` (a user's program
    wrapped), else ``None``; without importing Pyro (if the module defining it is not loaded,
    nothing is one)."""
    program = sys.modules.get("bayesvae.models.program")
    return model if program is not None and isinstance(model, program.PyroProgram) else None


def _is_torch_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor, without importing torch (if torch is not loaded,
    nothing is a tensor)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.is_tensor(value)


def _check_accept(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"target_accept_prob must lie in (0, 1), got {value!r}.")
    return float(value)


def _result(idata: Any, backend: str, run: _NUTSRun, seconds: float) -> MCMCResult:
    samples = {name: idata.posterior[name].to_numpy() for name in idata.posterior.data_vars}
    return MCMCResult(
        samples=samples,
        inference_data=idata,
        backend=backend,
        num_chains=run.num_chains,
        num_samples=run.num_samples,
        num_warmup=run.num_warmup,
        seconds=seconds,
        problems=convergence_problems(idata),
    )


def _warned(result: MCMCResult) -> MCMCResult:
    for problem in result.problems:
        warnings.warn(problem, ConvergenceWarning, stacklevel=3)
    return result


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
    dense_mass: bool | str = False
    max_tree_depth: int = 10
    jit_compile: bool = False


def _numpyro_init(init_values: dict[str, Any] | None, strategy: str) -> Any:
    import jax.numpy as jnp
    from numpyro.infer import init_to_feasible, init_to_median, init_to_uniform, init_to_value

    if init_values is not None:
        return init_to_value(values={k: jnp.asarray(v) for k, v in init_values.items()})
    return {"median": init_to_median, "uniform": init_to_uniform, "feasible": init_to_feasible}[
        strategy
    ]


def _pyro_init(init_values: dict[str, Any] | None, strategy: str) -> Any:
    import torch
    from pyro.infer.autoguide.initialization import (
        init_to_feasible,
        init_to_median,
        init_to_uniform,
        init_to_value,
    )

    if init_values is not None:
        return init_to_value(values={k: torch.as_tensor(v) for k, v in init_values.items()})
    return {"median": init_to_median, "uniform": init_to_uniform, "feasible": init_to_feasible}[
        strategy
    ]


def _jax_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple, dict]:
    import jax.numpy as jnp

    def convert(value: Any) -> Any:
        if _is_torch_tensor(value):
            value = value.detach().cpu().numpy()
        if hasattr(value, "to_numpy"):  # pandas
            value = value.to_numpy()
        return jnp.asarray(value) if isinstance(value, np.ndarray) else value

    return tuple(convert(a) for a in args), {k: convert(v) for k, v in kwargs.items()}


def _numpyro_sampler(
    fn: Any, args: tuple, kwargs: dict, run: _NUTSRun, init_values: Any, strategy: str
) -> Any:
    import jax
    from numpyro.infer import MCMC, NUTS

    init = _numpyro_init(init_values, strategy)
    mass: dict[str, Any] = {"dense_mass": run.dense_mass}
    init_params = None
    if run.dense_mass == "laplace":
        from bayesvae.backends.numpyro.laplace import LaplaceError, laplace_start

        try:
            start = laplace_start(
                fn,
                args,
                kwargs,
                init_strategy=init,
                rng_key=jax.random.PRNGKey(run.seed + 3),
                num_chains=run.num_chains,
            )
        except LaplaceError as error:
            warnings.warn(
                f"dense_mass='laplace' fell back to adapting a diagonal mass matrix: {error}",
                UserWarning,
                stacklevel=2,
            )
            mass = {"dense_mass": False}
        else:
            logger.info("Laplace start: mode after %d L-BFGS steps", start.optimizer_steps)
            mass = {
                "dense_mass": True,
                "inverse_mass_matrix": start.inverse_mass_matrix,
                "adapt_mass_matrix": False,
            }
            init_params = start.init_params
    sampler = MCMC(
        NUTS(
            fn,
            target_accept_prob=run.target_accept_prob,
            init_strategy=init,
            max_tree_depth=run.max_tree_depth,
            **mass,
        ),
        num_warmup=run.num_warmup,
        num_samples=run.num_samples,
        num_chains=run.num_chains,
        chain_method=_chain_method(run.num_chains, args, kwargs, run.progress),
        progress_bar=run.progress,
    )
    sampler.run(
        jax.random.PRNGKey(run.seed),
        *args,
        init_params=init_params,
        extra_fields=("diverging", "energy", "num_steps"),
        **kwargs,
    )
    return sampler


#: above this many numbers in its array arguments, a model's chains on one device run one after
#: another instead of vectorized (when NumPyro's progress bar is shown)
SEQUENTIAL_CHAINS_FROM = 100_000


def _chain_method(
    num_chains: int, args: tuple, kwargs: dict[str, Any], progress: bool
) -> str | Callable[[Callable], Callable]:
    """NumPyro's ``chain_method``: ``"parallel"`` with a device per chain. On one device and
    without a progress bar, :func:`_compiled_chains`: NumPyro's own methods start every chain
    op by op (finding initial values, the first gradient), and on a CPU each primitive run that
    way is compiled on its own, most of a small run's time (the anomaly mixture's 2 chains on
    315 rows: 27 s with ``"vectorized"``, 7 s in one program). A progress bar needs NumPyro's
    methods: ``"vectorized"`` (one compiled loop for every chain) unless the data are large, then
    ``"sequential"``. Vectorized chains build their trees in lockstep, every chain as deep as the
    deepest and both sides of every branch evaluated: cheap when a gradient is, but on a 50,000 x
    10 anomaly table 4 vectorized chains took about 3x as long as the same chains one after
    another."""
    import jax

    if jax.local_device_count() >= num_chains:
        return "parallel"
    if not progress:
        return _compiled_chains
    numbers = sum(int(np.size(value)) for value in (*args, *kwargs.values()))
    return "sequential" if numbers > SEQUENTIAL_CHAINS_FROM else "vectorized"


def _compiled_chains(chain: Callable) -> Callable:
    """A NumPyro ``chain_method``: ``chain`` (one chain's start, warm-up and draws) run for each
    chain in turn, inside one compiled program."""
    import jax

    return jax.jit(lambda per_chain: jax.lax.map(chain, per_chain))


def _numpyro_nuts(
    fn: Any,
    tensors: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: _NUTSRun,
    init_values: Any,
    strategy: str,
    float64: bool = False,
) -> Any:
    """A family's NumPyro twin through NUTS, as ArviZ data; in 64-bit when ``float64`` (the
    family's ``nuts_float64`` hook: its data and starting values are cast up)."""
    import arviz as az

    with _jax_precision(float64):
        if float64:
            tensors = tuple(_as_float64(t) for t in tensors)
            if init_values is not None:
                init_values = {k: np.asarray(v, dtype=np.float64) for k, v in init_values.items()}
        args, kwargs = _jax_args(tensors, kwargs)
        sampler = _numpyro_sampler(fn, args, kwargs, run, init_values, strategy)
        idata = _numpyro_inference_data(sampler, fn, args, kwargs, run.coords, run.dims)
        pointwise = _pointwise_log_likelihood(fn, sampler, args, kwargs)
        if pointwise:
            idata.add_groups(
                log_likelihood=az.dict_to_dataset(
                    pointwise,
                    coords=run.coords,
                    dims=run.dims,
                    skip_event_dims=True,
                    index_origin=0,
                )
            )
        return idata


#: ``az.from_numpyro``'s names for NumPyro's extra fields
_SAMPLE_STATS_NAMES = {
    "potential_energy": "lp",
    "num_steps": "n_steps",
    "accept_prob": "acceptance_rate",
}


def _numpyro_inference_data(
    sampler: Any, fn: Any, args: tuple, kwargs: dict[str, Any], coords: Any, dims: Any
) -> Any:
    """``posterior``, ``sample_stats`` and ``observed_data`` of a NumPyro NUTS run, as
    ``az.from_numpyro(sampler, log_likelihood=False)`` gives them, without its eager model run
    (on a CPU a compilation per primitive, seconds for a small mixture): the observed values come
    from one compiled trace, the dims from ArviZ's shape-only inference. ArviZ's own
    pointwise log-likelihood would also go op by op and hold every draw's intermediates at once
    (gigabytes at 50k rows); :func:`_pointwise_log_likelihood` adds it."""
    import arviz as az
    import jax
    import numpyro
    from arviz.data.io_numpyro import infer_dims
    from numpyro import handlers
    from numpyro.infer import init_to_sample

    @jax.jit
    def observed_values(key: Any) -> dict[str, Any]:
        # ArviZ's way: improper sites get a value by init_to_sample
        seeded = handlers.substitute(handlers.seed(fn, key), substitute_fn=init_to_sample)
        trace = handlers.trace(seeded).get_trace(*args, **kwargs)
        return {
            name: site["value"]
            for name, site in trace.items()
            if site["type"] == "sample" and site["is_observed"]
        }

    dims = infer_dims(fn, args, kwargs) if dims is None else dims
    samples = jax.device_get(sampler.get_samples(group_by_chain=True))
    stats: dict[str, np.ndarray] = {}
    for field_name, value in jax.device_get(sampler.get_extra_fields(group_by_chain=True)).items():
        value = np.asarray(value)
        stats[_SAMPLE_STATS_NAMES.get(field_name, field_name)] = (
            -value if field_name == "potential_energy" else value
        )
        if field_name == "num_steps":
            stats["tree_depth"] = np.log2(value).astype(int) + 1
    groups = {
        "posterior": az.dict_to_dataset(samples, library=numpyro, coords=coords, dims=dims),
        "sample_stats": az.dict_to_dataset(stats, library=numpyro, coords=coords),
    }
    observed = jax.device_get(observed_values(jax.random.PRNGKey(0)))
    if observed:
        groups["observed_data"] = az.dict_to_dataset(
            observed, library=numpyro, coords=coords, dims=dims, default_dims=[]
        )
    return az.InferenceData(**groups)


#: the most pointwise log-likelihood entries (draws x rows) a NumPyro NUTS result keeps
MAX_POINTWISE_LOG_LIKELIHOOD = 20_000_000
#: draws evaluated at once for the pointwise log-likelihood
_LOG_LIKELIHOOD_CHUNK = 50


def _pointwise_log_likelihood(
    fn: Any, sampler: Any, args: tuple, kwargs: dict[str, Any]
) -> dict[str, np.ndarray]:
    """``{observed site: (chains, draws, *rows)}``, as ``az.from_numpyro`` gives, computed by one
    compiled function over chunks of draws; empty (with a log line) when it would hold more than
    :data:`MAX_POINTWISE_LOG_LIKELIHOOD` entries."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import log_likelihood

    samples = sampler.get_samples(group_by_chain=True)
    chains, draws = next(iter(samples.values())).shape[:2]
    flat = {k: v.reshape((chains * draws,) + v.shape[2:]) for k, v in samples.items()}
    # the shapes only: running the model on one draw would go op by op, compiling each primitive
    first = jax.eval_shape(
        lambda draw: log_likelihood(fn, draw, *args, **kwargs),
        jax.tree_util.tree_map(lambda v: v[:1], flat),
    )
    if not first:
        return {}
    entries = chains * draws * sum(int(np.prod(v.shape[1:])) for v in first.values())
    if entries > MAX_POINTWISE_LOG_LIKELIHOOD:
        logger.info(
            "pointwise log-likelihood not kept: %d draws x rows exceed %d (no LOO/WAIC)",
            entries,
            MAX_POINTWISE_LOG_LIKELIHOOD,
        )
        return {}
    total = chains * draws
    chunk = min(_LOG_LIKELIHOOD_CHUNK, total)
    padded = -(-total // chunk) * chunk

    def pad(value: Any) -> Any:
        extra = jnp.broadcast_to(value[-1:], (padded - total,) + value.shape[1:])
        return jnp.concatenate([value, extra]).reshape((padded // chunk, chunk) + value.shape[1:])

    @jax.jit
    def evaluate(chunks: dict[str, Any]) -> dict[str, Any]:
        return jax.lax.map(lambda part: log_likelihood(fn, part, *args, **kwargs), chunks)

    values = evaluate({k: pad(v) for k, v in flat.items()})
    return {
        name: np.asarray(value)
        .reshape((padded,) + value.shape[2:])[:total]
        .reshape((chains, draws) + value.shape[2:])
        for name, value in values.items()
    }


def _as_float64(array: Any) -> Any:
    """A floating tensor or array in float64; anything else as it is."""
    if _is_torch_tensor(array):
        return array.double() if array.is_floating_point() else array
    if isinstance(array, np.ndarray) and np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float64)
    return array


def _pyro_family_nuts(
    model: Any, tensors: tuple[torch.Tensor, ...], run: _NUTSRun, init_values: Any, strategy: str
) -> Any:
    import arviz as az

    chains = []
    samplers = _pyro_chains(
        model.model, tensors, {}, run, init_values, strategy, model.max_plate_nesting
    )
    for sampler in samplers:
        with warnings.catch_warnings():  # arviz notes that one chain cannot give R-hat
            warnings.simplefilter("ignore", UserWarning)
            chains.append(az.from_pyro(sampler, coords=run.coords, dims=run.dims))
    return chains[0] if run.num_chains == 1 else az.concat(*chains, dim="chain")


def _pyro_chains(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: _NUTSRun,
    init_values: Any,
    strategy: str,
    max_plate_nesting: int | None,
) -> Any:
    """One Pyro ``MCMC`` per chain, run one after another, seeded ``seed + chain``."""
    import pyro
    from pyro.infer import MCMC, NUTS

    if run.dense_mass == "laplace":
        raise ValueError(LAPLACE_NEEDS_NUMPYRO)
    for chain in range(run.num_chains):
        pyro.set_rng_seed(run.seed + chain)
        sampler = MCMC(
            NUTS(
                fn,
                target_accept_prob=run.target_accept_prob,
                init_strategy=_pyro_init(init_values, strategy),
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


# ------------------------------------------------------------------------- user programs
def _program_mcmc(
    fn: Any,
    data: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    backend: str | None,
    run: _NUTSRun,
    init_strategy: str | dict[str, Any],
    num_prior_draws: int,
    coords: dict[str, list[Any]],
) -> MCMCResult:
    from bayesvae.models.program import (
        inspect_sites,
        is_numpyro_program,
        pandas_coords,
        program_inputs,
    )

    init_values = init_strategy if isinstance(init_strategy, dict) else None
    strategy = init_strategy if isinstance(init_strategy, str) else "median"
    numpyro_program = is_numpyro_program(fn, data, kwargs)
    if numpyro_program and backend == "pyro":
        raise TypeError(
            "this is a NumPyro program (numpyro.sample); it runs on backend='numpyro', not 'pyro'."
        )
    started = time.perf_counter()
    input_coords = pandas_coords(fn, data, kwargs)  # before the inputs become tensors

    def labelled(idata: Any) -> Any:  # the pandas inputs' labels, then the coords given
        return label_dims(idata, {**present_dims(idata, input_coords), **coords})

    if numpyro_program:
        idata = _numpyro_program_nuts(fn, data, kwargs, run, init_values, strategy, num_prior_draws)
        result = _result(labelled(idata), "numpyro", run, time.perf_counter() - started)
        result.model, result.data = fn, (data, kwargs)
        return result
    if backend == "numpyro":
        raise TypeError(
            "this is a Pyro program (pyro.sample); backend='numpyro' runs NumPyro programs. Use "
            "backend='pyro' (the default for a Pyro program) or write the model in NumPyro."
        )
    args, kwargs = program_inputs(fn, data, kwargs)
    if coords:  # checked against the program's plates before any sampling
        plates = inspect_sites(fn, args, kwargs).plates
        for dim, labels in coords.items():
            if dim in plates and plates[dim][0] != len(labels):
                raise ValueError(
                    f"coords[{dim!r}] has {len(labels)} labels; plate {dim!r} has {plates[dim][0]}."
                )
    idata = _pyro_program_nuts(fn, args, kwargs, run, init_values, strategy, num_prior_draws)
    result = _result(labelled(idata), "pyro", run, time.perf_counter() - started)
    result.model, result.data = fn, (args, kwargs)
    return result


@contextlib.contextmanager
def _jax_precision(float64: bool) -> Iterator[None]:
    """Runs the block in JAX's 64-bit mode when ``float64`` (a program given float64 data, or a
    family whose ``nuts_float64`` hook is set); otherwise leaves JAX as it is."""
    if not float64:
        yield
        return
    import jax

    with jax.enable_x64(True):
        yield


def _wants_x64(data: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    for value in (*data, *kwargs.values()):
        if hasattr(value, "to_numpy") and not _is_torch_tensor(value):
            value = value.to_numpy()
        dtype = getattr(value, "dtype", None)  # noqa: B009 (arrays of any library)
        if dtype is not None and str(dtype) in ("float64", "torch.float64"):
            return True
    return False


def _numpyro_program_nuts(
    fn: Any,
    data: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: _NUTSRun,
    init_values: Any,
    strategy: str,
    num_prior_draws: int,
) -> Any:
    import arviz as az
    import jax
    import numpyro
    from arviz.data.io_numpyro import infer_dims
    from numpyro.infer import Predictive

    from bayesvae.models.program import named_inputs

    x64 = _wants_x64(data, kwargs)
    if x64:
        logger.info("float64 data: NumPyro NUTS runs in 64-bit (pass float32 arrays for 32-bit)")
    with _jax_precision(x64):
        args, jkwargs = _jax_args(data, kwargs)
        sampler = _numpyro_sampler(fn, args, jkwargs, run, init_values, strategy)
        dims = infer_dims(fn, args, jkwargs) if run.dims is None else run.dims
        idata = _numpyro_inference_data(sampler, fn, args, jkwargs, run.coords, dims)
        observed = list(idata.observed_data.data_vars) if "observed_data" in idata else []
        samples = sampler.get_samples()
        # Predictive compiled: run eagerly, its vmap over the draws goes op by op
        predictive = jax.jit(
            lambda key: Predictive(fn, samples, return_sites=observed)(key, *args, **jkwargs)
        )(jax.random.PRNGKey(run.seed + 1))
        prior: dict[str, Any] = {}
        if num_prior_draws:
            prior = jax.jit(
                lambda key: Predictive(fn, num_samples=num_prior_draws)(key, *args, **jkwargs)
            )(jax.random.PRNGKey(run.seed + 2))
        constant = {
            name: np.asarray(value)
            for name, value in named_inputs(fn, args, jkwargs).items()
            if hasattr(value, "shape") and name not in observed
        }
        chains, draws = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
        pointwise = _pointwise_log_likelihood(fn, sampler, args, jkwargs)
        groups: dict[str, dict[str, np.ndarray]] = {
            "log_likelihood": pointwise,
            "posterior_predictive": {
                k: np.asarray(v).reshape((chains, draws) + v.shape[1:])
                for k, v in predictive.items()
            },
            "prior": {k: np.asarray(v)[None] for k, v in prior.items() if k in samples},
            "constant_data": constant,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            idata.add_groups(
                {
                    group: az.dict_to_dataset(
                        values,
                        library=numpyro,
                        coords=run.coords,
                        dims=dims,
                        skip_event_dims=group == "log_likelihood",
                        default_dims=[] if group == "constant_data" else None,
                    )
                    for group, values in groups.items()
                    if values
                }
            )
            prior_predictive = {k: np.asarray(v)[None] for k, v in prior.items() if k in observed}
            if prior_predictive:
                idata.add_groups(
                    prior_predictive=az.from_dict(posterior=prior_predictive).posterior
                )
    return idata


def _pyro_program_nuts(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: _NUTSRun,
    init_values: Any,
    strategy: str,
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
    for sampler in _pyro_chains(fn, args, kwargs, run, init_values, strategy, sites.nesting):
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
