"""``bayesvae.mcmc``'s options: refused when malformed, before any sampling; Pyro's compiled NUTS
(``jit_compile=True``) samples the same posterior as the plain one."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import bayesvae


def normal_mean(y):
    """y_i ~ Normal(mu, 1), mu ~ Normal(0, 10): the posterior of mu is Normal, in closed form."""
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


@pytest.fixture(scope="module")
def y():
    return torch.as_tensor(np.random.default_rng(0).normal(2.0, 1.0, size=50))


@pytest.mark.parametrize(
    ("option", "error", "words"),
    [
        ({"num_warmup": 0}, ValueError, "num_warmup"),
        ({"num_chains": 1.5}, (TypeError, ValueError), "num_chains"),
        ({"max_tree_depth": 0}, ValueError, "max_tree_depth"),
        ({"dense_mass": "yes"}, ValueError, "dense_mass"),
        ({"dense_mass": 1}, TypeError, "dense_mass"),
        ({"dense_mass": "laplace"}, ValueError, "backend='numpyro'"),  # a Pyro program
        ({"jit_compile": "yes"}, TypeError, "jit_compile"),
        ({"init_strategy": "prior"}, ValueError, "init_strategy"),
        ({"target_accept_prob": 1.0}, ValueError, "target_accept_prob"),
        ({"backend": "stan"}, ValueError, "backend"),
    ],
)
def test_malformed_options_are_refused(y, option, error, words):
    with pytest.raises(error, match=words):
        bayesvae.mcmc(normal_mean, y, **{"num_warmup": 10, "num_samples": 10, **option})


def test_a_laplace_start_for_a_family_on_pyro_is_refused_before_its_data_are_read():
    """The family's Pyro model cannot take a Laplace start; the refusal names the backend and
    comes first (these malformed counts would otherwise be the complaint)."""
    from bayesvae.models import BetaBinomialABTest

    with pytest.raises(ValueError, match="backend='numpyro'"):
        bayesvae.mcmc(
            BetaBinomialABTest(["A", "B"]),
            np.array([5.0, -1.0]),
            np.array([1.0, 2.0]),
            backend="pyro",
            dense_mass="laplace",
        )


@pytest.mark.filterwarnings("ignore::bayesvae.infer.mcmc.ConvergenceWarning")  # checked below
def test_compiled_nuts_samples_the_exact_posterior_and_repeats_with_its_seed(y):
    precision = 1 / 10.0**2 + len(y)
    mean, sd = float(y.sum()) / precision, precision**-0.5
    runs = [
        bayesvae.mcmc(
            normal_mean, y, num_warmup=300, num_samples=500, num_chains=2, jit_compile=jit, seed=1
        )
        for jit in (True, True, False)
    ]
    compiled, again, plain = (run.samples["mu"] for run in runs)
    np.testing.assert_array_equal(compiled, again)  # the same seed, the same draws
    for draws in (compiled, plain):
        assert draws.shape == (2, 500)
        # even at an ESS of 250 the mean's Monte Carlo error is 0.06 sd; allow 0.25 sd
        assert abs(draws.mean() - mean) < 0.25 * sd
        assert draws.std() == pytest.approx(sd, rel=0.2)


@pytest.mark.filterwarnings("ignore::bayesvae.infer.mcmc.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_numpyro_program_samples_in_the_precision_of_its_data(y, dtype):
    """A NumPyro program runs in 64-bit when its data are float64 (32-bit would truncate them),
    in 32-bit for float32 data; either way its draws follow the exact posterior."""
    import numpyro
    import numpyro.distributions as nd

    def numpyro_normal_mean(y):
        mu = numpyro.sample("mu", nd.Normal(0.0, 10.0))
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("y", nd.Normal(mu, 1.0), obs=y)

    data = y.numpy().astype(dtype)
    run = bayesvae.mcmc(
        numpyro_normal_mean, data, num_warmup=300, num_samples=500, num_chains=2, seed=0
    )
    draws = run.inference_data.posterior["mu"].values
    assert draws.dtype == dtype and draws.shape == (2, 500)
    precision = 1 / 10.0**2 + len(y)
    mean, sd = float(y.sum()) / precision, precision**-0.5
    assert abs(draws.mean() - mean) < 0.25 * sd
    assert draws.std() == pytest.approx(sd, rel=0.2)


@pytest.mark.filterwarnings("ignore::bayesvae.infer.mcmc.ConvergenceWarning")
def test_an_ab_spec_samples_its_familys_numpyro_twin():
    """An A/B family's torch-free spec and the family itself give NUTS the same twin, data and
    dims: the same seed gives the same draws. A spec has no Pyro program to run."""
    from bayesvae.models import BetaBinomialABTest
    from bayesvae.models.ab_conjugate import BetaBinomialSpec

    counts = ([20, 30], [100, 100])
    options = {"num_warmup": 200, "num_samples": 200, "num_chains": 2, "seed": 3}
    spec = BetaBinomialSpec(["A", "B"], prior=(2.0, 3.0))
    family = BetaBinomialABTest(["A", "B"], prior=(2.0, 3.0))
    from_spec = bayesvae.mcmc(spec, *counts, **options)
    from_family = bayesvae.mcmc(family, *counts, **options)
    np.testing.assert_array_equal(from_spec.samples["rate"], from_family.samples["rate"])
    assert from_spec.inference_data.posterior["rate"].coords["arm"].values.tolist() == ["A", "B"]
    # Beta(2 + 20, 3 + 80) has mean 22/105
    assert from_spec.samples["rate"][..., 0].mean() == pytest.approx(22 / 105, abs=0.01)
    with pytest.raises(ValueError, match="more successes"):
        bayesvae.mcmc(spec, [20, 130], [100, 100], **options)
    with pytest.raises(TypeError, match="backend='numpyro'"):
        bayesvae.mcmc(spec, *counts, backend="pyro", **options)
    with pytest.raises(TypeError, match="pass a BetaBinomialABTest"):
        bayesvae.fit(spec, *counts, epochs=1)


def numpyro_regression(x, y):
    """y ~ Normal(x @ w, 0.5), w ~ Normal(0, 2) (3 coefficients): a Gaussian posterior."""
    import numpyro
    import numpyro.distributions as nd

    w = numpyro.sample("w", nd.Normal(0.0, 2.0).expand([3]).to_event(1))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", nd.Normal(x @ w, 0.5), obs=y)


@pytest.fixture(scope="module")
def regression():
    """Correlated features, so the posterior of w is correlated: ``(x, y, mean, cov)``."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 3)) @ np.array([[1.0, 0.9, 0.0], [0.0, 0.4, 0.5], [0.0, 0.0, 0.1]])
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.5 * rng.normal(size=200)
    precision = x.T @ x / 0.25 + np.eye(3) / 4.0
    cov = np.linalg.inv(precision)
    return x, y, cov @ (x.T @ y / 0.25), cov


@pytest.mark.filterwarnings("ignore::bayesvae.infer.mcmc.ConvergenceWarning")
def test_a_laplace_start_samples_a_correlated_posterior_in_few_steps(regression):
    """``dense_mass="laplace"`` holds the inverse Hessian at the mode fixed as the mass matrix:
    on a Gaussian posterior that is the exact covariance, so NUTS needs few leapfrog steps per
    draw where a diagonal mass matrix needs many, and the draws follow the exact posterior."""
    x, y, mean, cov = regression
    options = {"num_warmup": 300, "num_samples": 1000, "num_chains": 2, "seed": 0}
    laplace = bayesvae.mcmc(numpyro_regression, x, y, dense_mass="laplace", **options)
    diagonal = bayesvae.mcmc(numpyro_regression, x, y, **options)
    steps = {
        name: float(run.inference_data.sample_stats["n_steps"].mean())
        for name, run in (("laplace", laplace), ("diagonal", diagonal))
    }
    assert steps["laplace"] < steps["diagonal"] / 2, steps  # about 8 against 26
    draws = laplace.samples["w"].reshape(-1, 3)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(0) - mean) < 0.15 * sd)
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.2, atol=0.05 * sd.max() ** 2)
    again = bayesvae.mcmc(numpyro_regression, x, y, dense_mass="laplace", **options)
    np.testing.assert_array_equal(again.samples["w"], laplace.samples["w"])


def test_the_laplace_start_is_the_exact_posterior_of_a_gaussian_model(regression):
    """Mode and inverse Hessian of a linear-Gaussian model are its posterior mean and
    covariance; each chain starts at its own draw."""
    import jax
    from numpyro.infer import init_to_median

    from bayesvae.backends.numpyro.laplace import laplace_start

    x, y, mean, cov = regression
    with jax.enable_x64(True):
        start = laplace_start(
            numpyro_regression,
            (x, y),
            {},
            init_strategy=init_to_median,
            rng_key=jax.random.PRNGKey(0),
            num_chains=4,
        )
        np.testing.assert_allclose(np.asarray(start.mode["w"]), mean, atol=1e-6)
        np.testing.assert_allclose(start.inverse_mass_matrix, cov, rtol=1e-6, atol=1e-12)
        starts = np.asarray(start.init_params["w"])
    assert starts.shape == (4, 3) and len(np.unique(starts[:, 0])) == 4


@pytest.mark.filterwarnings("ignore::bayesvae.infer.mcmc.ConvergenceWarning")
def test_a_laplace_start_refuses_a_singular_hessian_and_nuts_falls_back(regression, monkeypatch):
    """A flat direction (only a + b is identified) leaves the Hessian at the mode singular:
    :func:`laplace_start` says so, and ``mcmc`` then adapts a diagonal mass matrix, with a
    warning."""
    import jax
    import numpyro
    import numpyro.distributions as nd
    from numpyro.infer import init_to_feasible

    from bayesvae.backends.numpyro import laplace

    def unidentified(y):
        a = numpyro.sample("a", nd.ImproperUniform(nd.constraints.real, (), ()))
        b = numpyro.sample("b", nd.ImproperUniform(nd.constraints.real, (), ()))
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("y", nd.Normal(a + b, 1.0), obs=y)

    with pytest.raises(laplace.LaplaceError, match="not positive definite"):
        laplace.laplace_start(
            unidentified,
            (regression[1][:20],),
            {},
            init_strategy=init_to_feasible,
            rng_key=jax.random.PRNGKey(0),
            num_chains=2,
        )

    def refuse(*args, **kwargs):
        raise laplace.LaplaceError("the Hessian at the posterior mode is not finite.")

    monkeypatch.setattr(laplace, "laplace_start", refuse)
    x, y, mean, _ = regression
    with pytest.warns(UserWarning, match="fell back to adapting a diagonal mass matrix"):
        run = bayesvae.mcmc(
            numpyro_regression,
            x,
            y,
            dense_mass="laplace",
            num_warmup=200,
            num_samples=200,
            num_chains=1,
        )
    assert run.samples["w"].shape == (1, 200, 3)


@pytest.mark.filterwarnings("ignore::bayesvae.infer.mcmc.ConvergenceWarning")
def test_a_familys_pointwise_log_likelihood_is_numpyros_and_is_dropped_when_too_big(monkeypatch):
    """The compiled, chunked pointwise log-likelihood of a family's NUTS run equals NumPyro's
    own per draw; above the size limit the group is left out rather than filling memory."""
    import jax.numpy as jnp
    from numpyro.infer import log_likelihood

    from bayesvae.backends.numpyro import nuts_model
    from bayesvae.infer import mcmc_numpyro
    from bayesvae.models.ab_conjugate import BetaBinomialSpec

    spec = BetaBinomialSpec(["A", "B", "C"])
    counts = ([20, 30, 25], [100, 100, 90])
    options = {"num_warmup": 100, "num_samples": 60, "num_chains": 2, "seed": 1}
    run = bayesvae.mcmc(spec, *counts, **options)
    pointwise = run.inference_data.log_likelihood
    rates = run.samples["rate"].reshape(-1, 3)
    expected = log_likelihood(
        nuts_model(spec), {"rate": jnp.asarray(rates)}, *map(jnp.asarray, counts)
    )
    assert set(pointwise.data_vars) == set(expected)
    for name, values in expected.items():
        got = pointwise[name].values
        assert got.shape == (2, 60, 3)
        np.testing.assert_allclose(got.reshape(120, 3), np.asarray(values), rtol=1e-5)
    monkeypatch.setattr(mcmc_numpyro, "MAX_POINTWISE_LOG_LIKELIHOOD", 100)
    small = bayesvae.mcmc(spec, *counts, **options)
    assert "log_likelihood" not in small.inference_data.groups()


def test_a_familys_inference_data_is_what_arviz_converts():
    """The conversion of a family's NumPyro run (observed values from one compiled trace, no
    eager model run) gives the groups, names, dims and values ``az.from_numpyro`` gives."""
    import arviz as az
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    from bayesvae.infer import mcmc_numpyro

    x, y = jnp.asarray(np.linspace(-1.0, 1.0, 30)[:, None] * np.ones(3)), jnp.linspace(0, 1, 30)
    sampler = MCMC(
        NUTS(numpyro_regression),
        num_warmup=30,
        num_samples=20,
        num_chains=2,
        chain_method=mcmc_numpyro._compiled_chains,
        progress_bar=False,
    )
    sampler.run(jax.random.PRNGKey(0), x, y, extra_fields=("diverging", "energy", "num_steps"))
    coords = {"obs_id": np.arange(30)}
    dims = {"y": ["obs_id"]}
    for kept_dims in (None, dims):
        ours = mcmc_numpyro._numpyro_inference_data(
            sampler, numpyro_regression, (x, y), {}, coords, kept_dims
        )
        theirs = az.from_numpyro(sampler, coords=coords, dims=kept_dims, log_likelihood=False)
        assert ours.groups() == theirs.groups() == ["posterior", "sample_stats", "observed_data"]
        for group in ours.groups():
            mine, reference = ours[group], theirs[group]
            assert set(mine.data_vars) == set(reference.data_vars), group
            for name in mine.data_vars:
                assert mine[name].dims == reference[name].dims, (group, name)
                np.testing.assert_array_equal(mine[name].values, reference[name].values)
    assert ours.posterior["w"].shape == (2, 20, 3)
    assert ours.observed_data["y"].dims == ("obs_id",)


def test_chains_on_one_device_run_in_one_program_unless_a_progress_bar_is_shown():
    """Without a progress bar NumPyro's chains run inside one compiled program (its own methods
    start each chain op by op); with one, vectorized, or one after another for large data."""
    from bayesvae.infer import mcmc_numpyro

    small, large = (np.zeros((10, 3)),), (np.zeros((mcmc_numpyro.SEQUENTIAL_CHAINS_FROM + 1,)),)
    assert mcmc_numpyro._chain_method(4, small, {}, progress=False) is mcmc_numpyro._compiled_chains
    assert mcmc_numpyro._chain_method(4, large, {}, progress=False) is mcmc_numpyro._compiled_chains
    assert mcmc_numpyro._chain_method(4, small, {}, progress=True) == "vectorized"
    assert mcmc_numpyro._chain_method(4, large, {}, progress=True) == "sequential"


@pytest.mark.filterwarnings("ignore::bayesvae.infer.mcmc.ConvergenceWarning")
def test_a_progress_bar_samples_with_numpyros_own_chain_method():
    """``progress=True`` runs NumPyro's vectorized chains (the progress bar needs them): the
    same posterior as the chains in one compiled program."""
    from bayesvae.models.ab_conjugate import BetaBinomialSpec

    spec = BetaBinomialSpec(["A", "B"], prior=(2.0, 3.0))
    options = {"num_warmup": 150, "num_samples": 300, "num_chains": 2, "seed": 4}
    shown = bayesvae.mcmc(spec, [20, 30], [100, 100], progress=True, **options)
    compiled = bayesvae.mcmc(spec, [20, 30], [100, 100], **options)
    assert shown.samples["rate"].shape == compiled.samples["rate"].shape == (2, 300, 2)
    # Beta(2 + 20, 3 + 80) and Beta(2 + 30, 3 + 70): means 22/105 and 32/105
    for run in (shown, compiled):
        means = run.samples["rate"].reshape(-1, 2).mean(0)
        np.testing.assert_allclose(means, [22 / 105, 32 / 105], atol=0.012)
