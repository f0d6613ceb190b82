"""The Rényi and χ² (CUBO) objectives against a linear-Gaussian model whose marginal likelihood and
Rényi divergences are exact."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from linear_gaussian import POST_VAR, SIGMA, exact_log_px, make_guide, model, renyi_divergence
from pyro.distributions import constraints

import bayesvae
from bayesvae.infer.objectives import (
    ChiUpperBound,
    ImportanceWeightedELBO,
    RenyiBound,
    make_elbo,
)
from bayesvae.models import VAE

GUIDE_SHIFT, GUIDE_WIDEN = 0.15, 1.3  # the guide: posterior mean + shift, sd x widen
guide = make_guide(GUIDE_SHIFT, GUIDE_WIDEN)


def exact_renyi_bound(x: torch.Tensor, alpha: float) -> float:
    """``sum_n log p(x_n) - D_alpha(q(z_n | x_n) || p(z_n | x_n))`` in closed form."""
    divergence = renyi_divergence(alpha, GUIDE_SHIFT, GUIDE_WIDEN)
    return float(exact_log_px(x).sum()) - x.shape[0] * divergence


X = torch.tensor([-1.2, 0.3, 0.9, 2.1])


@pytest.mark.parametrize("alpha", [-1.0, 0.0, 0.5, 1.0])
def test_renyi_bound_matches_the_closed_form(alpha):
    objective = RenyiBound(20000, max_plate_nesting=1, alpha=alpha)
    pyro.set_rng_seed(0)
    estimate = -objective.loss(model, guide, X)
    # finite K biases the estimate low by about Var(w^(1-alpha)) / (2 K): tiny here
    assert estimate == pytest.approx(exact_renyi_bound(X, alpha), abs=0.02)


def test_renyi_bounds_are_ordered_in_alpha_for_the_same_draws():
    values = []
    for alpha in (-1.0, -0.5, 0.0, 0.5, 0.9, 1.0):
        pyro.set_rng_seed(3)
        values.append(-RenyiBound(50, max_plate_nesting=1, alpha=alpha).loss(model, guide, X))
    assert all(a >= b for a, b in zip(values, values[1:], strict=False)), values
    assert values[0] > values[-1] + 0.01


def test_bounds_bracket_the_exact_marginal_likelihood():
    log_px = float(exact_log_px(X).sum())
    pyro.set_rng_seed(0)
    elbo = -make_elbo("trace", num_particles=4000, max_plate_nesting=1).loss(model, guide, X)
    renyi = np.mean(
        [-RenyiBound(10, max_plate_nesting=1, alpha=0.5).loss(model, guide, X) for _ in range(50)]
    )
    iwae = np.mean([-ImportanceWeightedELBO(10, 1).loss(model, guide, X) for _ in range(50)])
    cubo = ChiUpperBound(5000, max_plate_nesting=1).loss(model, guide, X)
    assert elbo < renyi < iwae < log_px < cubo
    # and the closed forms say how far off each one is
    assert elbo == pytest.approx(exact_renyi_bound(X, 1.0), abs=0.05)
    assert cubo == pytest.approx(exact_renyi_bound(X, -1.0), abs=0.05)


def test_renyi_at_zero_is_the_iwae_objective_and_scales_a_minibatch_after_the_logsumexp():
    vae = VAE(16, latent_dim=3, hidden_dims=(8,), seed=0)
    x = torch.rand(12, 16).round()
    pyro.set_rng_seed(1)
    renyi = RenyiBound(5, max_plate_nesting=1, alpha=0.0).loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(1)
    iwae = ImportanceWeightedELBO(5, max_plate_nesting=1).loss(vae.model, vae.guide, x)
    assert renyi == pytest.approx(iwae, rel=1e-6)
    objective = RenyiBound(5, max_plate_nesting=1, alpha=0.3)
    pyro.set_rng_seed(2)
    full = objective.loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(2)
    assert objective.loss(vae.model, vae.guide, x, num_data=120) == pytest.approx(10 * full)


def gaussian_divergence(alpha: float, q_mean, q_var, p_mean, p_var) -> float:
    """``D_alpha(N(q_mean, q_var) || N(p_mean, p_var))`` (alpha != 1)."""
    mixed = alpha * p_var + (1 - alpha) * q_var
    return (
        0.5 * math.log(p_var / q_var)
        + math.log(p_var / mixed) / (2 * (alpha - 1))
        + alpha * (q_mean - p_mean) ** 2 / (2 * mixed)
    )


def test_a_global_latent_gets_one_weight_for_the_data_set():
    # mu ~ N(0, 1), x_i ~ N(mu, 1): the posterior is N(sum x / (n + 1), 1 / (n + 1))
    x = torch.tensor([0.4, 1.3, 0.8, 1.9, 0.2])
    n = len(x)
    post_mean, post_var = float(x.sum()) / (n + 1), 1 / (n + 1)
    q_mean, q_var = post_mean - 0.1, 1.5 * post_var

    def program(x):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    def fixed_guide(x):
        pyro.sample("mu", dist.Normal(q_mean, math.sqrt(q_var)))

    marginal = dist.MultivariateNormal(torch.zeros(n), torch.eye(n) + torch.ones(n, n))
    log_px = float(marginal.log_prob(x))
    for alpha in (-1.0, 0.0, 0.5):
        pyro.set_rng_seed(0)
        estimate = -RenyiBound(20000, alpha=alpha).loss(program, fixed_guide, x)
        exact = log_px - gaussian_divergence(alpha, q_mean, q_var, post_mean, post_var)
        assert estimate == pytest.approx(exact, abs=0.02), alpha


def test_cubo_fits_a_guide_to_the_exact_posterior():
    # the guide's family holds the exact posterior, where the χ² divergence is zero: minimising
    # the CUBO from a wide start must find it (the ELBO would too; the CUBO's gradient is the
    # exponentiated one, so this checks its direction and stability)
    def wide_guide(x):
        slope = pyro.param("slope", torch.tensor(0.0))
        shift = pyro.param("shift", torch.tensor(0.5))
        scale = pyro.param("scale", torch.tensor(2.0), constraint=constraints.positive)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(slope * x + shift, scale))

    x = np.random.default_rng(0).normal(scale=math.sqrt(1 + SIGMA**2), size=200)
    result = bayesvae.fit(
        model, x, guide=wide_guide, elbo="cubo", num_particles=64, num_steps=1000, lr=0.02,
        progress=False,
    )  # fmt: skip
    store = pyro.get_param_store()
    assert float(store["slope"].detach()) == pytest.approx(1 / (1 + SIGMA**2), abs=0.01)
    assert float(store["shift"].detach()) == pytest.approx(0.0, abs=0.01)
    assert float(store["scale"].detach()) == pytest.approx(math.sqrt(POST_VAR), abs=0.01)
    assert result.settings["elbo"] == "cubo"
    # the history holds -CUBO per point, which approaches -log p(x) from below
    exact = float(exact_log_px(torch.as_tensor(x, dtype=torch.float32)).sum()) / len(x)
    history = result.history["train_elbo"].to_numpy()
    assert history[0] < history[-1] == pytest.approx(-exact, abs=0.02)


def test_renyi_trains_a_vae_through_fit(digits):
    vae = VAE(64, latent_dim=4, hidden_dims=(32,), seed=0)
    result = bayesvae.fit(
        vae, digits.x[:512], epochs=6, batch_size=64, elbo="renyi", alpha=0.5, num_particles=4,
        lr=3e-3, progress=False,
    )  # fmt: skip
    history = result.history
    assert history["train_elbo"].iloc[-1] > history["train_elbo"].iloc[0] + 5
    assert result.settings["alpha"] == 0.5 and result.settings["num_particles"] == 4


def test_cubo_refuses_a_model_with_learnable_parameters():
    vae = VAE(8, latent_dim=2, hidden_dims=(4,), seed=0)
    with pytest.raises(ValueError, match="fixed model.*learnable parameters"):
        bayesvae.fit(
            vae, np.zeros((16, 8), np.float32), elbo="cubo", num_particles=4, progress=False
        )


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(elbo="trace", alpha=0.5), "alpha is the order of elbo='renyi'"),
        (dict(elbo="renyi", alpha=0.5, num_particles=1), "needs num_particles >= 2"),
        (dict(elbo="cubo"), "needs num_particles >= 2"),
        (dict(elbo="renyi", alpha=float("nan"), num_particles=3), "alpha must be a finite"),
        (dict(elbo="renyi", alpha="half", num_particles=3), "alpha must be a finite"),
    ],
)
def test_bad_bound_options_are_refused_before_training(options, message):
    with pytest.raises(ValueError, match=message):
        bayesvae.fit(
            VAE(4, latent_dim=2, hidden_dims=(3,)),
            np.zeros((8, 4), np.float32),
            progress=False,
            **options,
        )


def test_a_programs_own_alpha_argument_is_pointed_to_model_kwargs():
    def program(x, alpha=1.0):
        mu = pyro.sample("mu", dist.Normal(0.0, alpha))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    with pytest.raises(ValueError, match="model_kwargs"):
        bayesvae.fit(program, np.zeros(5), alpha=2.0, num_steps=5, progress=False)
    fitted = bayesvae.fit(
        program, np.zeros(5), model_kwargs={"alpha": 2.0}, num_steps=5, progress=False
    )
    assert fitted.settings["elbo"] == "trace"
