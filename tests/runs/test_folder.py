import pytest
import torch
import yaml

import bayesvae
from bayesvae.models import VAE
from bayesvae.runs import atomic_write, load, read_config, save_model


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_shape=64, hidden_dims=(32,)),
        dict(input_shape=(1, 8, 8), encoder="conv", conv_channels=(4,), likelihood="gaussian"),
    ],
)
def test_save_then_load_gives_identical_outputs(tmp_path, digits, kwargs):
    vae = VAE(latent_dim=3, seed=0, **kwargs)
    x = digits.x[:300].reshape(-1, *vae.input_shape)
    result = bayesvae.fit(vae, x, epochs=2, batch_size=64, progress=False)
    folder = result.save(tmp_path / "run")
    loaded = bayesvae.load(folder)
    assert loaded.config == vae.config and loaded.pyro_name != vae.pyro_name
    probe = torch.as_tensor(x[:20])
    for query in ("encode", "reconstruct"):
        expected, got = getattr(vae, query)(probe), getattr(loaded, query)(probe)
        for e, g in zip(
            expected if isinstance(expected, tuple) else (expected,),
            got if isinstance(got, tuple) else (got,),
            strict=True,
        ):
            torch.testing.assert_close(g, e, rtol=0, atol=0)
    torch.testing.assert_close(loaded.sample(5, seed=2), vae.sample(5, seed=2), rtol=0, atol=0)
    metrics = (folder / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("epoch,train_elbo") and len(metrics) == 3
    config = read_config(folder)
    assert config["fit"]["epochs"] == 2 and config["family"] == "VAE"


def test_loaded_model_keeps_training_with_fit(tmp_path, digits):
    vae = VAE(64, latent_dim=2, hidden_dims=(16,), seed=0)
    bayesvae.save(vae, tmp_path / "run")
    loaded = load(tmp_path / "run")
    before = [p.clone() for p in loaded.parameters()]
    bayesvae.fit(loaded, digits.x[:128], epochs=1, batch_size=64, progress=False)
    assert any(not torch.equal(b, p) for b, p in zip(before, loaded.parameters(), strict=True))


def test_a_cuda_saved_state_loads_on_cpu(tmp_path):
    vae = VAE(8, latent_dim=2, hidden_dims=(4,))
    folder = save_model(vae, tmp_path / "run")
    # map_location makes GPU tensors land on the CPU; check the loader asks for it
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=False)
    assert all(t.device.type == "cpu" for t in state["state_dict"].values())
    assert load(folder, device="cpu").device.type == "cpu"


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a bayesvae run folder"):
        load(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"family": "Nope", "model": {}}))
    with pytest.raises(ValueError, match="unknown model family 'Nope'"):
        load(tmp_path)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"good")

    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left behind


def test_save_refuses_a_file_path(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        save_model(VAE(4, latent_dim=2), tmp_path / "file")


def test_param_store_state_survives_save_and_load(tmp_path):
    import pyro

    from bayesvae.models import BetaBinomialABTest

    model = BetaBinomialABTest(["A", "B"])
    result = bayesvae.fit(
        model, ([20, 30], [100, 100]), epochs=50, batch_size=2, lr=0.01, progress=False
    )
    folder = result.save(tmp_path / "ab")
    loaded = bayesvae.load(folder)
    store = pyro.get_param_store()
    for name in ("rate_logit_mean", "rate_log_concentration"):
        torch.testing.assert_close(
            store[f"{loaded.pyro_name}.{name}"], store[f"{model.pyro_name}.{name}"]
        )


class _Payload:
    """Unpickling this runs ``Path.touch`` on the marker file: code execution on load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("victim", ["model.pt", "last.pt", "best.pt"])
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, digits, victim):
    import torch

    import bayesvae
    from bayesvae.runs import UnsafeFileError

    run = tmp_path / "run"
    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(16,), seed=0)
    result = bayesvae.fit(
        vae,
        digits.x[:128],
        epochs=1,
        batch_size=64,
        progress=False,
        checkpoint_dir=run / "checkpoints",
    )
    result.save(run)
    marker = tmp_path / "pwned"
    planted = run / victim if victim == "model.pt" else run / "checkpoints" / victim
    torch.save({"format": 2, "state_dict": _Payload(marker)}, planted)
    if victim == "model.pt":  # the manifest already refuses a changed file; without one:
        with pytest.raises(ValueError, match="not the file this run saved"):
            bayesvae.load(run)
        (run / "manifest.json").unlink()
    with pytest.raises(UnsafeFileError, match=victim):
        if victim == "model.pt":
            bayesvae.load(run)
        else:
            from bayesvae.infer.checkpoint import load_checkpoint

            load_checkpoint(planted)
    if victim == "last.pt":
        with pytest.raises(UnsafeFileError, match=victim):
            bayesvae.fit(
                bayesvae.VAE(64, latent_dim=2, hidden_dims=(16,), seed=0),
                digits.x[:128],
                epochs=2,
                batch_size=64,
                progress=False,
                checkpoint_dir=run / "checkpoints",
                resume=True,
            )
    assert not marker.exists()


def test_format_1_run_folders_are_refused_with_the_reason(tmp_path, digits):
    import torch

    import bayesvae

    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(16,), seed=0)
    run = bayesvae.fit(vae, digits.x[:64], epochs=1, progress=False).save(tmp_path / "run")
    state = torch.load(run / "model.pt", weights_only=True)
    torch.save({**state, "format": 1}, run / "model.pt")
    (run / "manifest.json").unlink()  # as a folder of that version had none
    with pytest.raises(ValueError, match="format 1 run folders"):
        bayesvae.load(run)


def test_constraints_round_trip_as_names():
    from torch.distributions import constraints

    from bayesvae.runs.state import constraint_from_spec, constraint_spec

    for constraint in (
        constraints.positive,
        constraints.simplex,
        constraints.lower_cholesky,
        constraints.corr_cholesky,
        constraints.real,
    ):
        assert constraint_from_spec(constraint_spec(constraint, "p")) is constraint
    rebuilt = constraint_from_spec(constraint_spec(constraints.interval(0.5, 2.0), "p"))
    assert (rebuilt.lower_bound, rebuilt.upper_bound) == (0.5, 2.0)
    rebuilt = constraint_from_spec(constraint_spec(constraints.greater_than(-1.0), "p"))
    assert rebuilt.lower_bound == -1.0
    with pytest.raises(ValueError, match="cannot record"):
        constraint_spec(constraints.integer_interval(0, 3), "p")


def test_config_and_json_take_numpy_values(tmp_path):
    """NumPy numbers, arrays and tuples in a config or JSON file are written as plain values
    (``yaml.safe_dump`` refuses them as they are)."""
    import json

    import numpy as np
    import yaml

    from bayesvae.runs import RunWriter

    values = {"rate": np.float64(0.25), "count": np.int64(3), "prior": (np.float32(1.5), 2.0)}
    with RunWriter(tmp_path / "run") as run:
        run.write_config("Example", {"grid": np.arange(3)}, analysis=values)
        run.write_json("values.json", values)
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["model"] == {"grid": [0, 1, 2]}
    assert config["analysis"] == {"rate": 0.25, "count": 3, "prior": [1.5, 2.0]}
    assert json.loads((tmp_path / "run" / "values.json").read_text()) == config["analysis"]
