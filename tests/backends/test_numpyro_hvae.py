"""The NumPyro twin of the two-layer HierarchicalVAE: the same four networks and importance
weights as the torch model, the same bounds as bayesvae's Pyro objectives, and bayesvae.fit
driving it to the Pyro loop's result."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from both_backends import fit_on_both_backends

import bayesvae
from bayesvae.backends.numpyro import svi_twin
from bayesvae.backends.numpyro.hvae import NumPyroHierarchicalVAE


def _small_hvae(**options):
    return bayesvae.HierarchicalVAE(
        64,
        latent_dim=3,
        top_latent_dim=2,
        hidden_dims=(32,),
        top_hidden_dims=(16,),
        seed=0,
        **options,
    )


def _binary_rows(n, seed=0):
    return (torch.rand(n, 64, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def _torch_log_weights(hvae, x, eps):
    """The torch model's ``log p(x, z1, z2) - log q(z1, z2 | x)`` for the draws made from
    ``eps`` (K, B, 5): the reference the twin must reproduce."""
    import pyro.distributions as dist

    with torch.no_grad():
        loc1, scale1 = hvae.encoder(x)
        z1 = loc1 + scale1 * eps[..., :3]
        loc2, scale2 = hvae.top_encoder(z1)
        z2 = loc2 + scale2 * eps[..., 3:]
        log_q = dist.Normal(loc1, scale1).log_prob(z1).sum(-1)
        log_q = log_q + dist.Normal(loc2, scale2).log_prob(z2).sum(-1)
        log_p = dist.Normal(0.0, 1.0).log_prob(z2).sum(-1)
        log_p = log_p + dist.Normal(*hvae.top_prior(z2)).log_prob(z1).sum(-1)
        recon = hvae.observation_dist(hvae.decoder(z1)).log_prob(x)
    return (recon + log_p - log_q).numpy()


def test_the_family_has_a_twin_with_all_four_networks():
    hvae = _small_hvae()
    twin = svi_twin(hvae)
    assert isinstance(twin, NumPyroHierarchicalVAE)
    assert sorted(twin.networks) == ["decoder", "encoder", "top_encoder", "top_prior"]
    assert twin.noise_dim == 5
    v = torch.randn(4, 3)
    with torch.no_grad():
        loc, scale = hvae.top_encoder(v)
    jax_loc, jax_scale = twin.networks["top_encoder"](jnp.asarray(v.numpy()))
    np.testing.assert_allclose(np.asarray(jax_loc), loc.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(jax_scale), scale.numpy(), rtol=1e-5)


def test_importance_weights_equal_the_torch_models():
    hvae = _small_hvae().eval()
    twin = NumPyroHierarchicalVAE(hvae)
    x = _binary_rows(6)
    eps = torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(1))
    expected = _torch_log_weights(hvae, x, eps)
    got = twin._log_weights(twin.networks, jnp.asarray(x.numpy()), jnp.asarray(eps.numpy()))
    assert got.shape == (4, 6)
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4, rtol=1e-5)
    # the shared-noise form (K, 1, D) broadcasts over rows
    shared_eps = jnp.asarray(eps[:, :1].numpy())
    shared = twin._log_weights(twin.networks, jnp.asarray(x.numpy()), shared_eps)
    np.testing.assert_allclose(
        np.asarray(shared), _torch_log_weights(hvae, x, eps[:, :1].expand(4, 6, 5)), atol=1e-4
    )


def test_jitted_log_likelihood_agrees_with_the_torch_estimate():
    hvae = _small_hvae().eval()
    x = _binary_rows(7, seed=2)
    twin = NumPyroHierarchicalVAE(hvae)
    got = twin.log_likelihood(x.numpy(), num_samples=3000, batch_size=4, particle_batch=512)
    reference = hvae.log_likelihood(x, num_samples=3000, seed=1).numpy()
    assert got.shape == (7,)
    np.testing.assert_allclose(got, reference, atol=0.2)
    with pytest.raises(ValueError, match=r"noise must have shape \(num_samples, noise_dim\)"):
        twin.log_likelihood(x.numpy(), num_samples=4, noise=np.zeros((4, 3)))


@pytest.mark.parametrize(("elbo", "alpha"), [("iwae", None), ("renyi", 0.5)])
def test_particle_bounds_match_the_pyro_objectives(elbo, alpha):
    """The twin's bound and bayesvae's Pyro objective on the HierarchicalVAE's own model and
    guide, on the same weights (both with beta = 2 on the latent terms): the same expectation."""
    import pyro

    from bayesvae.infer.objectives import make_elbo

    hvae = _small_hvae(beta=2.0)
    x = _binary_rows(40)
    twin = NumPyroHierarchicalVAE(hvae)
    objective = twin._particle_bound(num_particles=8, alpha=0.0 if alpha is None else alpha)
    params = {f"{name}$params": network for name, network in twin.networks.items()}
    loss = jax.jit(lambda key: objective.loss(key, params, None, None, jnp.asarray(x), 400))
    ours = np.mean([float(loss(jax.random.PRNGKey(i))) for i in range(300)])
    pyro.set_rng_seed(0)
    theirs_objective = make_elbo(elbo, num_particles=8, alpha=alpha)
    with torch.no_grad():
        theirs = np.mean(
            [theirs_objective.loss(hvae.model, hvae.guide, x, num_data=400) for _ in range(300)]
        )
    assert ours == pytest.approx(theirs, abs=2.0)


def test_the_numpyro_elbo_matches_pyros_trace_elbo():
    """NumPyro's Trace_ELBO on the twin's model and guide and Pyro's on the torch ones estimate
    the same ELBO from the same weights."""
    import pyro
    from numpyro.infer import Trace_ELBO

    hvae = _small_hvae()
    x = _binary_rows(40, seed=3)
    twin = NumPyroHierarchicalVAE(hvae)
    params = {f"{name}$params": network for name, network in twin.networks.items()}
    elbo = Trace_ELBO()
    loss = jax.jit(
        lambda key: elbo.loss(key, params, twin.model, twin.guide, jnp.asarray(x.numpy()), 40)
    )
    ours = np.mean([float(loss(jax.random.PRNGKey(i))) for i in range(300)])
    pyro.set_rng_seed(0)
    theirs_elbo = pyro.infer.Trace_ELBO()
    with torch.no_grad():
        theirs = np.mean([theirs_elbo.loss(hvae.model, hvae.guide, x) for _ in range(300)])
    # per-row ELBO sd here is about 5 nats: the mean of 300 sums over 40 rows is within 1
    assert ours == pytest.approx(theirs, abs=1.5)


def test_both_backends_train_it_to_the_same_bound(digits, tmp_path):
    """Same initial weights, data, epochs and optimizer through bayesvae.fit: the test IWAE
    bound within 1.5 nats; the twin's weights land in a complete Pyro model that saves and
    loads."""
    train, test = digits.x[:1200], digits.x[1500:]

    def make_hvae():
        return bayesvae.HierarchicalVAE(
            64, latent_dim=4, top_latent_dim=2, hidden_dims=(64,), top_hidden_dims=(32,), seed=0
        )

    before = float(make_hvae().log_likelihood(test, num_samples=50, seed=0).mean())
    fitted = fit_on_both_backends(
        make_hvae, train, epochs=15, batch_size=50, elbo="iwae", num_particles=3, lr=3e-3
    )
    bounds, layers = {}, {}
    for backend, (hvae, result) in fitted.items():
        bounds[backend] = float(hvae.log_likelihood(test, num_samples=50, seed=0).mean())
        layers[backend] = hvae.kl_per_layer(test, seed=0)
        assert bounds[backend] > before + 5
        assert (result.settings.get("backend") == "numpyro") == (backend == "numpyro")
    assert bounds["numpyro"] == pytest.approx(bounds["pyro"], abs=1.5)
    # each layer carries the same information either way (here z1 about 2 nats, z2 under 0.1)
    assert layers["numpyro"]["z1"] == pytest.approx(layers["pyro"]["z1"], abs=0.5)
    assert layers["numpyro"]["z2"] == pytest.approx(layers["pyro"]["z2"], abs=0.1)
    folder = result.save(tmp_path / "run")
    loaded = bayesvae.load(folder)
    torch.testing.assert_close(loaded.encode(test[:4])[0], hvae.encode(test[:4])[0])
    assert loaded.kl_per_layer(test, seed=0) == pytest.approx(layers["numpyro"], rel=1e-5)


def test_the_mean_field_elbo_is_refused_for_the_twin(digits):
    with pytest.raises(ValueError, match=r"does not support \['elbo'\]"):
        bayesvae.fit(_small_hvae(), digits.x[:64], epochs=1, elbo="meanfield", backend="numpyro")
