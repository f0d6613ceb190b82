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
        ({"dense_mass": "yes"}, TypeError, "dense_mass"),
        ({"jit_compile": "yes"}, TypeError, "jit_compile"),
        ({"init_strategy": "prior"}, ValueError, "init_strategy"),
        ({"target_accept_prob": 1.0}, ValueError, "target_accept_prob"),
        ({"backend": "stan"}, ValueError, "backend"),
    ],
)
def test_malformed_options_are_refused(y, option, error, words):
    with pytest.raises(error, match=words):
        bayesvae.mcmc(normal_mean, y, **{"num_warmup": 10, "num_samples": 10, **option})


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
