"""The benchmark scripts run (tiny ``--quick`` mode; they write nothing then)."""

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "script",
    [
        "vae_mnist.py",
        "vae_variants.py",
        "augment.py",
        "vae_anomaly.py",
        "abtest.py",
        "anomaly.py",
        "prodlda.py",
        "gpu.py",
    ],
)
def test_benchmark_quick_run(script, monkeypatch, capsys):
    before = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    monkeypatch.setattr(sys, "argv", [script, "--quick"])
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "benchmarks" / script), run_name="__main__")
    assert exit_info.value.code == 0
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text() == before
    captured = capsys.readouterr()
    assert captured.out.strip() or "skipped" in captured.err  # no shared data: a clean skip
