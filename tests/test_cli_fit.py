"""``bayesvae fit MODEL.py:FUNCTION --data FILE``: a user's Pyro program from the shell, its
arguments bound to the data by name; bad bindings exit 2 with one line."""

import json

import numpy as np
import pandas as pd
import pytest

from bayesvae.cli import main

MODEL = """
import pyro
import pyro.distributions as dist


def regression(x, y=None):
    a = pyro.sample("a", dist.Normal(0.0, 10.0))
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    s = pyro.sample("s", dist.HalfNormal(5.0))
    with pyro.plate("data", len(x)):
        pyro.sample("y", dist.Normal(a + b * x, s), obs=y)
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "model.py").write_text(MODEL)
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    y = 1.0 + 2.0 * x + rng.normal(scale=0.5, size=120)
    pd.DataFrame({"x": x, "y": y, "unused": 1}).to_csv(tmp_path / "data.csv", index=False)
    np.savez(tmp_path / "data.npz", predictor=x, y=y)
    (tmp_path / "data.json").write_text(json.dumps({"x": x.tolist(), "y": y.tolist()}))
    return tmp_path


@pytest.mark.parametrize("data", ["data.csv", "data.json"])
def test_fit_svi_from_csv_and_json(files, data, capsys):
    model = str(files / "model.py") + ":regression"
    args = ["fit", model, "--data", str(files / data), "--steps", "1500", "--json"]
    assert main([*args, "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["posterior"]["b"]["mean"] == pytest.approx(2.0, abs=0.15)
    assert summary["posterior"]["s"]["mean"] == pytest.approx(0.5, abs=0.1)


def test_fit_both_with_a_binding_writes_the_report(files, capsys):
    out = files / "run"
    args = ["fit", f"{files / 'model.py'}:regression", "--data", str(files / "data.npz")]
    args += ["--bind", "x=predictor", "--method", "both", "--guide", "mvn", "--steps", "1500"]
    args += ["--num-samples", "200", "--num-warmup", "200", "--chains", "2", "--out", str(out)]
    assert main([*args, "--report", "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["guide_agrees_with_nuts"] is True
    assert (out / "report.html").exists() and (out / "comparison.csv").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["model.py:nope"], "defines no function 'nope'"),
        (["model.txt:regression"], "expected FILE.py:FUNCTION"),
        (["missing.py:regression"], "is not a file"),
        (["model.py:regression", "--bind", "x=zzz"], "the data have no 'zzz'"),
        (["model.py:regression", "--bind", "q=x"], "the model has no argument 'q'"),
        (["model.py:regression", "--bind", "x"], "expected ARGUMENT=COLUMN"),
        (["model.py:regression", "--report"], "--report needs --out"),
    ],
)
def test_bad_bindings_exit_2_with_one_line(files, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(files)
    (files / "model.txt").write_text(MODEL)
    code = main(["fit", *extra[:1], "--data", "data.csv", *extra[1:]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_an_argument_without_data_and_bad_files(files, monkeypatch, capsys):
    monkeypatch.chdir(files)
    pd.DataFrame({"y": [1.0, 2.0]}).to_csv("only_y.csv", index=False)
    (files / "broken.py").write_text("def regression(:\n")
    (files / "bad.json").write_text("[1, 2]")
    (files / "garbage.npz").write_bytes(b"not a zip")
    cases = [
        (["model.py:regression", "--data", "only_y.csv"], "argument 'x' of the model has no data"),
        (["broken.py:regression", "--data", "data.csv"], "importing broken.py failed"),
        (["model.py:regression", "--data", "bad.json"], "expected a JSON object"),
        (["model.py:regression", "--data", "garbage.npz"], "cannot be read"),
        (["model.py:regression", "--data", "."], "not a file"),
    ]
    for args, message in cases:
        code = main(["fit", *args])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
