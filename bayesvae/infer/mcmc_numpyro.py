"""NUTS on NumPyro, the engine of :func:`bayesvae.infer.mcmc.mcmc` with ``backend="numpyro"``:
the sampler (chains in parallel across devices when there are enough, else in one compiled
program), its ArviZ groups built from compiled traces instead of ArviZ's eager model runs, and
the pointwise log-likelihood in compiled chunks. jax, numpyro and arviz are imported only when
it runs; torch never is.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bayesvae.infer.mcmc import NUTSRun

__all__ = ["numpyro_nuts", "numpyro_program_nuts"]

logger = logging.getLogger(__name__)


def _is_torch_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor, without importing torch (if torch is not loaded,
    nothing is a tensor)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.is_tensor(value)


def _numpyro_init(run: NUTSRun) -> Any:
    """NumPyro's init strategy for ``run``: its starting values, else its named strategy."""
    import jax.numpy as jnp
    from numpyro.infer import init_to_feasible, init_to_median, init_to_uniform, init_to_value

    if run.init_values is not None:
        return init_to_value(values={k: jnp.asarray(v) for k, v in run.init_values.items()})
    return {"median": init_to_median, "uniform": init_to_uniform, "feasible": init_to_feasible}[
        run.init_strategy
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


def _numpyro_sampler(fn: Any, args: tuple, kwargs: dict, run: NUTSRun) -> Any:
    import jax
    from numpyro.infer import MCMC, NUTS

    init = _numpyro_init(run)
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


def numpyro_nuts(
    fn: Any,
    tensors: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: NUTSRun,
    float64: bool = False,
) -> Any:
    """A family's NumPyro twin through NUTS, as ArviZ data; in 64-bit when ``float64`` (the
    family's ``nuts_float64`` hook: its data and starting values are cast up)."""
    import arviz as az

    with _jax_precision(float64):
        if float64:
            tensors = tuple(_as_float64(t) for t in tensors)
            if run.init_values is not None:
                start = {k: np.asarray(v, dtype=np.float64) for k, v in run.init_values.items()}
                run = replace(run, init_values=start)
        args, kwargs = _jax_args(tensors, kwargs)
        sampler = _numpyro_sampler(fn, args, kwargs, run)
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


def numpyro_program_nuts(
    fn: Any,
    data: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: NUTSRun,
    num_prior_draws: int,
) -> Any:
    """NUTS on a NumPyro program ``fn(*data, **kwargs)`` (64-bit when any array argument is
    float64), as ArviZ data: posterior, sample_stats, observed and constant data, pointwise
    log-likelihood, posterior predictive and ``num_prior_draws`` prior draws, each group built
    by a compiled function."""
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
        sampler = _numpyro_sampler(fn, args, jkwargs, run)
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
