"""Each example script runs, with tiny arguments."""

import os
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

EXAMPLES = {
    "abtest.py": ["--out", "{tmp}/ab", "--num-samples", "500"],
    "anomaly.py": ["--out", "{tmp}/anomaly", "--num-samples", "100"],
    "vae_digits.py": ["--epochs", "2", "--out", "{tmp}/digits"],
    "vae_family.py": ["--epochs", "2", "--out", "{tmp}/family"],
    "own_svi_loop.py": ["--steps", "20"],
    "pyro_programs.py": [
        "--model",
        "poisson_glm",
        "--steps",
        "300",
        "--num-samples",
        "100",
        "--out",
        "{tmp}/programs",
    ],
    "topics.py": [
        "--corpus",
        "{data}/20news_prodlda/test.txt.gz",
        "--limit",
        "400",
        "--topics",
        "5",
        "--epochs",
        "2",
        "--out",
        "{tmp}/topics",
    ],
    "vae_mnist.py": [
        "--epochs",
        "1",
        "--limit",
        "512",
        "--out",
        "{tmp}/mnist",
        "--data-root",
        "{data}/mnist",
    ],
}


def test_every_example_is_covered():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(EXAMPLES)


# Short NUTS runs in examples and docs may honestly warn about ESS; that is not a failure.
@pytest.mark.filterwarnings("ignore::bayesvae.infer.mcmc.ConvergenceWarning")
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name, tmp_path, monkeypatch, capsys):
    shared = Path(os.environ.get("BAYESVAE_DATA", ROOT.parent / "shared" / "data"))
    args = [a.format(tmp=tmp_path, data=shared) for a in EXAMPLES[name]]
    monkeypatch.setattr(sys, "argv", [name, *args])
    monkeypatch.chdir(tmp_path)
    try:
        runpy.run_path(str(ROOT / "examples" / name), run_name="__main__")
    except SystemExit as exit_info:
        assert exit_info.code in (0, None)
    out = capsys.readouterr().out
    assert out.strip() or not shared.is_dir()
