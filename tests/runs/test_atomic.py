"""A run folder is saved whole: old run or new run, never a mixture; a manifest catches changed
files; modes follow the umask; leftovers of killed writes are cleaned up."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import bayesvae
from bayesvae.models import VAE
from bayesvae.runs import RunWriter, load, open_run, save_model


def _vae(seed):
    return VAE(8, latent_dim=2, hidden_dims=(4,), seed=seed)


def _same_outputs(a, b):
    probe = torch.linspace(0, 1, 16).reshape(2, 8)
    torch.testing.assert_close(a.encode(probe)[0], b.encode(probe)[0], rtol=0, atol=0)


def test_a_save_replaces_the_old_run_whole(tmp_path):
    run = tmp_path / "run"
    with RunWriter(run) as writer:
        save_model(_vae(0), writer)
        writer.write_text("old_only.txt", "from the first run")
    new = _vae(1)
    save_model(new, run)
    assert not (run / "old_only.txt").exists()  # nothing of the old run survives
    _same_outputs(load(run), new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary siblings
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["files"]) == {"config.yaml", "model.pt"}


def test_an_error_while_saving_leaves_the_old_run(tmp_path):
    run = tmp_path / "run"
    old = _vae(0)
    save_model(old, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(RuntimeError, match="crash"), RunWriter(run) as writer:
        save_model(_vae(1), writer)
        raise RuntimeError("crash while writing the figures")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    _same_outputs(load(run), old)


def test_a_crash_between_the_two_renames_is_finished_on_the_next_open(tmp_path, monkeypatch):
    import bayesvae.runs.folder as folder_module

    run = tmp_path / "run"
    save_model(_vae(0), run)
    new = _vae(1)
    real_replace = os.replace

    def crash_on_second_rename(src, dst):
        if Path(src).name.startswith(".run.new-"):  # old run moved aside, new one not in place
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(folder_module.os, "replace", crash_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        save_model(new, run)
    monkeypatch.setattr(folder_module.os, "replace", real_replace)
    assert not run.exists()  # the moment a crash would leave
    _same_outputs(load(run), new)  # rolled forward: the new run was complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_unfinished_new_run_is_rolled_back(tmp_path):
    run = tmp_path / "run"
    old = _vae(0)
    save_model(old, run)
    aside = tmp_path / ".run.old-x1"
    os.replace(run, aside)
    unfinished = tmp_path / ".run.new-x2"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("half")  # no manifest: never completed
    _same_outputs(load(run), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_run_killed_while_saving_leaves_a_loadable_folder(tmp_path):
    """``kill -9`` a process that saves two different models into one folder, over and over,
    at a few moments; after each kill the folder loads and its files agree (its manifest)."""
    script = textwrap.dedent(
        f"""
        import itertools, sys
        from bayesvae.models import VAE
        from bayesvae.runs import save_model
        models = [VAE(8, latent_dim=2, hidden_dims=(h,), seed=0) for h in (4, 6)]
        print("ready", flush=True)
        for i in itertools.count():
            save_model(models[i % 2], {str(tmp_path / "run")!r})
        """
    )
    for delay in (0.3, 0.7):
        with subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
        ) as process:
            assert process.stdout.readline().strip() == "ready"
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
        run = open_run(tmp_path / "run")
        run.verify()
        model = load(tmp_path / "run")
        assert model.config["hidden_dims"] in ([4], [6], (4,), (6,))


def test_files_get_the_umask_mode_and_leftovers_are_removed(tmp_path):
    run = tmp_path / "run"
    old_mask = os.umask(0o022)
    try:
        save_model(_vae(0), run)
    finally:
        os.umask(old_mask)
    for path in [run, *run.iterdir()]:
        expected = 0o755 if path.is_dir() else 0o644
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    # a killed save's temporary folder and a killed checkpoint write's temp file
    (tmp_path / ".run.new-dead").mkdir()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".last.pt.abc.tmp").write_bytes(b"half")
    (run / "checkpoints" / "last.pt").write_bytes(b"kept")
    save_model(_vae(1), run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]


def test_the_manifest_catches_a_changed_or_missing_file(tmp_path):
    run = save_model(_vae(0), tmp_path / "run", history=[{"epoch": 1, "train_elbo": -1.0}])
    (run / "metrics.csv").write_text("epoch,train_elbo\n1,-0.5\n")
    load(run)  # the model's own files are intact
    with pytest.raises(ValueError, match="metrics.csv is not the file this run saved"):
        open_run(run).verify()
    (run / "metrics.csv").unlink()
    with pytest.raises(ValueError, match="metrics.csv is missing"):
        open_run(run).verify()
    (run / "model.pt").write_bytes((run / "model.pt").read_bytes()[:-10])
    with pytest.raises(ValueError, match="model.pt is not the file this run saved"):
        load(run)


def test_a_folder_without_a_manifest_still_loads(tmp_path):
    old = _vae(0)
    run = save_model(old, tmp_path / "run")
    (run / "manifest.json").unlink()  # as bayesvae 0.2 wrote them
    _same_outputs(load(run), old)


def test_a_save_never_deletes_what_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a bayesvae run"):
        save_model(_vae(0), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    save_model(_vae(0), tmp_path / "run")
    with pytest.raises(FileExistsError, match="already holds a run"):
        RunWriter(tmp_path / "run", overwrite=False)


def test_a_report_records_its_files_in_the_manifest(tmp_path, digits):
    from bayesvae.report import build

    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(8,), seed=0)
    run = bayesvae.fit(vae, digits.x[:64], epochs=2, progress=False).save(tmp_path / "run")
    build(run)
    manifest = json.loads((run / "manifest.json").read_text())
    assert {"report.html", "report.md", "loss_curves.png"} <= set(manifest["files"])
    open_run(run).verify()
