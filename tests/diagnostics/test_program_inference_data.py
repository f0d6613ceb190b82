"""InferenceData of a user's program, from SVI and from NUTS: the groups, dims named from the
plates, deterministic sites in the posterior, no spurious dims for scalars, and ArviZ's own
functions working on it unchanged."""

import warnings

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
from matplotlib import MatplotlibDeprecationWarning

import bayesvae


def model(X, group, num_groups, y=None):
    """Ordinary code: ``X @ beta`` and ``offset[group]`` are not written for a batch of draws."""
    beta = pyro.sample("beta", dist.Normal(0.0, 2.0).expand([X.shape[1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("groups", num_groups):
        offset = pyro.sample("offset", dist.Normal(0.0, 1.0))
    mean = pyro.deterministic("mean", X @ beta + offset[group])
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(mean, sigma), obs=y)


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    group = np.repeat(np.arange(3), 20)
    y = X @ np.array([1.0, -1.0]) + np.array([-1.0, 0.0, 1.0])[group] + rng.normal(size=60) * 0.3
    data = dict(X=X, group=group, num_groups=3, y=y)
    pyro.clear_param_store()
    svi = bayesvae.fit(model, **data, guide="mvn", num_steps=1500, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesvae.infer.mcmc.ConvergenceWarning)
        nuts = bayesvae.mcmc(model, **data, num_warmup=200, num_samples=200, num_chains=2)
    return svi, nuts


@pytest.mark.parametrize("which", ["svi", "mcmc"])
def test_groups_dims_and_deterministic_sites(fits, which):
    svi, nuts = fits
    idata = svi.to_inference_data(num_samples=200) if which == "svi" else nuts.inference_data
    groups = set(idata.groups())
    assert {
        "posterior",
        "posterior_predictive",
        "log_likelihood",
        "observed_data",
        "constant_data",
    } <= groups
    if which == "mcmc":
        assert {"sample_stats", "prior", "prior_predictive"} <= groups
    posterior = idata.posterior
    assert posterior["sigma"].dims == ("chain", "draw")  # a scalar: no spurious size-1 dim
    assert posterior["offset"].dims[2:] == ("groups",)
    assert posterior["beta"].shape[2:] == (2,)
    assert "mean" in posterior and "mean" not in idata.observed_data  # deterministic
    assert idata.log_likelihood["y"].dims[2:] == ("data",)
    assert idata.observed_data["y"].dims == ("data",)
    assert set(idata.constant_data.data_vars) == {"X", "group"}


def test_arviz_works_on_both_unchanged(fits):
    svi, nuts = fits
    svi_data, mcmc_data = svi.to_inference_data(num_samples=300), nuts.inference_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # honest Pareto-k and one-chain notes
        # ArviZ 0.23's trace plot calls an API matplotlib 3.11 deprecates
        warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
        # and az.compare a pandas keyword that pandas 3.1 deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        for idata in (svi_data, mcmc_data):
            assert np.isfinite(az.loo(idata, pointwise=True).elpd_loo)
            assert np.isfinite(az.waic(idata).elpd_waic)
            az.plot_ppc(idata, num_pp_samples=20)
            assert "mean" in az.summary(idata, var_names=["beta"]).columns
        compared = az.compare({"svi": svi_data, "nuts": mcmc_data})
        assert set(compared.index) == {"svi", "nuts"}
        az.plot_trace(mcmc_data, var_names=["beta", "sigma"])
    plt.close("all")
    # SVI (mvn) and NUTS agree on this well-posed model, within 0.4 sd here: 2 x 200 NUTS draws
    # and 300 guide draws add about 0.1 sd of Monte Carlo error to the 0.25 sd of agreement
    table = bayesvae.diagnostics.compare_posteriors(svi_data, nuts, var_names=["beta", "sigma"])
    assert (table["mean_diff_sd"].abs() < 0.4).all() and table["sd_ratio"].between(0.7, 1.4).all()


def test_vectorized_draws_fall_back_or_are_refused_for_programs(fits):
    svi, _ = fits
    looped = svi.to_inference_data(num_samples=50, seed=1)
    # forced vectorized: this program computes X @ beta for a batch of draws and fails, so the
    # draws fall back to one at a time with the same result
    vectorized = svi.to_inference_data(num_samples=50, seed=1, vectorize=True)
    assert vectorized.posterior["beta"].shape == looped.posterior["beta"].shape


def test_coords_label_the_plates_in_every_group(fits):
    svi, _ = fits
    names = ["north", "middle", "south"]
    idata = svi.to_inference_data(num_samples=50, coords={"groups": names})
    assert idata.posterior["offset"].coords["groups"].values.tolist() == names
    with pytest.raises(ValueError, match=r"coords\['groups'\] has 2 labels; dim 'groups' has 3"):
        svi.to_inference_data(num_samples=10, coords={"groups": names[:2]})
    with pytest.raises(ValueError, match=r"lacks; its dims: \[.*'groups'"):
        svi.to_inference_data(num_samples=10, coords={"schools": names})
    with pytest.raises(TypeError, match="coords must be a dict"):
        svi.to_inference_data(num_samples=10, coords=["north"])


def test_mcmc_checks_coords_against_the_plates_before_sampling(fits):
    svi, _ = fits
    args, kwargs = svi.data
    with pytest.raises(ValueError, match="plate 'groups' has 3"):
        bayesvae.mcmc(model, *args, coords={"groups": ["a"]}, num_warmup=5, num_samples=5, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesvae.infer.mcmc.ConvergenceWarning)
        nuts = bayesvae.mcmc(
            model,
            *args,
            coords={"groups": list("abc")},
            num_warmup=20,
            num_samples=20,
            num_chains=1,
            **kwargs,
        )
    assert nuts.inference_data.posterior.coords["groups"].values.tolist() == ["a", "b", "c"]
    assert nuts.inference_data.prior.coords["groups"].values.tolist() == ["a", "b", "c"]


def regression(X, y=None):
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def test_a_dataframes_columns_and_index_become_coordinates():
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 3)), columns=["age", "income", "score"])
    X.index = [f"row{i}" for i in range(30)]
    y = pd.Series(X.to_numpy() @ np.array([1.0, 0.0, -1.0]) + rng.normal(size=30), index=X.index)
    pyro.clear_param_store()
    svi = bayesvae.fit(regression, X, y, num_steps=100, progress=False)
    constant = svi.to_inference_data(num_samples=20).constant_data
    assert constant["X"].coords["X_dim_1"].values.tolist() == ["age", "income", "score"]
    assert constant["X"].coords["X_dim_0"].values.tolist()[:2] == ["row0", "row1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesvae.infer.mcmc.ConvergenceWarning)
        nuts = bayesvae.mcmc(regression, X, y, num_warmup=20, num_samples=20, num_chains=1)
    labels = nuts.inference_data.constant_data["X"].coords["X_dim_1"].values.tolist()
    assert labels == ["age", "income", "score"]
