"""The NumPyro VAE twin: the same networks as the torch VAE, the same ELBO after training, and
bayesvae.fit / the CLI driving it."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from both_backends import fit_on_both_backends

import bayesvae
from bayesvae.backends.numpyro.loop import SVISettings
from bayesvae.backends.numpyro.vae import NumPyroVAE, bernoulli_16bit
from bayesvae.cli import main
from bayesvae.data import ImageData
from bayesvae.models.anomaly import AnomalyMixtureModel as AnomalyMixture


def _small_vae(encoder, likelihood, activation="relu"):
    """A 3-latent VAE on 64 pixels (MLP) or 1 x 8 x 8 images (conv), seeded."""
    return bayesvae.VAE(
        64 if encoder == "mlp" else (1, 8, 8),
        latent_dim=3,
        hidden_dims=(32,),
        encoder=encoder,
        likelihood=likelihood,
        activation=activation,
        conv_channels=(4, 8),
        seed=0,
    )


@pytest.mark.parametrize(
    ("encoder", "likelihood", "activation"),
    [
        ("mlp", "bernoulli", "relu"),
        ("mlp", "gaussian", "gelu"),
        ("conv", "bernoulli", "elu"),
        ("conv", "gaussian", "tanh"),
    ],
)
def test_networks_translate_exactly(encoder, likelihood, activation):
    vae = _small_vae(encoder, likelihood, activation)
    twin = NumPyroVAE(vae)
    x = torch.rand(5, *vae.input_shape)
    z = torch.randn(5, 3)
    with torch.no_grad():
        loc, scale = vae.encoder(x)
        decoded = vae.decoder(z)
    jax_loc, jax_scale = twin.encoder(jnp.asarray(x.numpy()))
    np.testing.assert_allclose(np.asarray(jax_loc), loc.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(jax_scale), scale.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(twin.decoder(jnp.asarray(z.numpy()))), decoded.numpy(), atol=1e-5
    )


def test_both_backends_reach_the_same_test_elbo(digits):
    """Same initial weights, data, epochs and optimizer: test ELBO within 1 nat."""
    train, test = digits.x[:1500], digits.x[1500:]
    elbos = {}
    for backend in ("pyro", "numpyro"):
        vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(128,), seed=0)
        result = bayesvae.fit(
            vae,
            train,
            val=test,
            epochs=30,
            batch_size=64,
            lr=3e-3,
            progress=False,
            backend=backend,
        )
        assert result.history["epoch"].tolist() == list(range(1, 31))
        assert result.history["val_elbo"].iloc[-1] > result.history["val_elbo"].iloc[0]
        elbos[backend] = float(vae.elbo(test, num_samples=100).mean())
    assert abs(elbos["pyro"] - elbos["numpyro"]) < 1.0, elbos


def test_numpyro_fit_gives_a_complete_pyro_model(digits, tmp_path):
    data = ImageData(digits.x[:512], None, (1, 8, 8), binarize="dynamic")
    vae = bayesvae.VAE(
        (1, 8, 8), latent_dim=2, hidden_dims=(32,), encoder="conv", conv_channels=(8,), seed=0
    )
    images = data.x.reshape(-1, 1, 8, 8)
    result = bayesvae.fit(
        vae,
        ImageData(images, None, (1, 8, 8), "dynamic"),
        epochs=3,
        batch_size=64,
        progress=False,
        backend="numpyro",
    )
    assert result.settings["backend"] == "numpyro"
    loc, _ = vae.encode(images[:4])
    assert loc.shape == (4, 2) and vae.sample(3, seed=0).shape == (3, 1, 8, 8)
    folder = result.save(tmp_path / "run")
    loaded = bayesvae.load(folder)
    torch.testing.assert_close(loaded.encode(images[:4])[0], loc)


def test_cli_backend_numpyro(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["vae", "--data", "digits", "--epochs", "2", "--hidden", "32", "--backend", "numpyro"]
    assert main([*args, "--out", str(out), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 2
    assert (out / "model.pt").exists() and not (out / "checkpoints").exists()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"kl_warmup": 2}, "kl_warmup"),
        ({"clip_norm": 1.0}, "clip_norm"),
        ({"elbo": "jit"}, "elbo"),
        ({"checkpoint_dir": "ckpt"}, "checkpoint_dir"),
        ({"backend": "tensorflow"}, "unknown backend"),
    ],
)
def test_unsupported_options_are_refused(digits, options, match):
    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(16,))
    with pytest.raises(ValueError, match=match):
        bayesvae.fit(vae, digits.x[:64], epochs=1, **{"backend": "numpyro", **options})


def test_weight_decay_shrinks_the_weights_on_both_backends(digits):
    """The same L2 penalty on both backends: with a weight_decay that dominates the gradient,
    each backend's networks end with a smaller weight norm than without, by about the same
    amount, and the settings record it."""

    def weight_norm(weight_decay, backend):
        result = bayesvae.fit(
            bayesvae.VAE(64, latent_dim=2, hidden_dims=(16,), seed=0),
            digits.x[:256],
            epochs=3,
            batch_size=64,
            lr=1e-2,
            weight_decay=weight_decay,
            backend=backend,
            seed=0,
            progress=False,
        )
        assert result.settings.get("weight_decay", 0.0) == weight_decay
        weights = [p for name, p in result.model.named_parameters() if name.endswith("weight")]
        return float(torch.sqrt(sum((w.detach() ** 2).sum() for w in weights)))

    norms = {
        (weight_decay, backend): weight_norm(weight_decay, backend)
        for weight_decay in (0.0, 10.0)
        for backend in ("pyro", "numpyro")
    }
    drops = [norms[0.0, backend] - norms[10.0, backend] for backend in ("pyro", "numpyro")]
    assert min(drops) > 0.5  # Adam moves a weight by at most lr a step: 12 steps of 0.01
    assert abs(norms[10.0, "pyro"] - norms[10.0, "numpyro"]) < 0.25 * min(drops)


@pytest.mark.parametrize(
    ("options", "rates"),
    [
        (dict(lr_schedule="exponential", lr_decay=0.5), [1e-2, 5e-3, 2.5e-3]),
        (dict(lr_schedule="cosine"), [1e-2, 7.5e-3, 2.5e-3]),
    ],
)
def test_lr_schedules_set_the_same_rate_per_epoch_as_the_pyro_loop(digits, options, rates):
    histories = {
        backend: bayesvae.fit(
            bayesvae.VAE(64, latent_dim=2, hidden_dims=(16,)),
            digits.x[:256],
            epochs=3,
            batch_size=64,
            lr=1e-2,
            backend=backend,
            progress=False,
            **options,
        ).history
        for backend in ("pyro", "numpyro")
    }
    for history in histories.values():
        assert history["lr"].tolist() == pytest.approx(rates)


def test_a_family_without_twin_is_refused():
    from bayesvae.models import GumbelSoftmaxVAE

    X = (np.random.default_rng(0).random(size=(50, 6)) < 0.5).astype(np.float32)
    with pytest.raises(ValueError, match="has no NumPyro twin"):
        bayesvae.fit(GumbelSoftmaxVAE(6), X, epochs=1, backend="numpyro")


def test_the_mixtures_twin_refuses_objectives_it_does_not_compute():
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match=r"does not support \['elbo'\]"):
        bayesvae.fit(AnomalyMixture(1), X, epochs=1, elbo="trace", backend="numpyro")


def test_bernoulli_16bit_draws_at_the_given_rates():
    # odd width (two draws per word, the last word half used), images, exact 0 and 1
    probs = jnp.asarray(np.tile([0.0, 0.1, 0.5, 0.9, 1.0], (20000, 1)), dtype=jnp.float32)
    draws = np.asarray(bernoulli_16bit(jax.random.PRNGKey(0), probs))
    assert draws.shape == probs.shape and draws.dtype == np.float32
    assert set(np.unique(draws)) <= {0.0, 1.0}
    rates = draws.mean(0)
    assert rates[0] == 0.0 and rates[-1] == 1.0
    np.testing.assert_allclose(rates[1:4], [0.1, 0.5, 0.9], atol=0.012)  # ~4 standard errors
    # a row of width 2 takes one word: its high and low 16 bits give independent draws
    halves = np.asarray(bernoulli_16bit(jax.random.PRNGKey(1), jnp.full((20000, 2), 0.5)))
    assert abs(np.corrcoef(halves[:, 0], halves[:, 1])[0, 1]) < 0.03
    images = jnp.full((3, 1, 5, 5), 0.5)
    assert bernoulli_16bit(jax.random.PRNGKey(0), images).shape == (3, 1, 5, 5)
    np.testing.assert_array_equal(
        np.asarray(bernoulli_16bit(jax.random.PRNGKey(2), images)),
        np.asarray(bernoulli_16bit(jax.random.PRNGKey(2), images)),
    )


@pytest.mark.parametrize(("encoder", "likelihood"), [("mlp", "bernoulli"), ("conv", "gaussian")])
def test_jitted_log_likelihood_matches_the_torch_estimate(encoder, likelihood):
    """Same weights and the same guide noise: the same importance-sampled log p(x) to 1e-3
    nats, chunk sizes that do not divide included; its own draws agree within MC error."""
    import pyro

    vae = _small_vae(encoder, likelihood).eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(7, *vae.input_shape, generator=generator)
    if likelihood == "bernoulli":
        x = (x < 0.3).float()
    options = dict(num_samples=300, batch_size=4, particle_batch=128)
    expected = vae.log_likelihood(x, seed=3, common_noise=True, **options).numpy()
    pyro.set_rng_seed(3)  # the torch method's noise: its first draw after seeding
    noise = torch.randn(300, 3).numpy()
    twin = NumPyroVAE(vae)
    got = twin.log_likelihood(x.numpy(), noise=noise, **options)
    assert got.shape == (7,)
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)
    own = twin.log_likelihood(x.numpy(), num_samples=2000, seed=1)
    reference = vae.log_likelihood(x, num_samples=2000, seed=1).numpy()
    np.testing.assert_allclose(own, reference, atol=0.2)
    flat = twin.log_likelihood(x.reshape(7, -1).numpy(), noise=noise, **options)
    np.testing.assert_array_equal(flat, got)


def test_jitted_log_likelihood_uses_the_trained_weights(digits):
    """Trained weights change the estimate but not the compiled function: one compilation
    serves the calls before and after fit."""
    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(32,), seed=0)
    twin = NumPyroVAE(vae)
    before = twin.log_likelihood(digits.x[:50], num_samples=50).mean()
    twin.fit(
        digits.x[:1000], None, SVISettings(epochs=5, batch_size=100), dynamic_binarization=True
    )
    after = twin.log_likelihood(digits.x[:50], num_samples=50).mean()
    assert twin._chunk_logsumexp._cache_size() == 1
    twin.export_to(vae)
    np.testing.assert_allclose(
        NumPyroVAE(vae).log_likelihood(digits.x[:50], num_samples=50).mean(), after, rtol=1e-6
    )
    assert after > before + 5


@pytest.mark.parametrize(
    ("x", "options", "match"),
    [
        (np.zeros((3, 5)), {}, r"x must have shape \(N, 64\)"),
        (np.zeros((0, 64)), {}, "non-empty"),
        (np.full((2, 64), np.nan), {}, "finite"),
        (np.zeros((2, 64)), {"num_samples": 0}, "num_samples"),
        (np.zeros((2, 64)), {"num_samples": 4, "noise": np.zeros((3, 2))}, r"noise must have"),
    ],
)
def test_jitted_log_likelihood_refuses_bad_input(x, options, match):
    twin = NumPyroVAE(bayesvae.VAE(64, latent_dim=2, hidden_dims=(8,)))
    with pytest.raises(ValueError, match=match):
        twin.log_likelihood(x, **options)


def test_fit_with_early_stopping_keeps_the_best_epoch(digits):
    """backend='numpyro' with early_stopping: training stops ``patience`` epochs after the best
    validation ELBO, the result says why, and the weights are those a run of exactly
    ``best_epoch`` epochs ends with."""
    train, val = digits.x[:300], digits.x[1500:]
    options = dict(val=val, batch_size=50, lr=1e-2, progress=False, backend="numpyro")
    vae = bayesvae.VAE(64, latent_dim=8, hidden_dims=(256,), seed=0)
    result = bayesvae.fit(vae, train, epochs=400, early_stopping=5, **options)
    history = result.history
    assert len(history) < 400 and "early stopping" in result.stop_reason
    assert result.best_epoch == int(history.loc[history["val_elbo"].idxmax(), "epoch"])
    assert len(history) == result.best_epoch + 5
    shorter = bayesvae.VAE(64, latent_dim=8, hidden_dims=(256,), seed=0)
    bayesvae.fit(shorter, train, epochs=result.best_epoch, **options)
    last = bayesvae.VAE(64, latent_dim=8, hidden_dims=(256,), seed=0)
    bayesvae.fit(last, train, epochs=len(history), **options)
    for name, value in vae.state_dict().items():
        torch.testing.assert_close(value, shorter.state_dict()[name], rtol=0, atol=0)
    assert not torch.equal(vae.encoder.net[0].weight, last.encoder.net[0].weight)


@pytest.mark.parametrize(("elbo", "alpha", "beta"), [("iwae", None, 1.0), ("renyi", 0.5, 2.0)])
def test_particle_bounds_match_the_pyro_objectives(elbo, alpha, beta):
    """The twin's IWAE / Rényi objective and bayesvae's Pyro one (``make_elbo``) estimate the
    same bound on the same weights: per row, N/B-scaled, the latent terms weighted by beta."""
    import pyro

    from bayesvae.infer.objectives import make_elbo

    vae = bayesvae.VAE(64, latent_dim=3, hidden_dims=(32,), beta=beta, seed=0)
    x = (torch.rand(40, 64, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    twin = NumPyroVAE(vae)
    order = 0.0 if alpha is None else alpha
    objective = twin._particle_bound(num_particles=8, alpha=order)
    params = {"encoder$params": twin.encoder, "decoder$params": twin.decoder}
    loss = jax.jit(lambda key: objective.loss(key, params, None, None, jnp.asarray(x), 400))
    ours = np.mean([float(loss(jax.random.PRNGKey(i))) for i in range(400)])
    pyro.set_rng_seed(0)
    theirs_objective = make_elbo(elbo, num_particles=8, alpha=alpha)
    with torch.no_grad():
        theirs = np.mean(
            [theirs_objective.loss(vae.model, vae.guide, x, num_data=400) for _ in range(400)]
        )
    # the loss is summed over 400 rows (40 scaled by 10); its Monte Carlo sd over 400 repeats
    # is well under 1 nat here
    assert ours == pytest.approx(theirs, abs=2.0)
    single = float(loss(jax.random.PRNGKey(0)))
    eps = jax.random.normal(jax.random.PRNGKey(0), (8, 40, 3))
    log_w = (1 - order) * twin._log_weights(twin.networks, jnp.asarray(x), eps, beta)
    by_hand = -10 * float(((jax.nn.logsumexp(log_w, 0) - np.log(8)) / (1 - order)).sum())
    assert single == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"elbo": "renyi", "alpha": 1.0, "num_particles": 4}, "alpha must be a finite number"),
        ({"elbo": "renyi", "alpha": float("nan"), "num_particles": 4}, "alpha must be a finite"),
        ({"elbo": "renyi", "alpha": float("inf"), "num_particles": 4}, "alpha must be a finite"),
        ({"elbo": "renyi", "alpha": 0.5, "num_particles": 1}, "num_particles >= 2"),
        ({"elbo": "iwae", "num_particles": 0}, "num_particles"),
        ({"elbo": "trace", "alpha": 0.5}, "for elbo='iwae'/'renyi'"),
    ],
)
def test_the_twin_refuses_particle_bounds_it_cannot_compute(options, match):
    """Rényi's order 1 is the ELBO (its formula divides by 1 - alpha), so the twin refuses it,
    and non-finite orders, before any training; likewise too few particles."""
    twin = NumPyroVAE(bayesvae.VAE(64, latent_dim=2, hidden_dims=(8,), seed=0))
    x = np.zeros((20, 64), dtype=np.float32)
    with pytest.raises(ValueError, match=match):
        twin.fit(x, None, SVISettings(epochs=1, batch_size=10), **options)
    assert twin.history == []


def test_fit_with_the_iwae_bound_trains_through_bayesvae_fit(digits):
    """``bayesvae.fit(..., backend="numpyro", elbo="iwae", num_particles=K)`` raises the test
    IWAE bound as the Pyro backend does; a Rényi order and the ELBO's particles are checked."""
    train, test = digits.x[:1200], digits.x[1500:]

    def make_vae():
        return bayesvae.VAE(64, latent_dim=4, hidden_dims=(64,), seed=0)

    before = float(make_vae().log_likelihood(test, num_samples=50, seed=0).mean())
    fitted = fit_on_both_backends(
        make_vae, train, epochs=15, batch_size=50, elbo="iwae", num_particles=5, lr=3e-3
    )
    results = {}
    for backend, (vae, result) in fitted.items():
        results[backend] = float(vae.log_likelihood(test, num_samples=50, seed=0).mean())
        assert results[backend] > before + 5
        assert result.settings["num_particles"] == 5
    assert results["numpyro"] == pytest.approx(results["pyro"], abs=1.5)
    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(8,))
    with pytest.raises(ValueError, match="num_particles >= 2"):
        bayesvae.fit(vae, train, epochs=1, elbo="renyi", num_particles=1, backend="numpyro")
    with pytest.raises(ValueError, match="num_particles"):
        bayesvae.fit(vae, train, epochs=1, num_particles=3, backend="numpyro")


def _flow_vae():
    """A 3-latent VAE with two IAF flows whose weights are moved off their near-identity start."""
    vae = bayesvae.VAE(64, latent_dim=3, hidden_dims=(32,), flows=2, seed=0).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in vae.flows.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return vae


def test_iaf_guides_give_the_torch_log_likelihood_and_elbo():
    """The twin's flows are Pyro's: the same importance-sampled log p(x) for the same guide noise
    (to 1e-3 nats); the guide's draw has the torch posterior's density; and NumPyro's
    Trace_ELBO on the twin's model and guide estimates Pyro's on the torch ones (within four
    standard errors of the two means)."""
    import pyro
    from numpyro import handlers
    from numpyro.infer import Trace_ELBO

    vae = _flow_vae()
    x = (torch.rand(7, 64, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    options = dict(num_samples=300, batch_size=4, particle_batch=128)
    expected = vae.log_likelihood(x, seed=3, common_noise=True, **options).numpy()
    pyro.set_rng_seed(3)
    noise = torch.randn(300, 3).numpy()
    twin = NumPyroVAE(vae)
    assert sorted(twin.networks) == ["decoder", "encoder", "flows"]
    got = twin.log_likelihood(x.numpy(), noise=noise, **options)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    params = {f"{name}$params": network for name, network in twin.networks.items()}
    guide = handlers.substitute(handlers.seed(twin.guide, 0), data=params)
    site = handlers.trace(guide).get_trace(jnp.asarray(x.numpy()), 7)["z"]
    with torch.no_grad():
        reference = vae.posterior(x).log_prob(torch.tensor(np.array(site["value"])))
    density = site["fn"].log_prob(site["value"], site["intermediates"])
    np.testing.assert_allclose(np.asarray(density), reference.numpy(), atol=1e-4)
    rows = (torch.rand(40, 64, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    elbo = Trace_ELBO()
    loss = jax.jit(
        lambda key: elbo.loss(key, params, twin.model, twin.guide, jnp.asarray(rows.numpy()), 40)
    )
    ours = np.array([float(loss(jax.random.PRNGKey(i))) for i in range(300)])
    pyro.set_rng_seed(0)
    with torch.no_grad():
        theirs = np.array(
            [pyro.infer.Trace_ELBO().loss(vae.model, vae.guide, rows) for _ in range(300)]
        )
    standard_error = np.hypot(ours.std(), theirs.std()) / np.sqrt(300)
    assert abs(ours.mean() - theirs.mean()) < 4 * standard_error


def test_iaf_guides_train_on_either_backend_to_the_same_elbo(digits):
    """Same weights, data and settings: the flow VAE's test ELBO within 1 nat on either
    backend; the masks stay as they were (masked weights get no gradient)."""
    train, test = digits.x[:1500], digits.x[1500:]

    def make_vae():
        return bayesvae.VAE(64, latent_dim=2, hidden_dims=(64,), flows=2, seed=0)

    layers = make_vae().flows[0].nn.layers
    masked = [layer.weight[layer.mask == 0].clone() for layer in layers]
    fitted = fit_on_both_backends(make_vae, train, epochs=15, batch_size=64, lr=3e-3)
    elbos = {}
    for backend, (vae, _) in fitted.items():
        elbos[backend] = float(vae.elbo(test, num_samples=100, seed=0).mean())
        for layer, before in zip(vae.flows[0].nn.layers, masked, strict=True):
            torch.testing.assert_close(layer.weight[layer.mask == 0], before)
    assert abs(elbos["pyro"] - elbos["numpyro"]) < 1.0, elbos
    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(16,), flows=1)
    with pytest.raises(ValueError, match="elbo='meanfield' needs a Gaussian guide"):
        bayesvae.fit(vae, train, epochs=1, elbo="meanfield", backend="numpyro", progress=False)
