import warnings

import arviz as az
import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import pytest
import torch

import bayesvae
from bayesvae.diagnostics import (
    compare,
    elbo_convergence,
    loo,
    mcmc_checks,
    psis_diagnostic,
    svi_to_inference_data,
    vae_diagnostics,
    waic,
)
from bayesvae.infer.mcmc import mcmc
from bayesvae.models import BetaBinomialABTest, PyroModel

COV = torch.tensor([[1.0, 0.95], [0.95, 1.0]])


class CorrelatedGaussian(PyroModel):
    """Posterior = N(0, COV); the guide is a fixed Gaussian (mean-field or full-rank)."""

    max_plate_nesting = 0

    def __init__(self, guide_cov):
        super().__init__({})
        self.guide_cov = guide_cov

    def model(self):
        pyro.sample("z", dist.MultivariateNormal(torch.zeros(2), COV))

    def guide(self):
        pyro.sample("z", dist.MultivariateNormal(torch.zeros(2), self.guide_cov))


def test_khat_flags_a_mean_field_guide_on_a_correlated_posterior():
    # the KL(q||p)-optimal mean-field Gaussian has variances 1 / precision_ii = 1 - rho^2
    mean_field = CorrelatedGaussian(torch.eye(2) * (1 - 0.95**2))
    poor = psis_diagnostic(mean_field, num_samples=4000)
    assert poor.khat > 0.7 and poor.verdict == "untrustworthy"
    good = psis_diagnostic(CorrelatedGaussian(COV * 1.2), num_samples=4000)
    assert good.khat < 0.5 and good.verdict == "good"


def test_per_point_khat_for_an_amortized_guide(digits):
    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(32,), seed=0)
    bayesvae.fit(vae, digits.x[:600], epochs=3, progress=False)
    result = psis_diagnostic(vae, digits.x[:50], num_samples=300)
    assert result.khat is None and result.khat_per_point.shape == (50,)
    assert result.verdict in {"good", "usable", "untrustworthy"}
    assert 0.0 <= result.share_bad_points <= 1.0


def test_svi_and_mcmc_inference_data_agree():
    data = ([200, 220], [1000, 1000])
    model = BetaBinomialABTest(["A", "B"])
    bayesvae.fit(
        model,
        data,
        epochs=800,
        batch_size=2,
        lr=0.005,
        elbo="meanfield",
        num_particles=16,
        progress=False,
    )
    svi = svi_to_inference_data(model, *data, num_samples=3000)
    assert {"posterior", "posterior_predictive", "observed_data", "log_likelihood"} <= set(
        svi.groups()
    )
    assert svi.posterior.sizes["chain"] == 1  # independent draws, no R-hat pretence
    assert svi.posterior["rate"].dims == ("chain", "draw", "arm")
    assert svi.log_likelihood["obs"].dims == ("chain", "draw", "arm")
    sampled = mcmc(BetaBinomialABTest(["A", "B"]), *data, num_samples=2000, num_chains=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one-chain summary and k-hat notes from ArviZ
        summary_svi = az.summary(svi, var_names=["rate"])
        summary_mcmc = az.summary(sampled.inference_data, var_names=["rate"])
        np.testing.assert_allclose(summary_svi["mean"], summary_mcmc["mean"], atol=0.003)
        for idata in (svi, sampled.inference_data):
            assert np.isfinite(loo(idata).elpd_loo) and np.isfinite(waic(idata).elpd_waic)
        table = compare({"svi": svi, "mcmc": sampled.inference_data})
    assert set(table.index) == {"svi", "mcmc"}


def test_fit_result_converts_to_inference_data(digits):
    result = bayesvae.fit(
        bayesvae.VAE(64, latent_dim=2, hidden_dims=(16,), seed=0),
        digits.x[:200],
        epochs=1,
        progress=False,
    )
    idata = result.to_inference_data(digits.x[:30], num_samples=20)
    assert idata.posterior["z"].shape == (1, 20, 30, 2)
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "data")


def test_vae_inference_data_has_named_dims_and_bounded_batches(digits):
    vae = bayesvae.VAE(64, latent_dim=3, hidden_dims=(16,), seed=0)
    idata = svi_to_inference_data(vae, digits.x[:40], num_samples=25, draw_batch=10)
    assert idata.posterior["z"].shape == (1, 25, 40, 3)
    assert idata.posterior["z"].dims[:3] == ("chain", "draw", "data")
    assert idata.log_likelihood["x"].shape == (1, 25, 40)
    assert idata.posterior_predictive["x"].shape == (1, 25, 40, 64)


def test_elbo_convergence_plateau_test():
    flat = pd.DataFrame({"train_elbo": -100 + 50 * np.exp(-np.arange(200) / 10.0)})
    rising = pd.DataFrame({"train_elbo": np.linspace(-200, -100, 200)})
    assert elbo_convergence(flat)["converged"]
    assert not elbo_convergence(rising)["converged"]
    assert not elbo_convergence(flat.iloc[:3])["converged"]
    with pytest.raises(ValueError, match="no column"):
        elbo_convergence(flat, column="val_elbo")


def test_mcmc_checks_report_bfmi_and_problems():
    model = BetaBinomialABTest(["A", "B"])
    good = mcmc_checks(mcmc(model, [20, 25], [100, 100], num_samples=1000).inference_data)
    assert good["problems"] == [] and len(good["bfmi"]) == 4 and good["divergences"] == 0
    assert {"r_hat", "ess_bulk", "ess_tail", "mcse_mean"} <= set(good["summary"].columns)
    with pytest.warns(UserWarning):
        short = mcmc(model, [20, 25], [100, 100], num_samples=20, num_warmup=10)
    assert any("ESS" in p for p in mcmc_checks(short.inference_data)["problems"])


def test_vae_diagnostics_and_collapse_warning(digits):
    vae = bayesvae.VAE(64, latent_dim=4, hidden_dims=(16,), seed=0)
    with pytest.warns(UserWarning, match="posterior collapse"):
        untrained = vae_diagnostics(vae, digits.x[:200], num_samples=20)
    assert untrained["active_units"] < 2 and len(untrained["kl_per_dimension"]) == 4
    bayesvae.fit(vae, digits.x, epochs=15, lr=3e-3, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        trained = vae_diagnostics(vae, digits.x[:200], num_samples=50)
    assert trained["active_units"] >= 1 and trained["gap"] > 0  # IWAE is the tighter bound
