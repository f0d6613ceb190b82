import math

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO

from bayesvae.models import VAE


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(input_shape=12, hidden_dims=(16, 8)), (12,)),
        (
            dict(input_shape=(1, 7, 9), encoder="conv", conv_channels=(4, 8), hidden_dims=(16,)),
            (1, 7, 9),
        ),
        (dict(input_shape=(3, 8, 8), encoder="conv", likelihood="gaussian"), (3, 8, 8)),
        (dict(input_shape=(2, 5, 5), likelihood="gaussian", gaussian_scale=0.5), (2, 5, 5)),
    ],
)
def test_queries_have_documented_shapes(kwargs, shape):
    vae = VAE(latent_dim=3, **kwargs)
    x = torch.rand(6, *shape)
    loc, scale = vae.encode(x)
    assert loc.shape == scale.shape == (6, 3) and bool((scale > 0).all())
    assert vae.decode(loc).shape == (6, *shape)
    assert vae.reconstruct(x).shape == (6, *shape)
    assert vae.sample(4, seed=1).shape == (4, *shape)
    assert vae.sample(4, seed=1, mean=False).shape == (4, *shape)
    assert vae.log_likelihood(x, num_samples=7, particle_batch=3).shape == (6,)
    assert vae.elbo(x, num_samples=2).shape == (6,)


def test_bernoulli_decoder_outputs_probabilities_and_samples_are_binary():
    vae = VAE(10, latent_dim=2, hidden_dims=(8,))
    means = vae.sample(20, seed=0)
    assert bool(((means >= 0) & (means <= 1)).all())
    draws = vae.sample(20, seed=0, mean=False)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(vae.sample(5, seed=3), vae.sample(5, seed=3))


def test_model_and_guide_run_in_a_plain_pyro_svi_loop(digits):
    vae = VAE(64, latent_dim=2, hidden_dims=(32,))
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    x = torch.as_tensor(digits.x[:512])
    losses = [svi.step(x) for _ in range(150)]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 5 * 512
    # the params SVI optimised are the module's own, so the queries see the training
    assert float(vae.elbo(x).mean()) > -np.mean(losses[:10]) / 512 + 5


def test_subsampled_plate_scales_the_minibatch_to_the_full_data_set():
    vae = VAE(4, latent_dim=2, hidden_dims=(3,))
    x = torch.rand(8, 4)
    trace = pyro.poutine.trace(vae.model).get_trace(x, num_data=80)
    assert trace.nodes["x"]["scale"] == pytest.approx(10.0)


def _linear_gaussian_vae(weight, bias, sigma, exact_posterior=True):
    latent, dim = weight.shape[1], weight.shape[0]
    vae = VAE(dim, latent_dim=latent, hidden_dims=(), likelihood="gaussian", gaussian_scale=sigma)
    with torch.no_grad():
        decoder = vae.decoder.net[0]
        decoder.weight.copy_(weight)
        decoder.bias.copy_(bias)
        # exact posterior of z given x: N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^-1,
        # diagonal because W has orthogonal columns
        posterior_var = 1.0 / (1.0 + (weight**2).sum(0) / sigma**2)
        gain = posterior_var[:, None] * weight.T / sigma**2
        encoder = vae.encoder.net[0]
        encoder.weight.zero_()
        encoder.weight[:latent].copy_(gain)
        encoder.bias[:latent].copy_(-gain @ bias)
        encoder.bias[latent:].copy_(posterior_var.log())
        if not exact_posterior:
            encoder.bias[:latent] += 0.4
            encoder.bias[latent:] += 0.5
    return vae


def test_log_likelihood_matches_the_exact_marginal_of_a_linear_gaussian_vae():
    torch.manual_seed(0)
    dim, latent, sigma = 5, 2, 0.7
    q, _ = torch.linalg.qr(torch.randn(dim, latent))
    weight, bias = q * torch.tensor([1.5, 0.8]), torch.randn(dim)
    marginal = torch.distributions.MultivariateNormal(
        bias, weight @ weight.T + sigma**2 * torch.eye(dim)
    )
    x = marginal.sample((40,))
    exact = marginal.log_prob(x)

    # with the exact posterior as guide every importance weight equals p(x): no Monte Carlo error
    vae = _linear_gaussian_vae(weight, bias, sigma)
    torch.testing.assert_close(vae.log_likelihood(x, num_samples=3), exact, atol=1e-4, rtol=0)
    torch.testing.assert_close(vae.elbo(x), exact, atol=1e-4, rtol=0)

    # with a deliberately wrong guide: the estimate converges within its Monte Carlo error
    off = _linear_gaussian_vae(weight, bias, sigma, exact_posterior=False)
    estimate = off.log_likelihood(x, num_samples=5000, particle_batch=700, seed=0)
    repeats = torch.stack([off.log_likelihood(x, num_samples=5000, seed=s) for s in (1, 2, 3)])
    mc_error = float(repeats.std(0).mean()) + 1e-3
    assert float((estimate - exact).abs().mean()) < 5 * mc_error + 0.01
    elbo = off.elbo(x, num_samples=2000, seed=0)
    assert float(elbo.mean()) < float(exact.mean()) - 0.05  # the ELBO is a strict lower bound


def test_learned_gaussian_scale_is_a_parameter_and_fixed_scale_is_not():
    learned = VAE(6, likelihood="gaussian")
    fixed = VAE(6, likelihood="gaussian", gaussian_scale=0.3)
    names = dict(learned.named_parameters())
    assert "decoder.log_scale" in names
    assert "decoder.log_scale" not in dict(fixed.named_parameters())


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(input_shape=8, latent_dim=0), ValueError, "latent_dim"),
        (dict(input_shape=8, latent_dim=2.5), TypeError, "latent_dim"),
        (dict(input_shape=8, likelihood="poisson"), ValueError, "likelihood"),
        (dict(input_shape=8, encoder="transformer"), ValueError, "encoder"),
        (dict(input_shape=8, activation="swishy"), ValueError, "activation"),
        (dict(input_shape=8, encoder="conv"), ValueError, "(C, H, W)"),
        (dict(input_shape=(3, 4)), ValueError, "input_shape"),
        (dict(input_shape="64"), TypeError, "input_shape"),
        (dict(input_shape=8, beta=-1.0), ValueError, "beta"),
        (
            dict(input_shape=8, likelihood="gaussian", gaussian_scale=0.0),
            ValueError,
            "gaussian_scale",
        ),
        (dict(input_shape=8, hidden_dims=(0,)), ValueError, "hidden_dims"),
    ],
)
def test_bad_constructor_arguments_raise_naming_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        VAE(**kwargs)


@pytest.mark.parametrize(
    "x, words",
    [
        (np.full((4, 8), np.nan, dtype=np.float32), "NaN"),
        (np.array([[np.inf] * 8], dtype=np.float32), "NaN or infinite"),
        (np.zeros((4, 9), dtype=np.float32), r"shape \(N, 8\)"),
        (np.zeros((4, 2, 4), dtype=np.float32), r"shape \(N, 8\)"),
        (np.full((4, 8), 2.0, dtype=np.float32), r"\[0, 1\]"),
        (np.zeros((0, 8), dtype=np.float32), "empty"),
        (np.array([["a"] * 8]), "numeric"),
    ],
)
def test_bad_data_raises_before_anything_runs(x, words):
    vae = VAE(8, latent_dim=2)
    with pytest.raises((ValueError, TypeError), match=words):
        vae.check_data(x)
    with pytest.raises((ValueError, TypeError), match=words):
        vae.encode(x)


def test_gaussian_likelihood_accepts_data_outside_unit_interval():
    vae = VAE(3, latent_dim=2, likelihood="gaussian")
    vae.check_data(np.array([[-3.0, 0.0, 5.0]], dtype=np.float32))
    assert math.isfinite(float(vae.elbo(np.array([[-3.0, 0.0, 5.0]], dtype=np.float32))[0]))


def test_two_models_do_not_share_parameters_through_the_param_store(digits):
    import bayesvae

    x = digits.x[:256]
    first = VAE(64, latent_dim=2, hidden_dims=(16,))
    bayesvae.fit(first, x, epochs=1, progress=False, batch_size=64)
    second = VAE(64, latent_dim=2, hidden_dims=(16,))
    before = [p.detach().clone() for p in second.parameters()]
    frozen_first = [p.detach().clone() for p in first.parameters()]
    bayesvae.fit(second, x, epochs=1, progress=False, batch_size=64)
    assert all(not torch.equal(b, p) for b, p in zip(before, second.parameters(), strict=True))
    assert all(torch.equal(f, p) for f, p in zip(frozen_first, first.parameters(), strict=True))


@pytest.mark.parametrize("flows", [0, 2])
def test_common_noise_makes_a_rows_estimate_independent_of_the_others(flows):
    vae = VAE(6, latent_dim=3, hidden_dims=(8,), likelihood="gaussian", flows=flows, seed=0)
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(1))
    order = torch.randperm(30, generator=torch.Generator().manual_seed(2))
    for query, options in (("elbo", {}), ("log_likelihood", {"particle_batch": 3})):
        estimate = getattr(vae, query)
        whole = estimate(x, num_samples=8, seed=5, common_noise=True, **options)
        shuffled = estimate(x[order], num_samples=8, seed=5, common_noise=True, **options)
        subset = estimate(x[:4], num_samples=8, seed=5, common_noise=True, **options)
        torch.testing.assert_close(shuffled, whole[order])
        torch.testing.assert_close(subset, whole[:4])
        # without it each row draws its own noise from one stream: the subset's rows differ
        assert not torch.allclose(estimate(x[1:5], num_samples=8, seed=5, **options), whole[1:5])
    # the shared draws give the same expectation: a large-K ELBO agrees either way
    shared = vae.elbo(x, num_samples=4000, seed=0, common_noise=True)
    independent = vae.elbo(x, num_samples=4000, seed=0)
    torch.testing.assert_close(shared, independent, atol=0.3, rtol=0)  # ~3 MC s.e.


def test_a_conditional_encoder_reads_x_once_and_gives_the_concatenated_layers_result():
    """The first layer on [x, context] is split into x's columns (computed once per row) and
    the context's: a label enumerated over classes broadcasts against x and gives what the
    layer gives on the concatenation, as a same-batch context does."""
    from bayesvae.models.vae import MLPEncoder

    torch.manual_seed(0)
    encoder = MLPEncoder(12, (8,), 3, "relu", 1, context_dim=4)
    x = torch.randn(5, 12)
    for context in (torch.eye(4)[:, None, :], torch.eye(4)[torch.tensor([0, 3, 1, 1, 2])]):
        batch = torch.broadcast_shapes(context.shape[:-1], x.shape[:-1])
        joined = torch.cat([x.expand(*batch, 12), context.expand(*batch, 4)], -1)
        loc, log_var = encoder.net(joined).chunk(2, -1)
        got_loc, got_scale = encoder(x, context)
        assert got_loc.shape == (*batch, 3)
        torch.testing.assert_close(got_loc, loc)
        torch.testing.assert_close(got_scale, torch.exp(0.5 * log_var))
