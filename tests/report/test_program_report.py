"""bayesvae.report on a user's own Pyro program: the run folder it writes and the sections of its
page, for SVI alone, MCMC alone and both (the guide against NUTS)."""

import json
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import yaml

import bayesvae


def counts_model(x, y=None):
    """A Poisson regression a user might write (counts: the PPC draws bars)."""
    alpha = pyro.sample("alpha", dist.Normal(0.0, 2.0))
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(x)):
        pyro.sample("y", dist.Poisson((alpha + beta * x).exp()), obs=y)


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(1)
    x = rng.normal(size=80)
    y = rng.poisson(np.exp(0.3 + 0.5 * x)).astype(float)
    pyro.clear_param_store()
    svi = bayesvae.fit(counts_model, x, y, guide="mvn", num_steps=800, progress=False)
    with warnings.catch_warnings():  # short chains: low ESS, honestly warned
        warnings.simplefilter("ignore", bayesvae.infer.mcmc.ConvergenceWarning)
        nuts = bayesvae.mcmc(counts_model, x, y, num_warmup=150, num_samples=150, num_chains=2)
    return svi, nuts


def test_both_fits_give_every_section(tmp_path, fits):
    svi, nuts = fits
    paths = bayesvae.report(svi, mcmc=nuts, out=tmp_path / "run", title="counts")
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "metrics.csv",
        "svi.nc",
        "posterior.nc",
        "comparison.csv",
        "ppc.png",
        "loo_khat.png",
        "guide_vs_nuts.png",
        "diagnostics.json",
    ):
        assert (run / name).exists(), name
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["family"] == "PyroProgram" and "def counts_model" in config["program"]["source"]
    assert config["program"]["arguments"]["x"].startswith("Tensor (80,)")
    assert set(config["versions"]) >= {"python", "torch", "pyro", "numpyro", "jax", "bayesvae"}
    assert json.loads((run / "diagnostics.json").read_text())["psis"]["verdict"]
    html = paths.html.read_text()
    for title in (
        "Model",
        "Posterior summary",
        "Posterior predictive checks",
        "Leave-one-out cross-validation (PSIS-LOO)",
        "The guide against NUTS",
        "Stochastic variational inference",
        "MCMC diagnostics",
    ):
        assert f"<h2>{title}</h2>" in html, title
    assert "versions at fit time" in html and "<script" not in html
    assert ("model.png" in paths.markdown.read_text()) == (run / "model.png").exists()


def test_an_svi_only_report_summarises_the_guide(tmp_path, fits):
    svi, _ = fits
    html = bayesvae.report(svi, out=tmp_path / "svi").html.read_text()
    assert "from the SVI guide" in html and "The guide against NUTS" not in html
    assert "<h2>Posterior summary</h2>" in html
    bounds = json.loads((tmp_path / "svi" / "diagnostics.json").read_text())["bounds"]
    assert bounds["local_plate"] is None and bounds["rows"] == 1  # global latents: the data set
    assert bounds["elbo"] <= bounds["iwae"] <= bounds["cubo"]
    assert "for the whole data set" in html and "CUBO" in html


def test_an_mcmc_only_report(tmp_path, fits):
    _, nuts = fits
    html = bayesvae.report(mcmc=nuts, out=tmp_path / "mcmc").html.read_text()
    assert "<h2>MCMC diagnostics</h2>" in html and "from NUTS" in html


def test_bad_report_arguments(tmp_path, fits):
    svi, nuts = fits
    with pytest.raises(ValueError, match="needs an SVI result"):
        bayesvae.report(out=tmp_path / "x")
    with pytest.raises(TypeError, match="svi must be the FitResult"):
        bayesvae.report(nuts, out=tmp_path / "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is not a folder"):
        bayesvae.report(svi, out=tmp_path / "file")


def per_point_model(y):
    """Every latent is per data point (a denoising model): k̂ per point applies."""
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Normal(z, 0.5), obs=y)


def test_a_program_whose_latents_are_all_local_gets_per_point_khat(tmp_path):
    import torch

    from bayesvae.models.program import inspect_sites

    y = np.random.default_rng(0).normal(size=40)
    assert inspect_sites(per_point_model, (torch.as_tensor(y),), {}).local_plate() == "data"
    x = torch.linspace(-1, 1, 30)
    assert inspect_sites(counts_model, (x, torch.ones(30)), {}).local_plate() is None
    pyro.clear_param_store()
    svi = bayesvae.fit(per_point_model, y, num_steps=300, progress=False)
    bayesvae.report(svi, out=tmp_path / "run")
    psis = json.loads((tmp_path / "run" / "diagnostics.json").read_text())["psis"]
    assert psis["local_plate"] == "data" and 0 <= psis["share_bad_points"] <= 1
    assert (tmp_path / "run" / "khat.png").is_file()
    assert (
        "Per data point (every latent is in plate" in (tmp_path / "run" / "report.md").read_text()
    )
    bounds = json.loads((tmp_path / "run" / "diagnostics.json").read_text())["bounds"]
    assert bounds["local_plate"] == "data" and bounds["rows"] == 40
    assert bounds["elbo"] <= bounds["iwae"] <= bounds["cubo"]
    assert (
        "Bounds on log p(x) per data point (mean over 40 points)"
        in (tmp_path / "run" / "report.md").read_text()
    )
