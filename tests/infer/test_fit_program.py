"""bayesvae.fit on a user's own Pyro program: as written, with each guide kind, minibatched by its
own plate, with Pyro objectives and optimizers, resumed, and refused on bad input."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import RenyiELBO, TraceGraph_ELBO
from pyro.infer.autoguide import AutoDelta

import bayesvae
from bayesvae.models.program import PyroProgram


def regression(X, y=None):
    """A Pyro tutorial regression, as a user writes it (no bayesvae in it)."""
    weight = pyro.sample("weight", dist.Normal(0.0, 10.0).expand([X.shape[1]]).to_event(1))
    bias = pyro.sample("bias", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    mean = bias + X @ weight
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(mean, sigma), obs=y)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = X @ np.array([1.5, -2.0]) + 0.5 + rng.normal(scale=0.5, size=300)
    return X, y


def test_a_tutorial_model_fits_as_written(data):
    X, y = data
    result = bayesvae.fit(regression, X, y, guide="mvn", num_steps=1500, progress=False)
    assert isinstance(result.model, PyroProgram)
    history = result.history
    assert list(history["step"]) == list(range(100, 1501, 100))
    # per-point ELBO of a unit-noise-0.5 regression: about -log(0.5 sqrt(2 pi e)) = -0.73
    assert -1.0 < history["train_elbo"].iloc[-1] < -0.6
    median = result.model.autoguide.median(torch.as_tensor(X, dtype=torch.float32))
    assert torch.allclose(median["weight"], torch.tensor([1.5, -2.0]), atol=0.1)
    assert float(median["sigma"]) == pytest.approx(0.5, abs=0.06)


def test_same_seed_same_history(data):
    X, y = data
    runs = [
        bayesvae.fit(regression, X, y, num_steps=200, seed=3, progress=False).history
        for _ in range(2)
    ]
    assert runs[0]["train_elbo"].tolist() == runs[1]["train_elbo"].tolist()


@pytest.mark.parametrize("guide", ["normal", "mvn", "lowrank", "iaf", "delta", "laplace"])
def test_every_autoguide_by_name_trains(data, guide):
    X, y = data
    result = bayesvae.fit(regression, X, y, guide=guide, num_steps=300, progress=False)
    first, last = result.history["train_elbo"].iloc[[0, -1]]
    assert last > first and math.isfinite(last)


def test_an_autoguide_instance_and_a_users_guide(data):
    X, y = data
    instance = AutoDelta(regression)
    result = bayesvae.fit(regression, X, y, guide=instance, num_steps=200, progress=False)
    assert result.model.autoguide is instance

    def own_guide(X, y=None):
        loc = pyro.param("w_loc", torch.zeros(X.shape[1]))
        pyro.sample("weight", dist.Normal(loc, 0.1).to_event(1))
        pyro.sample("bias", dist.Normal(pyro.param("b_loc", torch.tensor(0.0)), 0.1))
        scale = pyro.param("s_loc", torch.tensor(1.0), constraint=dist.constraints.positive)
        pyro.sample("sigma", dist.Delta(scale))

    result = bayesvae.fit(regression, X, y, guide=own_guide, num_steps=600, progress=False)
    assert torch.allclose(pyro.param("w_loc"), torch.tensor([1.5, -2.0]), atol=0.15)


def test_a_subsampling_plate_is_scaled_by_pyro(data):
    """The program draws its own minibatches; the ELBO per point matches full-batch training."""
    X, y = data

    def minibatched(X, y=None):
        weight = pyro.sample("weight", dist.Normal(0.0, 10.0).expand([2]).to_event(1))
        bias = pyro.sample("bias", dist.Normal(0.0, 10.0))
        sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
        with pyro.plate("data", X.shape[0], subsample_size=50) as index:
            pyro.sample("y", dist.Normal(bias + X[index] @ weight, sigma), obs=y[index])

    result = bayesvae.fit(minibatched, X, y, guide="normal", num_steps=2000, progress=False)
    full = bayesvae.fit(regression, X, y, guide="normal", num_steps=2000, progress=False)
    assert result.history["train_elbo"].iloc[-1] == pytest.approx(
        full.history["train_elbo"].iloc[-1], abs=0.15
    )


def test_a_plate_whose_size_disagrees_with_the_data_is_refused(data):
    X, y = data

    def wrong_size(X, y=None):
        bias = pyro.sample("bias", dist.Normal(0.0, 10.0))
        with pyro.plate("data", 1000, subsample_size=50) as index:
            pyro.sample("y", dist.Normal(bias, 1.0), obs=y[index % len(y)])

    with pytest.raises(ValueError, match="plate 'data' subsamples 50 of size=1000"):
        bayesvae.fit(wrong_size, X, y, num_steps=10, progress=False)


def test_pyro_objectives_and_optimizers_are_accepted(data):
    X, y = data
    for elbo in (TraceGraph_ELBO(), RenyiELBO(alpha=0.5, num_particles=2)):
        result = bayesvae.fit(
            regression, X, y, elbo=elbo, num_steps=200, eval_every=50, progress=False
        )
        assert result.settings["elbo"] == type(elbo).__name__
        assert result.history["train_elbo"].iloc[-1] > result.history["train_elbo"].iloc[0]
    result = bayesvae.fit(
        regression, X, y, optimizer=pyro.optim.Adam({"lr": 0.02}), num_steps=300, progress=False
    )
    assert result.history["train_elbo"].iloc[-1] > result.history["train_elbo"].iloc[0]
    result = bayesvae.fit(
        regression, X, y, optimizer=torch.optim.RMSprop, lr=0.01, num_steps=100, progress=False
    )
    assert result.settings["optimizer"] == "RMSprop"


def test_early_stopping_counts_evaluations(data):
    X, y = data
    result = bayesvae.fit(
        regression,
        X,
        y,
        num_steps=20000,
        eval_every=100,
        early_stopping=3,
        lr=0.05,
        progress=False,
    )
    assert result.stop_reason is not None and len(result.history) < 200


def test_resume_continues_a_program_exactly(tmp_path, data):
    """With a constant rate a resumed fit is the uninterrupted one (a cosine schedule's horizon
    is each fit's own num_steps, so asking for more steps changes the rates)."""
    X, y = data
    options = dict(progress=False, lr_schedule="constant")
    whole = bayesvae.fit(regression, X, y, num_steps=400, checkpoint_dir=tmp_path, **options)
    pyro.clear_param_store()
    first = tmp_path / "first"
    bayesvae.fit(regression, X, y, num_steps=200, checkpoint_dir=first, **options)
    pyro.clear_param_store()
    resumed = bayesvae.fit(
        regression, X, y, num_steps=400, checkpoint_dir=first, resume=True, **options
    )
    assert resumed.history["train_elbo"].tolist() == pytest.approx(
        whole.history["train_elbo"].tolist(), rel=1e-6
    )
    with pytest.raises(ValueError, match="already run 400 steps"):
        bayesvae.fit(regression, X, y, num_steps=100, checkpoint_dir=first, resume=True, **options)


def test_a_resumed_cosine_schedule_decays_to_its_new_end(tmp_path, data):
    X, y = data
    bayesvae.fit(regression, X, y, num_steps=200, progress=False, checkpoint_dir=tmp_path)
    pyro.clear_param_store()
    more = bayesvae.fit(
        regression, X, y, num_steps=800, progress=False, checkpoint_dir=tmp_path, resume=True
    )
    rates = more.history["lr"].to_numpy()
    assert rates[2] > rates[1]  # picked up on the longer horizon
    assert np.all(np.diff(rates[2:]) < 0) and rates[-1] < 0.1 * rates[2]


def test_keywords_pass_to_the_program_and_options_clash_through_model_kwargs(data):
    X, y = data

    def scaled(X, y=None, lr=1.0):
        bias = pyro.sample("bias", dist.Normal(0.0, 10.0))
        with pyro.plate("data", X.shape[0]):
            pyro.sample("y", dist.Normal(bias * lr, 1.0), obs=y)

    result = bayesvae.fit(scaled, X, y=y, model_kwargs={"lr": 2.0}, num_steps=300, progress=False)
    median = result.model.autoguide.median(X, y=y, lr=2.0)
    # y ~ N(2 bias, 1): the posterior sits at mean(y) / 2 (0.14 here); without lr=2, mean(y)
    assert float(median["bias"]) == pytest.approx(y.mean() / 2, abs=0.04)


def test_a_users_module_with_model_and_guide_fits(data):
    X, y = data

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.loc = torch.nn.Parameter(torch.zeros(2))

        def model(self, X, y=None):
            regression(X, y)

        def guide(self, X, y=None):
            pyro.module("reg", self)
            pyro.sample("weight", dist.Normal(self.loc, 0.05).to_event(1))
            pyro.sample("bias", dist.Normal(0.5, 0.05))
            pyro.sample("sigma", dist.Delta(torch.tensor(0.5)))

    module = Regression()
    bayesvae.fit(module, X, y, num_steps=500, progress=False)
    assert torch.allclose(module.loc.detach(), torch.tensor([1.5, -2.0]), atol=0.15)


# ------------------------------------------------------------------------------ bad input
def test_bad_programs_and_options_are_refused_before_training(data):
    X, y = data

    def prior_only(X, y=None):
        pyro.sample("bias", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="samples no observed site"):
        bayesvae.fit(prior_only, X, y, num_steps=10, progress=False)
    with pytest.raises(ValueError, match="unknown guide 'nomral'"):
        bayesvae.fit(regression, X, y, guide="nomral", num_steps=10, progress=False)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="X has 1 NaN"):
        bayesvae.fit(regression, bad, y, num_steps=10, progress=False)

    def partial_guide(X, y=None):
        pyro.sample("weight", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        pyro.sample("slope", dist.Normal(0.0, 1.0))

    with pytest.raises(
        ValueError, match=r"missing from the guide: \['bias', 'sigma'\].*\['slope'\]"
    ):
        bayesvae.fit(regression, X, y, guide=partial_guide, num_steps=10, progress=False)
    with pytest.raises(ValueError, match="apply to model families"):
        bayesvae.fit(regression, X, y, epochs=3, progress=False)
    with pytest.raises(ValueError, match="unknown device"):
        bayesvae.fit(regression, X, y, device="cdua", progress=False)
    with pytest.raises(TypeError, match="seed must be a non-negative integer"):
        bayesvae.fit(regression, X, y, seed="abc", progress=False)
    with pytest.raises(ValueError, match=r"lr_decay must be a finite number in \(0, 1\]"):
        bayesvae.fit(regression, X, y, lr_decay=-5, lr_schedule="exponential", progress=False)


def test_a_numpyro_program_is_refused_by_fit(data):
    import numpyro
    import numpyro.distributions as nd

    X, y = data

    def numpyro_regression(X, y=None):
        bias = numpyro.sample("bias", nd.Normal(0.0, 10.0))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("y", nd.Normal(bias, 1.0), obs=y)

    with pytest.raises(TypeError, match="is a NumPyro program"):
        bayesvae.fit(numpyro_regression, X, y, num_steps=10, progress=False)


def test_a_family_refuses_program_keywords(digits):
    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(8,))
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['beta'\\]"):
        bayesvae.fit(vae, digits.x[:64], beta=2.0, progress=False)
    with pytest.raises(ValueError, match="num_steps applies to Pyro programs"):
        bayesvae.fit(vae, digits.x[:64], num_steps=10, progress=False)
    with pytest.raises(ValueError, match="brings its own guide"):
        bayesvae.fit(vae, digits.x[:64], guide="normal", progress=False)
    with pytest.raises(ValueError, match="eval_size must be a non-negative integer, got -1"):
        bayesvae.fit(vae, digits.x[:64], eval_size=-1, progress=False)
    with pytest.raises(TypeError, match="eval_size must be a non-negative integer"):
        bayesvae.fit(vae, digits.x[:64], eval_size=0.5, progress=False)


@pytest.mark.parametrize("guide", ["normal", "mvn"])
def test_a_program_saves_and_loads_with_its_function(tmp_path, data, guide):
    X, y = data
    result = bayesvae.fit(regression, X, y, guide=guide, num_steps=300, progress=False)
    before = result.model.autoguide.median(*result.data[0])
    folder = result.save(tmp_path / "run")
    assert (folder / "data.pt").exists()
    pyro.clear_param_store()
    loaded = bayesvae.load(folder, model=regression)
    after = loaded.autoguide.median(*loaded.fitted_data[0])
    for name, value in before.items():
        assert torch.allclose(value, after[name], atol=1e-6), name
    with pytest.raises(ValueError, match="pass the function"):
        bayesvae.load(folder)


def test_a_program_with_its_own_guide_loads_with_both(tmp_path, data):
    X, y = data

    def guide(X, y=None):
        loc = pyro.param("w_loc", torch.zeros(X.shape[1]))
        pyro.sample("weight", dist.Normal(loc, 0.1).to_event(1))
        pyro.sample("bias", dist.Normal(pyro.param("b_loc", torch.tensor(0.0)), 0.1))
        pyro.sample("sigma", dist.Delta(torch.tensor(0.5)))

    result = bayesvae.fit(regression, X, y, guide=guide, num_steps=300, progress=False)
    saved = pyro.param("w_loc").detach().clone()
    folder = result.save(tmp_path / "own")
    pyro.clear_param_store()
    with pytest.raises(ValueError, match="pass it"):
        bayesvae.load(folder, model=regression)
    bayesvae.load(folder, model=regression, guide=guide)
    assert torch.allclose(pyro.param("w_loc"), saved)
