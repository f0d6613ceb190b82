"""The one jitted NumPyro SVI loop (bayesvae.backends.numpyro.loop.run_svi)."""

import numpy as np
import pytest


def _svi(lr=0.05, optimizer=None):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.optim import Adam

    def model(y, num_data):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        with numpyro.plate("data", num_data, subsample_size=y.shape[0]):
            numpyro.sample("obs", dist.Normal(mu, 1.0), obs=y)

    def guide(y, num_data):
        loc = numpyro.param("loc", 0.0)
        scale = numpyro.param("scale", 1.0, constraint=dist.constraints.positive)
        numpyro.sample("mu", dist.Normal(loc, scale))

    return SVI(model, guide, Adam(lr) if optimizer is None else optimizer, Trace_ELBO())


def test_minibatched_loop_recovers_the_conjugate_posterior():
    import jax
    import jax.numpy as jnp

    from bayesvae.backends.numpyro.loop import run_svi

    y = np.random.default_rng(0).normal(3.0, 1.0, size=400).astype(np.float32)
    svi = _svi()
    run = run_svi(
        svi,
        (jnp.asarray(y),),
        num_data=len(y),
        epochs=60,
        batch_size=50,
        init_key=jax.random.PRNGKey(0),
        key=jax.random.PRNGKey(1),
        seed=0,
        val=(jnp.asarray(y[:100]),),
    )
    params, history = svi.get_params(run.state), run.history
    exact_mean = y.sum() / (len(y) + 1 / 100)  # Normal prior sd 10, unit noise
    assert float(params["loc"]) == pytest.approx(exact_mean, abs=0.05)
    # the ELBO per point is scaled to the full data (N / B): close to the mean log-density
    per_point = -0.5 * np.log(2 * np.pi) - 0.5 * np.mean((y - y.mean()) ** 2)
    assert np.mean([row["train_elbo"] for row in history[-10:]]) == pytest.approx(
        per_point, abs=0.1
    )
    assert [row["epoch"] for row in history] == list(range(1, 61))
    assert history[-1]["train_elbo"] > history[0]["train_elbo"] and "val_elbo" in history[-1]
    val_elbos = [row["val_elbo"] for row in history]
    assert run.best_epoch == int(np.argmax(val_elbos)) + 1 and run.stop_reason is None


@pytest.mark.parametrize(
    ("schedule", "decay", "rates"),
    [
        ("constant", 0.99, [0.1, 0.1, 0.1, 0.1]),
        ("cosine", 0.99, [0.1, 0.05 * (1 + 0.5**0.5), 0.05, 0.05 * (1 - 0.5**0.5)]),
        ("exponential", 0.5, [0.1, 0.05, 0.025, 0.0125]),
    ],
)
def test_adam_sets_the_learning_rate_per_epoch(schedule, decay, rates):
    """The rate changes between epochs, not inside one: the optimizer's update at every step of
    epoch e equals plain Adam's at the epoch's rate, from the same state."""
    import jax.numpy as jnp
    from numpyro.optim import Adam

    from bayesvae.backends.numpyro.loop import adam, batches_per_epoch

    steps_per_epoch = batches_per_epoch(10, 4)  # 2: the last incomplete batch is dropped
    optimizer, lr_of_epoch = adam(
        0.1, (0.9, 0.999), epochs=4, steps_per_epoch=2, lr_schedule=schedule, lr_decay=decay
    )
    assert steps_per_epoch == 2
    assert [lr_of_epoch(e) for e in range(4)] == pytest.approx(rates)
    for epoch, rate in enumerate(rates):
        plain = Adam(rate, b1=0.9, b2=0.999)
        for step in (2 * epoch, 2 * epoch + 1):
            _, moments = optimizer.init(jnp.asarray(1.0))
            state = (jnp.asarray(step), moments)  # the optimizer's step count, NumPyro's `i`
            moved = optimizer.get_params(optimizer.update(jnp.asarray(3.0), state))
            expected = plain.get_params(plain.update(jnp.asarray(3.0), state))
            assert float(moved) == pytest.approx(float(expected), rel=1e-6)
            assert float(moved) < 1.0


def test_an_unknown_schedule_is_refused():
    from bayesvae.backends.numpyro.loop import adam

    with pytest.raises(ValueError, match="unknown lr_schedule 'zigzag'"):
        adam(0.1, (0.9, 0.999), epochs=2, steps_per_epoch=1, lr_schedule="zigzag")


@pytest.mark.parametrize("schedule", ["constant", "exponential"])
def test_weight_decay_steps_as_torch_adam_with_weight_decay(schedule):
    """Five steps from the same start with the same gradients: the NumPyro optimizer and
    torch.optim.Adam(weight_decay=0.3), with the rate torch's scheduler would set, agree."""
    import jax.numpy as jnp
    import torch

    from bayesvae.backends.numpyro.loop import CoupledDecayAdam, adam

    start = np.array([1.5, -2.0, 0.25], dtype=np.float32)
    gradients = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    optimizer, lr_of_epoch = adam(
        0.1,
        (0.8, 0.99),
        epochs=3,
        steps_per_epoch=2,
        lr_schedule=schedule,
        lr_decay=0.5,
        weight_decay=0.3,
    )
    assert isinstance(optimizer, CoupledDecayAdam)
    state = optimizer.init({"w": jnp.asarray(start)})
    for gradient in gradients:
        state = optimizer.update({"w": jnp.asarray(gradient)}, state)

    weights = torch.nn.Parameter(torch.from_numpy(start.copy()))
    reference = torch.optim.Adam([weights], lr=0.1, betas=(0.8, 0.99), weight_decay=0.3)
    for step, gradient in enumerate(gradients):
        for group in reference.param_groups:
            group["lr"] = lr_of_epoch(step // 2)
        weights.grad = torch.from_numpy(gradient.copy())
        reference.step()
    moved = np.asarray(optimizer.get_params(state)["w"])
    np.testing.assert_allclose(moved, weights.detach().numpy(), rtol=1e-5, atol=1e-6)
    plain, _ = adam(0.1, (0.8, 0.99), epochs=3, steps_per_epoch=2, lr_schedule=schedule)
    undecayed = plain.init({"w": jnp.asarray(start)})
    for gradient in gradients:
        undecayed = plain.update({"w": jnp.asarray(gradient)}, undecayed)
    assert not np.allclose(np.asarray(plain.get_params(undecayed)["w"]), moved, atol=1e-3)


@pytest.mark.parametrize("weight_decay", [-0.1, float("nan"), True, "0.1"])
def test_a_bad_weight_decay_is_refused(weight_decay):
    from bayesvae.backends.numpyro.loop import adam

    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        adam(0.1, (0.9, 0.999), epochs=2, steps_per_epoch=1, weight_decay=weight_decay)


def test_a_nan_loss_stops_naming_the_epoch():
    import jax
    import jax.numpy as jnp

    from bayesvae.backends.numpyro.loop import run_svi

    y = np.full(20, np.nan, dtype=np.float32)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        run_svi(
            _svi(),
            (jnp.asarray(y),),
            num_data=20,
            epochs=2,
            batch_size=10,
            init_key=jax.random.PRNGKey(0),
            key=jax.random.PRNGKey(1),
            seed=0,
        )


def test_early_stopping_returns_the_best_epochs_state():
    """Validation data away from the training data: the first epoch is the best on it, the
    loop stops ``patience`` epochs later and returns that epoch's state."""
    import jax
    import jax.numpy as jnp

    from bayesvae.backends.numpyro.loop import run_svi

    rng = np.random.default_rng(0)
    train = jnp.asarray(rng.normal(3.0, 1.0, size=200).astype(np.float32))
    val = (jnp.asarray(rng.normal(-1.0, 1.0, size=100).astype(np.float32)),)
    common = dict(num_data=200, batch_size=50, seed=0, val=val)
    keys = dict(init_key=jax.random.PRNGKey(0), key=jax.random.PRNGKey(1))
    svi = _svi(lr=0.1)
    run = run_svi(svi, (train,), epochs=50, early_stopping=3, **common, **keys)
    history, state = run.history, run.state
    val_elbos = [row["val_elbo"] for row in history]
    best = int(np.argmax(val_elbos))
    assert len(history) == best + 1 + 3 < 50 and run.best_epoch == best + 1
    assert "did not improve for 3 epochs" in run.stop_reason
    assert f"in epoch {best + 1}" in run.stop_reason
    first = run_svi(_svi(lr=0.1), (train,), epochs=best + 1, **common, **keys)
    assert float(svi.get_params(state)["loc"]) == float(svi.get_params(first.state)["loc"])
    last = run_svi(_svi(lr=0.1), (train,), epochs=len(history), **common, **keys)
    assert float(svi.get_params(last.state)["loc"]) > float(svi.get_params(state)["loc"]) + 0.1


def test_every_svi_twin_has_the_written_interface():
    """Each family's twin (``SVI_TWINS``) offers what ``bayesvae.fit`` uses of it (``SVITwin``),
    the run fields empty before fit."""
    import bayesvae
    from bayesvae.backends.numpyro import svi_twin
    from bayesvae.backends.numpyro.loop import SVITwin
    from bayesvae.models.anomaly import AnomalyMixtureModel
    from bayesvae.models.prodlda import ProdLDA

    models = [
        bayesvae.VAE(16, latent_dim=2, hidden_dims=(8,)),
        bayesvae.VAE(16, latent_dim=2, hidden_dims=(8,), flows=1),
        bayesvae.HierarchicalVAE(16, latent_dim=2, top_latent_dim=1, hidden_dims=(8,)),
        ProdLDA(30, 3, hidden_dim=8),
        AnomalyMixtureModel(1, n_features=3),
    ]
    for model in models:
        twin = svi_twin(model)
        assert isinstance(twin, SVITwin), type(model).__name__
        assert twin.history == [] and twin.best_epoch is None and twin.stop_reason is None
        assert "trace" in twin.supported_elbos or "enum" in twin.supported_elbos


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive integer"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be a positive integer"),
        ({"early_stopping": 0}, ValueError, "early_stopping must be a positive integer"),
        ({"lr_schedule": "zigzag"}, ValueError, "unknown lr_schedule 'zigzag'"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay must be a finite number >= 0"),
        ({"lr": 0.0}, ValueError, "lr must be a finite number > 0"),
        ({"lr": "1e-3"}, ValueError, "lr must be a finite number > 0"),
        ({"betas": (0.9,)}, ValueError, "betas must be a pair"),
        ({"betas": (0.9, 1.0)}, ValueError, r"betas must be a finite number in \[0, 1\)"),
        ({"lr_decay": 1.5}, ValueError, r"lr_decay must be a finite number in \(0, 1\]"),
    ],
)
def test_svi_settings_refuse_bad_values_naming_them(options, error, match):
    from bayesvae.backends.numpyro.loop import SVISettings

    with pytest.raises(error, match=match):
        SVISettings(**options)


def test_svi_settings_take_numpy_scalars():
    from bayesvae.backends.numpyro.loop import SVISettings

    settings = SVISettings(lr=np.float32(1e-3), betas=(np.float32(0.9), 0.999), epochs=np.int64(2))
    assert settings.epochs == 2 and settings.lr == pytest.approx(1e-3)


def test_train_builds_the_optimizer_the_settings_describe():
    """``train`` (what every twin calls) equals ``run_svi`` on an SVI built by hand with
    ``adam`` from the same settings: same parameters, same history."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import SVI, Trace_ELBO

    from bayesvae.backends.numpyro.loop import SVISettings, adam, run_svi, train

    y = jnp.asarray(np.random.default_rng(0).normal(3.0, 1.0, size=200).astype(np.float32))
    settings = SVISettings(
        epochs=6, batch_size=50, lr=0.05, lr_schedule="exponential", lr_decay=0.7, seed=3
    )
    keys = dict(init_key=jax.random.PRNGKey(0), key=jax.random.PRNGKey(1))
    svi = _svi()
    run = train(svi.model, svi.guide, Trace_ELBO(), (y,), settings, **keys)
    optimizer, lr_of_epoch = adam(
        0.05, (0.9, 0.999), epochs=6, steps_per_epoch=4, lr_schedule="exponential", lr_decay=0.7
    )
    by_hand = run_svi(
        SVI(svi.model, svi.guide, optimizer, Trace_ELBO()),
        (y,),
        num_data=200,
        epochs=6,
        batch_size=50,
        seed=3,
        lr_of_epoch=lr_of_epoch,
        **keys,
    )
    assert float(run.params["loc"]) == float(by_hand.params["loc"])
    assert [row["lr"] for row in run.history] == pytest.approx([0.05 * 0.7**e for e in range(6)])
    assert [r["train_elbo"] for r in run.history] == [r["train_elbo"] for r in by_hand.history]


def test_twins_refuse_an_objective_or_transform_they_do_not_train_with():
    """Called directly (not through ``bayesvae.fit``, which checks first), each twin refuses an
    ``elbo`` outside its ``supported_elbos`` before training."""
    import bayesvae
    from bayesvae.backends.numpyro import svi_twin
    from bayesvae.models.anomaly import AnomalyMixtureModel

    x = np.zeros((20, 16), dtype=np.float32)
    vae_twin = svi_twin(bayesvae.VAE(16, latent_dim=2, hidden_dims=(8,)))
    with pytest.raises(ValueError, match="unknown elbo 'enum'"):
        vae_twin.fit(x, elbo="enum")
    mixture = AnomalyMixtureModel(1, n_features=3)
    mixture_twin = svi_twin(mixture)
    with pytest.raises(ValueError, match="trains with 'enum', not 'trace'"):
        mixture_twin.fit(x[:, :3], elbo="trace")
    with pytest.raises(ValueError, match="dynamic binarization does not apply"):
        mixture_twin.fit(x[:, :3], dynamic_binarization=True)
    assert vae_twin.history == [] and mixture_twin.history == []
