import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import bayesvae
from bayesvae.data import ImageData, make_loader
from bayesvae.infer import Callback, TrainingDivergedError, evaluate, resolve_device
from bayesvae.models import VAE, PyroModel


def small_vae(**kwargs):
    return VAE(64, latent_dim=2, hidden_dims=(32,), **kwargs)


def test_elbo_improves_on_digits(digits):
    result = bayesvae.fit(
        small_vae(),
        digits.x[:1500],
        val=digits.x[1500:],
        epochs=8,
        batch_size=64,
        lr=3e-3,
        progress=False,
    )
    history = result.history
    assert list(history["epoch"]) == list(range(1, 9))
    assert history["val_elbo"].iloc[-1] > history["val_elbo"].iloc[0] + 3
    assert history["train_elbo"].iloc[-1] > history["train_elbo"].iloc[0] + 3
    # the ELBO decomposes into its two terms, both per data point
    last = history.iloc[-1]
    assert last["recon"] - last["kl"] == pytest.approx(last["val_elbo"], abs=1e-6)
    assert last["kl"] > 0
    assert {"seconds", "samples_per_s", "lr", "kl_weight"} <= set(history.columns)
    assert result.best_epoch == int(history["val_elbo"].idxmax()) + 1


def test_eval_size_zero_leaves_the_terms_out_but_never_the_validation(digits):
    quiet = bayesvae.fit(small_vae(), digits.x[:600], epochs=3, eval_size=0, progress=False)
    assert not {"recon", "kl"} & set(quiet.history.columns)
    assert np.isfinite(quiet.history["train_elbo"]).all()
    validated = bayesvae.fit(
        small_vae(), digits.x[:600], val=digits.x[600:700], epochs=2, eval_size=0, progress=False
    )
    assert {"val_elbo", "recon", "kl"} <= set(validated.history.columns)


def test_same_seed_gives_identical_history_on_cpu(digits):
    def run(seed):
        pyro.clear_param_store()
        result = bayesvae.fit(
            small_vae(seed=seed),
            digits.x[:600],
            val=digits.x[600:800],
            epochs=3,
            batch_size=100,
            progress=False,
            seed=seed,
            device="cpu",
        )
        return result.history[["train_elbo", "val_elbo", "recon", "kl"]].to_numpy()

    first, again, other = run(5), run(5), run(6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("elbo", ["trace", "meanfield", "jit"])
def test_every_objective_trains(digits, elbo):
    result = bayesvae.fit(
        small_vae(), digits.x[:512], epochs=3, batch_size=64, lr=3e-3, elbo=elbo, progress=False
    )
    assert result.history["train_elbo"].iloc[-1] > result.history["train_elbo"].iloc[0]


@pytest.mark.parametrize("elbo", ["trace", "jit"])
def test_vectorized_particles(digits, elbo):
    vae = VAE((1, 8, 8), latent_dim=2, encoder="conv", conv_channels=(4,), hidden_dims=(8,))
    x = digits.x[:256].reshape(-1, 1, 8, 8)
    result = bayesvae.fit(
        vae, x, epochs=2, batch_size=64, num_particles=4, elbo=elbo, progress=False
    )
    assert np.isfinite(result.history["train_elbo"]).all()


def test_more_particles_give_a_less_noisy_gradient_estimate(digits):
    x = torch.as_tensor(digits.x[:128])

    def loss_spread(particles):
        vae = small_vae()
        objective = bayesvae.infer.make_elbo("trace", num_particles=particles)
        return np.std([objective.loss(vae.model, vae.guide, x) for _ in range(30)])

    assert loss_spread(16) < loss_spread(1)


def test_kl_warmup_ramps_the_weight_of_the_latent_sites(digits):
    result = bayesvae.fit(
        small_vae(), digits.x[:640], epochs=4, batch_size=64, kl_warmup=2, progress=False
    )
    weights = result.history["kl_weight"].tolist()
    assert weights[0] == pytest.approx(0.5) and weights[1] == 1.0 and weights[-1] == 1.0


def test_latent_scaling_touches_latent_sites_only():
    vae = VAE(4, latent_dim=2, hidden_dims=(3,))
    scaled = bayesvae.infer.scale_latents(vae.model, lambda: 0.25)
    trace = pyro.poutine.trace(scaled).get_trace(torch.rand(5, 4))
    assert trace.nodes["z"]["scale"] == pytest.approx(0.25)
    assert trace.nodes["x"]["scale"] == pytest.approx(1.0)


def test_beta_scales_the_kl_in_model_and_guide():
    vae = VAE(4, latent_dim=2, hidden_dims=(3,), beta=4.0)
    x = torch.rand(5, 4)
    guide = pyro.poutine.trace(vae.guide).get_trace(x)
    model = pyro.poutine.trace(pyro.poutine.replay(vae.model, trace=guide)).get_trace(x)
    assert guide.nodes["z"]["scale"] == model.nodes["z"]["scale"] == pytest.approx(4.0)
    assert model.nodes["x"]["scale"] == pytest.approx(1.0)


def test_what_is_evaluated_does_not_change_the_training(digits):
    """The per-epoch evaluation draws from its own seeded stream: with or without it, on
    training points or on ``val``, the same seed trains the same weights."""
    x = digits.x[:256]
    options = dict(epochs=2, batch_size=64, seed=3, progress=False)
    runs = [
        bayesvae.fit(small_vae(seed=0), x, eval_size=0, **options),
        bayesvae.fit(small_vae(seed=0), x, eval_size=100, **options),
        bayesvae.fit(small_vae(seed=0), x, val=digits.x[300:400], **options),
    ]
    assert "recon" not in runs[0].history and "recon" in runs[1].history
    weights = [run.model.state_dict() for run in runs]
    for other in weights[1:]:
        for name, tensor in weights[0].items():
            torch.testing.assert_close(other[name], tensor, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kl_warmup", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_kl_warmup_must_be_a_non_negative_integer(digits, kl_warmup, error):
    with pytest.raises(error, match="kl_warmup must be a non-negative integer"):
        bayesvae.fit(small_vae(), digits.x[:64], kl_warmup=kl_warmup, progress=False)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
@pytest.mark.parametrize("weight_decay", [-0.1, float("inf"), float("nan"), True, "0.1", None])
def test_weight_decay_must_be_a_finite_non_negative_number(digits, backend, weight_decay):
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        bayesvae.fit(
            small_vae(), digits.x[:64], weight_decay=weight_decay, backend=backend, progress=False
        )


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_numpy_scalar_options_train_like_python_numbers(digits, backend):
    """Options read from NumPy arrays (float32 rates and decays) are numbers like any other."""
    runs = [
        bayesvae.fit(
            small_vae(seed=0),
            digits.x[:256],
            epochs=2,
            lr=cast(2e-3),
            betas=(cast(0.9), 0.999),
            lr_schedule="exponential",
            lr_decay=cast(0.5),
            backend=backend,
            seed=1,
            progress=False,
        ).history["train_elbo"]
        for cast in (float, np.float32)
    ]
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5)


def test_jit_with_kl_warmup_is_refused(digits):
    with pytest.raises(ValueError, match="kl_warmup"):
        bayesvae.fit(small_vae(), digits.x[:128], elbo="jit", kl_warmup=2, progress=False)


def test_early_stopping_stops_and_says_why(digits):
    result = bayesvae.fit(
        small_vae(),
        digits.x[:300],
        val=digits.x[300:400],
        epochs=50,
        lr=1e-12,
        early_stopping=2,
        batch_size=100,
        progress=False,
    )
    assert len(result.history) < 50
    assert "early stopping" in result.stop_reason


def test_callbacks_see_every_epoch_and_can_stop(digits):
    class Recorder(Callback):
        def __init__(self):
            self.started = self.ended = False
            self.epochs = []

        def on_fit_start(self, state):
            self.started = True

        def on_epoch_end(self, state):
            self.epochs.append(state.epoch)
            if state.epoch == 2:
                state.stop, state.stop_reason = True, "enough"

        def on_fit_end(self, state):
            self.ended = True

    recorder = Recorder()
    result = bayesvae.fit(
        small_vae(), digits.x[:256], epochs=5, batch_size=64, callbacks=[recorder], progress=False
    )
    assert recorder.started and recorder.ended and recorder.epochs == [1, 2]
    assert result.stop_reason == "enough" and len(result.history) == 2


def test_lr_schedule_and_gradient_clipping(digits):
    result = bayesvae.fit(
        small_vae(),
        digits.x[:256],
        epochs=3,
        batch_size=64,
        lr=1e-2,
        lr_schedule="exponential",
        lr_decay=0.5,
        clip_norm=5.0,
        optimizer="clippedadam",
        progress=False,
    )
    assert result.history["lr"].tolist() == pytest.approx([1e-2, 5e-3, 2.5e-3])
    assert (result.history["grad_norm"] > 0).all()


def test_accepts_a_dataloader_and_image_data_with_dynamic_binarization(digits):
    loader = make_loader(
        torch.as_tensor(digits.x[:256]),
        batch_size=64,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    result = bayesvae.fit(small_vae(), loader, epochs=1, progress=False)
    assert result.settings["num_train"] == 256
    seen = []

    class Spy(VAE):
        def model(self, x, *, num_data=None):
            seen.append(x.clone())
            return super().model(x, num_data=num_data)

    spy = Spy(64, latent_dim=2, hidden_dims=(8,))
    data = ImageData(x=digits.x[:128], y=None, image_shape=(1, 8, 8), binarize="dynamic")
    bayesvae.fit(spy, data, epochs=2, batch_size=64, progress=False)
    assert all(set(batch.unique().tolist()) <= {0.0, 1.0} for batch in seen[1:])


def test_no_progress_output_when_not_a_terminal(digits, capsys):
    bayesvae.fit(small_vae(), digits.x[:128], epochs=1, batch_size=64, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(batch_size=-3), ValueError, "batch_size"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(lr=float("nan")), ValueError, "lr"),
        (dict(elbo="renyi-ish"), ValueError, "elbo"),
        (dict(optimizer="sgd9"), ValueError, "optimizer"),
        (dict(lr_schedule="zigzag"), ValueError, "lr_schedule"),
        (dict(device="tpu"), ValueError, "device"),
        (dict(device="cuda:0"), ValueError, "CUDA is not available"),
        (dict(num_particles=0), ValueError, "num_particles"),
        (dict(kl_warmup=-1), ValueError, "kl_warmup"),
        (dict(resume=True), ValueError, "checkpoint_dir"),
        (dict(callbacks=[print]), TypeError, "Callback"),
    ],
)
def test_bad_options_raise_before_training(digits, kwargs, error, words):
    if "device" in kwargs and torch.cuda.is_available() and kwargs["device"].startswith("cuda"):
        pytest.skip("CUDA is available here")
    with pytest.raises(error, match=words):
        bayesvae.fit(small_vae(), digits.x[:64], progress=False, **kwargs)


@pytest.mark.parametrize(
    "train, words",
    [
        (np.full((10, 64), np.nan, dtype=np.float32), "train: x contains"),
        (np.zeros((0, 64), dtype=np.float32), "train: x is empty"),
        (np.ones((10, 64), dtype=np.float32) * 3, r"\[0, 1\]"),
        (np.ones((10, 32), dtype=np.float32), r"shape \(N, 64\)"),
        ((np.ones((10, 64), dtype=np.float32), np.arange(10)), "one data array"),
    ],
)
def test_bad_data_raises_naming_the_argument(train, words):
    with pytest.raises((ValueError, TypeError), match=words):
        bayesvae.fit(small_vae(), train, progress=False)


def test_bad_validation_data_is_named_val(digits):
    with pytest.raises(ValueError, match="val: x contains"):
        bayesvae.fit(small_vae(), digits.x[:64], val=np.full((3, 64), np.nan), progress=False)


def test_device_auto_resolves():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")).type == "cpu"


def test_training_data_stay_on_the_gpu_only_when_they_fit(monkeypatch, caplog):
    from bayesvae.infer.svi import _storage_device

    tensors = (torch.zeros(1000, 250), torch.zeros(1000, dtype=torch.long))  # 1.008 MB
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10_000_000, 80_000_000))
    assert _storage_device(tensors, cuda) == cuda
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (2_000_000, 80_000_000))
    with caplog.at_level("INFO", logger="bayesvae"):
        assert _storage_device(tensors, cuda) == torch.device("cpu")
    assert "stay on the CPU" in caplog.text
    assert _storage_device(tensors, torch.device("cpu")) == torch.device("cpu")


class _Explodes(PyroModel):
    """A tiny model whose guide produces NaN from a chosen step on."""

    def __init__(self, nan_from_step: int = 3):
        super().__init__({"nan_from_step": nan_from_step})
        self.loc = torch.nn.Parameter(torch.zeros(1))
        self.calls, self.nan_from_step = 0, nan_from_step

    def model(self, x, *, num_data=None):
        with pyro.plate("data", size=num_data or len(x), subsample_size=len(x)):
            mu = pyro.sample("mu", dist.Normal(torch.zeros(len(x)), 1.0))
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=x[:, 0])

    def guide(self, x, *, num_data=None):
        pyro.module(self.pyro_name, self)
        self.calls += 1
        loc = self.loc * 1 if self.calls <= self.nan_from_step else self.loc * math.nan
        with pyro.plate("data", size=num_data or len(x), subsample_size=len(x)):
            pyro.sample("mu", dist.Normal(loc.expand(len(x)), 1.0))


def test_nan_loss_stops_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    x = torch.randn(40, 1)
    model = _Explodes(nan_from_step=6)  # 1 capture pass + 4 steps per epoch: NaN in epoch 2
    with pytest.raises(TrainingDivergedError, match="epoch 2, step 1"):
        bayesvae.fit(model, x, epochs=3, batch_size=10, checkpoint_dir=tmp_path, progress=False)
    saved = torch.load(tmp_path / "last.pt", weights_only=False)
    assert saved["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model_state"]["state_dict"].values())


def test_nan_parameters_at_an_epoch_end_are_never_checkpointed(tmp_path, digits):
    class Poison(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 2:
                with torch.no_grad():
                    next(state.model.parameters()).fill_(math.nan)

    with pytest.raises(TrainingDivergedError, match="epoch 2"):
        bayesvae.fit(
            small_vae(),
            digits.x[:128],
            epochs=3,
            batch_size=64,
            progress=False,
            callbacks=[Poison()],
            checkpoint_dir=tmp_path,
        )
    saved = torch.load(tmp_path / "last.pt", weights_only=False)
    assert saved["epoch"] == 1


def test_resume_continues_exactly_where_a_run_stopped(tmp_path, digits):
    def run(epochs, folder, resume=False):
        pyro.clear_param_store()
        return bayesvae.fit(
            small_vae(seed=1),
            digits.x[:512],
            val=digits.x[512:700],
            epochs=epochs,
            batch_size=64,
            progress=False,
            checkpoint_dir=folder,
            resume=resume,
            seed=3,
        )

    whole = run(4, tmp_path / "a").history
    run(2, tmp_path / "b")
    resumed = run(4, tmp_path / "b", resume=True).history
    columns = ["epoch", "train_elbo", "val_elbo", "recon", "kl"]
    np.testing.assert_allclose(
        resumed[columns].to_numpy(), whole[columns].to_numpy(), rtol=0, atol=1e-6
    )
    assert (tmp_path / "b" / "best.pt").exists()


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path, digits):
    bayesvae.fit(small_vae(), digits.x[:128], epochs=1, progress=False, checkpoint_dir=tmp_path)
    other = VAE(64, latent_dim=3, hidden_dims=(32,))
    with pytest.raises(ValueError, match="cannot resume"):
        bayesvae.fit(
            other, digits.x[:128], epochs=2, progress=False, checkpoint_dir=tmp_path, resume=True
        )


def test_a_checkpoint_that_cannot_be_written_stops_and_keeps_the_previous_one(
    tmp_path, digits, monkeypatch
):
    import errno

    import bayesvae.infer.checkpoint as checkpoint_module
    from bayesvae.infer.checkpoint import CheckpointWriteError
    from bayesvae.runs.files import atomic_write

    writes, real_write = [], checkpoint_module.write_torch

    def disk_fills_up(path, payload):
        writes.append(payload["epoch"])
        if payload["epoch"] < 2:
            return real_write(path, payload)

        def half_then_full(handle):
            handle.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")

        return atomic_write(path, half_then_full)

    monkeypatch.setattr(checkpoint_module, "write_torch", disk_fills_up)
    with pytest.raises(CheckpointWriteError, match="No space left on device.*previous one is kept"):
        bayesvae.fit(
            small_vae(),
            digits.x[:128],
            epochs=3,
            batch_size=64,
            progress=False,
            checkpoint_dir=tmp_path,
        )
    assert writes[-1] == 2
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temp file


def test_checkpoint_every_writes_last_pt_every_n_rows_and_after_the_last(
    tmp_path, digits, monkeypatch
):
    import bayesvae.infer.checkpoint as checkpoint_module

    written = []
    real = checkpoint_module.save_checkpoint

    def record(path, payload):
        written.append((path.name, payload["epoch"]))
        return real(path, payload)

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", record)
    bayesvae.fit(
        small_vae(),
        digits.x[:128],
        epochs=5,
        batch_size=64,
        progress=False,
        checkpoint_dir=tmp_path,
        checkpoint_every=2,
    )
    assert [epoch for name, epoch in written if name == "last.pt"] == [2, 4, 5]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 5
    with pytest.raises(ValueError, match="checkpoint_every"):
        bayesvae.fit(small_vae(), digits.x[:64], epochs=1, checkpoint_every=0, progress=False)


def test_evaluate_matches_the_models_own_elbo(digits):
    vae = small_vae()
    x = torch.as_tensor(digits.x[:400])
    loader = make_loader(x, batch_size=100, shuffle=False)
    pyro.set_rng_seed(0)
    estimates = [evaluate(vae, loader, 400)["elbo"] for _ in range(20)]
    reference = float(vae.elbo(x, num_samples=50, seed=1).mean())
    assert np.mean(estimates) == pytest.approx(reference, abs=0.3)


def test_progress_bar_on_a_terminal_shows_losses_and_speed(digits, monkeypatch, capsys):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    bayesvae.fit(small_vae(), digits.x[:256], val=digits.x[256:320], epochs=2, batch_size=64)
    err = capsys.readouterr().err
    assert "train" in err and "val" in err and "samples/s" in err


class _Untraceable(bayesvae.VAE):
    """A VAE whose model refuses to be traced (as data-dependent Python control flow would)."""

    def model(self, x, *, num_data=None):
        if torch.jit.is_tracing():
            raise RuntimeError("data-dependent control flow")
        return super().model(x, num_data=num_data)


def test_jit_falls_back_to_trace_elbo_with_a_logged_reason(digits, caplog):
    vae = _Untraceable(64, latent_dim=2, hidden_dims=(16,), seed=0)
    with caplog.at_level("WARNING", logger="bayesvae.infer.svi"):
        result = bayesvae.fit(
            vae, digits.x[:256], epochs=2, batch_size=64, elbo="jit", progress=False
        )
    assert "could not be traced (RuntimeError: data-dependent control flow)" in caplog.text
    assert np.isfinite(result.history["train_elbo"]).all()


def test_a_family_fits_a_dataframe_and_names_non_numeric_columns():
    import pandas as pd

    frame = pd.DataFrame(np.random.default_rng(0).random((64, 8)).round())
    result = bayesvae.fit(VAE(8, latent_dim=2, hidden_dims=(8,)), frame, epochs=1, progress=False)
    assert len(result.history) == 1
    frame["city"] = "Oslo"
    with pytest.raises(TypeError, match=r"train: x must be numeric; its column\(s\) \['city'\]"):
        bayesvae.fit(VAE(9, latent_dim=2, hidden_dims=(8,)), frame, epochs=1, progress=False)
