"""``sandwich``: ELBO <= log p(x) <= CUBO from one set of guide draws, per data point or for the
data set, checked against a model with an exact marginal likelihood."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from linear_gaussian import exact_log_px, make_guide, model, renyi_divergence

import bayesvae
from bayesvae.diagnostics import (
    PSISResult,
    Sandwich,
    importance_log_weights,
    psis_diagnostic,
    sandwich,
)
from bayesvae.models import VAE
from bayesvae.models.program import as_model

SHIFT, WIDEN = 0.2, 1.3
guide = make_guide(SHIFT, WIDEN)


def test_bounds_bracket_each_points_exact_log_likelihood():
    x = torch.tensor([-1.5, -0.2, 0.6, 2.4])
    bounds = sandwich(
        as_model(model, guide), x, num_samples=20000, local_plate="data", vectorize=True
    )
    exact = exact_log_px(x)
    assert bounds.elbo.shape == bounds.cubo.shape == (4,)
    assert np.all(bounds.elbo < exact) and np.all(bounds.iwae <= exact + 0.01)
    assert np.all(bounds.cubo > exact)
    assert np.all(bounds.elbo <= bounds.iwae) and np.all(bounds.iwae <= bounds.cubo)
    # the closed forms: ELBO = log p(x) - KL, CUBO = log p(x) - D_{-1}
    kl, d_minus_one = renyi_divergence(1.0, SHIFT, WIDEN), renyi_divergence(-1.0, SHIFT, WIDEN)
    np.testing.assert_allclose(bounds.elbo, exact - kl, atol=0.02)
    np.testing.assert_allclose(bounds.cubo, exact - d_minus_one, atol=0.02)
    frame = bounds.to_frame()
    assert list(frame.columns) == ["elbo", "iwae", "cubo", "width"] and len(frame) == 4
    summary = bounds.summary()
    assert summary["rows"] == 4 and summary["width"] == pytest.approx(frame["width"].mean())


def test_a_trained_vae_gets_per_image_bounds(digits):
    vae = VAE(64, latent_dim=4, hidden_dims=(32,), seed=0)
    bayesvae.fit(vae, digits.x[:512], epochs=3, batch_size=64, progress=False)
    bounds = sandwich(vae, digits.x[:20], num_samples=500)
    assert bounds.local_plate == "data" and bounds.elbo.shape == (20,)
    assert np.all(bounds.elbo <= bounds.iwae) and np.all(bounds.iwae <= bounds.cubo)
    # the same draws as the model's own importance-sampled estimate, to Monte Carlo error
    log_px = vae.log_likelihood(digits.x[:20], num_samples=500, seed=0).numpy()
    np.testing.assert_allclose(bounds.iwae.mean(), log_px.mean(), atol=1.0)


def test_a_program_with_global_latents_gets_one_row():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = 1.0 + 2.0 * x + rng.normal(scale=0.5, size=40)

    def regression(x, y=None):
        a = pyro.sample("a", dist.Normal(0.0, 10.0))
        b = pyro.sample("b", dist.Normal(0.0, 10.0))
        with pyro.plate("data", len(x)):
            pyro.sample("y", dist.Normal(a + b * x, 0.5), obs=y)

    fitted = bayesvae.fit(regression, x, y, guide="mvn", num_steps=1000, progress=False)
    bounds = sandwich(fitted.model, x, y, num_samples=2000, vectorize=True)
    assert bounds.local_plate is None and bounds.elbo.shape == (1,)
    # exact log p(y): y ~ N(0, 0.25 I + 100 X X^T)
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = 0.25 * np.eye(40) + 100.0 * design @ design.T
    exact = float(
        dist.MultivariateNormal(
            torch.zeros(40), torch.as_tensor(cov, dtype=torch.float32)
        ).log_prob(torch.as_tensor(y, dtype=torch.float32))
    )
    assert bounds.elbo[0] < exact + 0.05 and bounds.cubo[0] > exact - 0.05
    assert bounds.width[0] < 1.0  # a full-rank Gaussian guide on a Gaussian posterior


def test_one_set_of_weights_gives_khat_and_bounds_as_the_two_functions_do():
    """The report draws once: per-point weights give per-point k̂, the bounds, and (summed over
    the points) the joint k̂, equal to what the separate calls with the same seed give."""
    program = as_model(model, guide)
    x = torch.tensor([-1.5, -0.2, 0.6, 2.4])
    options = {"num_samples": 800, "seed": 3, "vectorize": True}
    log_weights = importance_log_weights(program, x, local_plate="data", **options)
    assert log_weights.shape == (800, 4)
    bounds = Sandwich.from_log_weights(log_weights, "data")
    separate = sandwich(program, x, local_plate="data", **options)
    np.testing.assert_allclose(bounds.cubo, separate.cubo)
    np.testing.assert_allclose(bounds.elbo, separate.elbo)
    per_point = PSISResult.from_log_weights(log_weights)
    np.testing.assert_allclose(
        per_point.khat_per_point,
        psis_diagnostic(program, x, local_plate="data", **options).khat_per_point,
    )
    joint = PSISResult.from_log_weights(log_weights.sum(1))
    # equal up to float32 rounding: the sum over points runs in another order
    assert joint.khat == pytest.approx(psis_diagnostic(program, x, **options).khat, abs=1e-4)
    with pytest.raises(ValueError, match="log_weights must be"):
        PSISResult.from_log_weights(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="log_weights must be"):
        Sandwich.from_log_weights(np.zeros((2, 3, 4)), "data")


def test_sandwich_refuses_bad_options():
    program = as_model(model, guide)
    with pytest.raises(ValueError, match="num_samples"):
        sandwich(program, torch.zeros(3), num_samples=0)
    with pytest.raises(ValueError, match="outside plate"):
        sandwich(program, torch.zeros(3), local_plate="nowhere")
