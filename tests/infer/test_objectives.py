"""The objectives bayesvae.fit trains with: Pyro's ELBOs without host syncs in
``differentiable_loss`` (same values and gradients as Pyro's), checked family by family."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import JitTrace_ELBO, Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import constraints

from bayesvae.infer import fit
from bayesvae.infer.objectives import (
    OBJECTIVES,
    SyncFreeJitTrace_ELBO,
    SyncFreeTrace_ELBO,
    SyncFreeTraceMeanField_ELBO,
    make_elbo,
    quiet_jit_deprecation,
)
from bayesvae.models import (
    VAE,
    ConditionalVAE,
    GumbelSoftmaxVAE,
    HierarchicalVAE,
)
from bayesvae.models.cvae import one_hot_labels


def score_function_model(x):
    """A discrete latent without reparameterization: its gradient needs score-function terms."""
    p = pyro.param("p", torch.tensor(0.3), constraint=constraints.unit_interval)
    shift = pyro.param("shift", torch.tensor(0.5))
    with pyro.plate("data", len(x)):
        b = pyro.sample("b", dist.Bernoulli(p))
        pyro.sample("x", dist.Normal(shift * b, 1.0), obs=x)


def score_function_guide(x):
    q = pyro.param("q", torch.full((len(x),), 0.6), constraint=constraints.unit_interval)
    with pyro.plate("data", len(x)):
        pyro.sample("b", dist.Bernoulli(q))


def no_closed_form_model(x):
    """Gamma prior, log-normal guide: torch has no KL between them (meanfield samples it)."""
    with pyro.plate("data", len(x)):
        rate = pyro.sample("rate", dist.Gamma(2.0, 2.0))
        pyro.sample("x", dist.Exponential(rate), obs=x)


def no_closed_form_guide(x):
    loc = pyro.param("loc", torch.zeros(len(x)))
    with pyro.plate("data", len(x)):
        pyro.sample("rate", dist.LogNormal(loc, 0.5))


def loss_and_grads(objective, model, guide, *args, **kwargs):
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(False):
        loss = objective.differentiable_loss(model, guide, *args, **kwargs)
    params = {name: pyro.param(name).unconstrained() for name in pyro.get_param_store()}
    grads = torch.autograd.grad(loss, list(params.values()))
    return loss.detach(), dict(zip(params, grads, strict=True))


def assert_same(pyro_objective, ours, model, guide, *args, **kwargs):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(False):
        ours.differentiable_loss(model, guide, *args, **kwargs)  # creates the parameters
    expected_loss, expected = loss_and_grads(pyro_objective, model, guide, *args, **kwargs)
    loss, grads = loss_and_grads(ours, model, guide, *args, **kwargs)
    torch.testing.assert_close(loss, expected_loss)
    assert grads.keys() == expected.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], expected[name], msg=name)


def test_fit_trains_with_the_sync_free_objectives():
    assert OBJECTIVES["trace"] is SyncFreeTrace_ELBO
    assert OBJECTIVES["meanfield"] is SyncFreeTraceMeanField_ELBO
    assert OBJECTIVES["jit"] is SyncFreeJitTrace_ELBO
    # still Pyro's classes for anything that checks
    assert isinstance(make_elbo("trace"), Trace_ELBO)
    assert isinstance(make_elbo("meanfield"), TraceMeanField_ELBO)


@pytest.mark.parametrize("num_particles", [1, 3])
def test_trace_elbo_matches_pyro_on_a_vae(num_particles):
    vae = VAE(64, latent_dim=3, hidden_dims=(16,), seed=0)
    x = torch.bernoulli(torch.full((6, 64), 0.3))
    options = dict(num_particles=num_particles, vectorize_particles=num_particles > 1)
    max_plate = dict(max_plate_nesting=1) if num_particles > 1 else {}
    assert_same(
        Trace_ELBO(**options, **max_plate),
        SyncFreeTrace_ELBO(**options, **max_plate),
        vae.model,
        vae.guide,
        x,
        num_data=60,
    )


def test_trace_elbo_matches_pyro_with_score_function_terms():
    x = torch.tensor([0.1, 1.2, -0.3, 0.8])
    assert_same(Trace_ELBO(), SyncFreeTrace_ELBO(), score_function_model, score_function_guide, x)


@pytest.mark.parametrize("which", ["closed form", "sampled"])
def test_mean_field_elbo_matches_pyro(which):
    if which == "closed form":
        vae = VAE(64, latent_dim=3, hidden_dims=(16,), likelihood="gaussian", seed=0)
        args, model, guide = (torch.rand(5, 64),), vae.model, vae.guide
    else:
        args = (torch.tensor([0.5, 2.0, 0.1]),)
        model, guide = no_closed_form_model, no_closed_form_guide
    assert_same(TraceMeanField_ELBO(), SyncFreeTraceMeanField_ELBO(), model, guide, *args)


@pytest.mark.parametrize("which", ["vae", "score function"])
def test_jit_elbo_has_the_elbo_gradient_not_twice_it(which):
    if which == "vae":
        vae = VAE(64, latent_dim=3, hidden_dims=(16,), seed=0)
        model, guide = vae.model, vae.guide
        args = (torch.bernoulli(torch.full((6, 64), 0.3)),)
    else:
        model, guide = score_function_model, score_function_guide
        args = (torch.tensor([0.1, 1.2, -0.3, 0.8]),)
    ours = SyncFreeJitTrace_ELBO(ignore_jit_warnings=True)
    pyros = JitTrace_ELBO(ignore_jit_warnings=True)
    with pyro.validation_enabled(False), quiet_jit_deprecation():
        for objective in (ours, pyros):  # compile both
            objective.differentiable_loss(model, guide, *args)
        params = [pyro.param(name).unconstrained() for name in pyro.get_param_store()]

        def value_and_grads(fn):
            pyro.set_rng_seed(0)  # the same draws in each compiled function
            value = fn()
            return value.detach(), torch.autograd.grad(value, params, allow_unused=True)

        loss, _ = value_and_grads(lambda: ours.loss_and_surrogate_loss(model, guide, *args)[0])
        _, expected = value_and_grads(lambda: ours.loss_and_surrogate_loss(model, guide, *args)[1])
        value, grads = value_and_grads(lambda: ours.differentiable_loss(model, guide, *args))
        _, pyro_grads = value_and_grads(lambda: pyros.differentiable_loss(model, guide, *args))
    torch.testing.assert_close(value, loss)
    for got, want, theirs in zip(grads, expected, pyro_grads, strict=True):
        if want is None:
            continue
        torch.testing.assert_close(got, want)
        if which == "vae":  # Pyro's adds the loss's own gradient: twice the ELBO's
            torch.testing.assert_close(theirs, 2 * want)


def _families():
    """The VAE family's training steps. Not here: TraceEnum_ELBO (mixture-prior VAE, anomaly
    mixtures), whose Dice estimator asks the device whether a probability is zero, and
    ProdLDA, whose multinomial likelihood needs the longest document's length."""
    x = torch.bernoulli(torch.full((8, 64), 0.3))
    labels = one_hot_labels("y", torch.arange(8) % 10, 10)
    small = dict(hidden_dims=(16,), seed=0)
    return {
        "vae/trace": (VAE(64, latent_dim=3, **small), "trace", (x,)),
        "vae/meanfield": (VAE(64, latent_dim=3, **small), "meanfield", (x,)),
        "vae/iwae": (VAE(64, latent_dim=3, **small), "iwae", (x,)),
        "vae/jit": (VAE(64, latent_dim=3, **small), "jit", (x,)),
        "iaf/trace": (VAE(64, latent_dim=3, flows=1, **small), "trace", (x,)),
        "cvae/trace": (
            ConditionalVAE(64, num_classes=10, latent_dim=3, **small),
            "trace",
            (x, labels),
        ),
        "hvae/trace": (HierarchicalVAE(64, latent_dim=3, top_latent_dim=2, **small), "trace", (x,)),
        "gumbel/trace": (
            GumbelSoftmaxVAE(64, num_variables=3, categories=3, **small),
            "trace",
            (x,),
        ),
    }


@pytest.fixture
def no_host_syncs(monkeypatch):
    """Make every tensor-to-Python conversion (what waits for a GPU) raise."""

    def refuse(*args, **kwargs):
        raise AssertionError("a host sync: a tensor was turned into a Python value")

    def forbid():
        for name in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__"):
            monkeypatch.setattr(torch.Tensor, name, refuse)

    return forbid


@pytest.mark.parametrize("case", list(_families()))
def test_a_training_step_never_waits_for_the_device(case, no_host_syncs):
    model, elbo, args = _families()[case]
    nesting = getattr(model, "max_plate_nesting", None)
    objective = make_elbo(elbo, **({"max_plate_nesting": nesting} if nesting else {}))
    step_model, step_guide = model.model, model.guide
    with pyro.validation_enabled(False), quiet_jit_deprecation(elbo == "jit"):
        objective.differentiable_loss(step_model, step_guide, *args, num_data=80)  # warm-up
        no_host_syncs()
        loss = objective.differentiable_loss(step_model, step_guide, *args, num_data=80)
        loss.backward()
    assert loss.requires_grad and loss.shape == ()


def test_the_check_catches_pyros_own_waits(no_host_syncs):
    # the same step with Pyro's Trace_ELBO turns log densities into floats: the check must see it
    vae = VAE(64, latent_dim=3, hidden_dims=(16,), seed=0)
    x = torch.bernoulli(torch.full((8, 64), 0.3))
    with pyro.validation_enabled(False):
        Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
        no_host_syncs()
        with pytest.raises(AssertionError, match="host sync"):
            Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)


def test_fit_with_the_default_objective_still_trains(digits):
    vae = VAE(64, latent_dim=4, hidden_dims=(32,), seed=0)
    history = fit(vae, digits, epochs=4, batch_size=64, lr=3e-3, seed=0).history
    assert history["train_elbo"].iloc[-1] > history["train_elbo"].iloc[0] + 5
