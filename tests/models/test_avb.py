"""Adversarial Variational Bayes: the ELBO's KL is the discriminator's estimate, the discriminator
learns the density ratio in the same step, and the model trains, saves and refuses bad options."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

import bayesvae
from bayesvae.infer.objectives import make_elbo
from bayesvae.models import AdversarialVAE


def small(**options):
    settings = dict(latent_dim=2, hidden_dims=(16,), discriminator_hidden=(32,), seed=0)
    return AdversarialVAE(8, **{**settings, **options})


X = torch.rand(16, 8).round()


def test_the_guides_log_density_is_the_discriminators_estimate():
    model = small()
    trace = pyro.poutine.trace(model.guide).get_trace(X)
    z = trace.nodes["z"]["value"]
    trace.compute_log_prob()
    prior = dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
    expected = model.log_ratio(X, z) + prior
    torch.testing.assert_close(trace.nodes["z"]["log_prob"], expected)
    assert "adversary" in trace.nodes


class _Spread(torch.nn.Module):
    """An implicit guide with a known density: z = 0.5 * eps, whatever x."""

    def forward(self, inputs):
        return 0.5 * inputs[..., -2:]


@pytest.mark.slow
def test_the_adversary_term_trains_the_discriminator_to_the_density_ratio():
    model = small(noise_dim=2, discriminator_hidden=(64, 64))
    model.implicit = _Spread()
    optimizer = torch.optim.Adam(model.discriminator.parameters(), lr=5e-3)
    objective = make_elbo("trace", max_plate_nesting=1)
    x = torch.zeros(256, 8)
    for _ in range(600):
        optimizer.zero_grad()
        objective.differentiable_loss(model.model, model.guide, x).backward()
        optimizer.step()
    z = torch.tensor([[0.0, 0.0], [0.3, -0.2], [-0.5, 0.4]])
    exact = dist.Normal(0.0, 0.5).log_prob(z).sum(-1) - dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
    with torch.no_grad():
        estimate = model.log_ratio(torch.zeros(3, 8), z)
    torch.testing.assert_close(estimate, exact, atol=0.35, rtol=0)


def test_the_elbo_part_leaves_the_discriminator_alone():
    # without the adversary factor, the loss's gradient reaches the encoder, not T
    model = small()
    trace = pyro.poutine.trace(model.guide).get_trace(X)
    model_trace = pyro.poutine.trace(pyro.poutine.replay(model.model, trace)).get_trace(X)
    trace.compute_log_prob()
    model_trace.compute_log_prob()
    elbo = model_trace.log_prob_sum() - trace.nodes["z"]["log_prob_sum"]
    elbo.backward()
    assert all(
        p.grad is None or float(p.grad.abs().max()) == 0 for p in model.discriminator.parameters()
    )
    assert any(
        p.grad is not None and float(p.grad.abs().max()) > 0 for p in model.implicit.parameters()
    )


def test_it_trains_and_its_bounds_come_from_the_proposal(digits, tmp_path):
    model = AdversarialVAE(64, latent_dim=4, hidden_dims=(64,), seed=0)
    before = float(model.log_likelihood(digits.x[1500:1600], num_samples=50, seed=0).mean())
    result = bayesvae.fit(model, digits.x[:1500], val=digits.x[1500:], epochs=8, batch_size=64,
                          lr=3e-3, progress=False)  # fmt: skip
    history = result.history
    # the reconstruction term learns steadily; the ELBO's KL part is the discriminator's estimate,
    # which swings while the two players adapt, so its best epoch is what must improve
    assert history["recon"].iloc[-1] > history["recon"].iloc[0] + 2
    assert history["val_elbo"].max() > history["val_elbo"].iloc[0]
    after = model.log_likelihood(digits.x[1500:1600], num_samples=200, seed=0)
    assert float(after.mean()) > before + 5
    elbo = model.elbo(digits.x[1500:1600], num_samples=20, seed=0)
    assert float(after.mean()) >= float(elbo.mean()) - 0.05  # IS is tighter than the ELBO
    loc, scale = model.encode(digits.x[:5])
    assert loc.shape == scale.shape == (5, 4) and bool((scale > 0).all())
    assert model.sample_posterior(digits.x[:5], 3).shape == (3, 5, 4)
    result.save(tmp_path / "run")
    loaded = bayesvae.load(tmp_path / "run")
    assert isinstance(loaded, AdversarialVAE) and loaded.noise_dim == 4
    torch.testing.assert_close(loaded.proposal(digits.x[:5])[0], model.proposal(digits.x[:5])[0])
    assert math.isfinite(float(loaded.log_likelihood(digits.x[:5], num_samples=10).mean()))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(encoder="conv"), "encoder='mlp'"),
        (dict(flows=1), "flows=0"),
        (dict(beta=2.0), "beta=1.0"),
        (dict(likelihood="gaussian"), "fixed gaussian_scale"),
        (dict(noise_dim=0), "noise_dim"),
        (dict(discriminator_hidden=(0,)), "discriminator_hidden"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        small(**options)


def test_objectives_without_the_discriminators_estimate_are_refused():
    with pytest.raises(ValueError, match="implicit guide has no density"):
        bayesvae.fit(small(), X.numpy(), elbo="meanfield", progress=False)
