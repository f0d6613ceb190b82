"""NUTS for the small models: NumPyro (default, jitted, chains vectorized or parallel) or Pyro.

Both give an :class:`MCMCResult` holding ArviZ ``InferenceData`` (posterior, sample_stats,
observed_data, log_likelihood) with named dims, and warn when the chains look unconverged.
torch and Pyro are imported only by the paths that run Pyro: a family's NumPyro twin, given a
torch-free spec (an A/B test's), samples without them.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesvae.data.validation import check_choice, check_positive_int, check_probability
from bayesvae.infer.coords import check_coords, label_dims, present_dims
from bayesvae.infer.mcmc_numpyro import numpyro_nuts, numpyro_program_nuts
from bayesvae.infer.mcmc_pyro import pyro_family_nuts, pyro_program_nuts
from bayesvae.models.contract import ModelContract, PyroProgramLike

__all__ = [
    "mcmc",
    "MCMCResult",
    "ConvergenceWarning",
    "convergence_problems",
    "RHAT_THRESHOLD",
    "ESS_THRESHOLD",
]

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
                run=NUTSRun(
                    num_warmup,
                    num_samples,
                    num_chains,
                    check_probability(
                        "target_accept_prob",
                        0.8 if target_accept_prob is None else target_accept_prob,
                    ),
                    seed,
                    progress,
                    None,
                    None,
                    False if dense_mass is None else dense_mass,
                    max_tree_depth,
                    jit_compile,
                    init_values=init_strategy if isinstance(init_strategy, dict) else None,
                    init_strategy=init_strategy if isinstance(init_strategy, str) else "median",
                ),
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
    target_accept_prob = check_probability(
        "target_accept_prob",
        model.nuts_target_accept_prob if target_accept_prob is None else target_accept_prob,
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
    run = NUTSRun(
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
        init_values=(
            init_strategy if isinstance(init_strategy, dict) else model.nuts_init_values()
        ),
        init_strategy=init_strategy if isinstance(init_strategy, str) else "uniform",
    )
    if backend == "numpyro":
        from bayesvae.backends.numpyro import nuts_model

        numpyro_model = nuts_model(model)
        if numpyro_model is None:
            raise ValueError(f"{type(model).__name__} has no NumPyro twin; use backend='pyro'.")
        idata = numpyro_nuts(numpyro_model, tensors, {}, run, model.nuts_float64)
    else:
        idata = pyro_family_nuts(model, tensors, run)
    idata = label_dims(model.postprocess_posterior(idata), coords)  # relabel components first
    return _warned(_result(idata, backend, run, time.perf_counter() - started))


def _program_wrapper(model: Any) -> Any:
    """``model`` if it is a :class:`~bayesvae.models.program.PyroProgram` (a user's program
    wrapped), else ``None``; without importing Pyro (if the module defining it is not loaded,
    nothing is one)."""
    program = sys.modules.get("bayesvae.models.program")
    return model if program is not None and isinstance(model, program.PyroProgram) else None


def _result(idata: Any, backend: str, run: NUTSRun, seconds: float) -> MCMCResult:
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
class NUTSRun:
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
    #: starting values by site (the user's dict, or a family's ``nuts_init_values()``)
    init_values: dict[str, Any] | None = None
    #: how sites without a starting value start: ``"median"``, ``"uniform"`` or ``"feasible"``
    init_strategy: str = "median"


# ------------------------------------------------------------------------- user programs
def _program_mcmc(
    fn: Any,
    data: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    backend: str | None,
    run: NUTSRun,
    num_prior_draws: int,
    coords: dict[str, list[Any]],
) -> MCMCResult:
    from bayesvae.models.program import (
        inspect_sites,
        is_numpyro_program,
        pandas_coords,
        program_inputs,
    )

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
        idata = numpyro_program_nuts(fn, data, kwargs, run, num_prior_draws)
        result = _result(labelled(idata), "numpyro", run, time.perf_counter() - started)
        result.model, result.data = fn, (data, kwargs)
        return result
    if backend == "numpyro":
        raise TypeError(
            "this is a Pyro program (pyro.sample); backend='numpyro' runs NumPyro programs. Use "
            "backend='pyro' (the default for a Pyro program) or write the model in NumPyro."
        )
    if run.dense_mass == "laplace":
        raise ValueError(LAPLACE_NEEDS_NUMPYRO)
    args, kwargs = program_inputs(fn, data, kwargs)
    if coords:  # checked against the program's plates before any sampling
        plates = inspect_sites(fn, args, kwargs).plates
        for dim, labels in coords.items():
            if dim in plates and plates[dim][0] != len(labels):
                raise ValueError(
                    f"coords[{dim!r}] has {len(labels)} labels; plate {dim!r} has {plates[dim][0]}."
                )
    idata = pyro_program_nuts(fn, args, kwargs, run, num_prior_draws)
    result = _result(labelled(idata), "pyro", run, time.perf_counter() - started)
    result.model, result.data = fn, (args, kwargs)
    return result
