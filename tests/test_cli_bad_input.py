"""The CLI's promise on bad input, as a table: exit 2, one line on stderr, no traceback; and
``--debug`` shows the traceback for bug reports."""

import numpy as np
import pytest

from bayesvae.cli import main


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "garbage.npy").write_bytes(b"this is not numpy at all, not even close" * 4)
    (tmp_path / "garbage.npz").write_bytes(b"PK not really a zip")
    (tmp_path / "afile").write_text("x")
    np.savez(tmp_path / "points.npz", X=np.random.default_rng(0).normal(size=(60, 2)))
    for name, text in {
        "bad_yaml": "family: [unclosed\n",
        "no_model": "family: VAE\n",
        "a_list": "- 1\n- 2\n",
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(text)
    run = tmp_path / "bad_metrics"
    run.mkdir()
    (run / "config.yaml").write_text("family: VAE\nmodel: {input_shape: 4}\n")
    (run / "metrics.csv").write_bytes(b'"a,b\n1,"2\n\x00\x00')
    run = tmp_path / "bad_posterior"
    run.mkdir()
    (run / "config.yaml").write_text("family: BetaBinomialABTest\nmodel: {arms: [A, B]}\n")
    (run / "posterior.nc").write_bytes(b"not netcdf")
    return tmp_path


CASES = [
    (["vae", "--data", "folder", "--out", "o", "--epochs", "1"], "folder"),
    (["vae", "--data", "empty.npz", "--out", "o", "--epochs", "1"], "empty.npz"),
    (["vae", "--data", "garbage.npy", "--out", "o", "--epochs", "1"], "garbage.npy"),
    (["vae", "--data", "garbage.npz", "--out", "o", "--epochs", "1"], "garbage.npz"),
    (["vae", "--data", "digits", "--out", "afile", "--epochs", "1", "--no-progress"], "afile"),
    (["anomaly", "folder"], "folder"),
    (["anomaly", "empty.npz"], "empty.npz"),
    (["anomaly", "points.npz", "--out", "afile", "--epochs", "1"], "afile"),
    (["anomaly", "points.npz", "--anomaly-scale", "-1"], "anomaly_scale"),
    (["vae-anomaly", "garbage.npz"], "garbage.npz"),
    (["topics", "garbage.npz", "--topics", "2"], "garbage.npz"),
    (["abtest", "folder", "--group", "g", "--outcome", "o"], "folder"),
    (["report", "bad_yaml"], "config.yaml"),
    (["report", "no_model"], "config.yaml"),
    (["report", "a_list"], "config.yaml"),
    (["report", "bad_metrics"], ""),
    (["report", "bad_posterior"], "posterior.nc"),
]


@pytest.mark.parametrize(("args", "names"), CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_bad_input_exits_2_with_one_line(files, capsys, args, names):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert names in err
    assert not (files / "o").exists()  # the run folder a refused command would have written


def test_debug_shows_the_traceback(files):
    with pytest.raises(ValueError, match="empty"):
        main(["--debug", "vae", "--data", "empty.npz", "--out", "o", "--epochs", "1"])


class _Terminal:
    """A stderr that says it is a terminal, keeping what is written."""

    def __init__(self):
        import io

        self.buffer = io.StringIO()

    def isatty(self):
        return True

    def write(self, text):
        return self.buffer.write(text)

    def flush(self):
        pass


@pytest.mark.parametrize("quiet", [False, True])
def test_long_jobs_show_a_bar_in_a_terminal_only(files, monkeypatch, quiet):
    import sys

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    args = ["anomaly", "points.npz", "--epochs", "5"] + (["--no-progress"] if quiet else [])
    assert main(args) == 0
    shown = terminal.buffer.getvalue()
    assert ("%|" in shown) != quiet, shown  # tqdm's bar


@pytest.mark.parametrize("quiet", [False, True])
def test_saving_and_the_report_show_their_stages_in_a_terminal(files, monkeypatch, quiet):
    import sys

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    args = ["anomaly", "points.npz", "--epochs", "5", "--out", "run", "--report"]
    assert main(args + (["--no-progress"] if quiet else [])) == 0
    shown = terminal.buffer.getvalue()
    assert ("save" in shown and "report" in shown) != quiet, shown


def test_no_bar_when_stderr_is_not_a_terminal(files, capsys):
    assert main(["anomaly", "points.npz", "--epochs", "5"]) == 0
    assert capsys.readouterr().err == ""


def test_out_holding_another_run_needs_overwrite_which_replaces_it_whole(files, capsys):
    first = ["vae", "--data", "digits", "--epochs", "1", "--hidden", "8", "--no-progress"]
    assert main([*first, "--out", "run", "--report"]) == 0
    assert (files / "run" / "report.html").exists()
    capsys.readouterr()
    assert main([*first, "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run; pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert main([*first, "--out", "run", "--overwrite"]) == 0
    assert not (files / "run" / "report.html").exists()  # the old run's report is gone
    assert (files / "run" / "config.yaml").exists()


def test_an_out_that_cannot_be_written_fails_before_any_work(files, capsys):
    code = main(["anomaly", "points.npz", "--out", "afile/inside", "--epochs", "1000"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be written" in err and "afile" in err
