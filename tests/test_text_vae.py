"""The sentence-VAE workflow and ``bayesvae text-vae``: corpus in, run folder and report out,
user text escaped, bad input refused in one line."""

from __future__ import annotations

import json

import pytest

import bayesvae
from bayesvae.cli import main
from bayesvae.models import SentenceVAE
from bayesvae.text_vae import fit_text_vae

LINES = [
    "The cat sat on the mat. A dog ran in the park!",
    "The dog sat on the mat. A cat ran in the park.",
    "My cat likes fish. Your dog likes bones? <b>Bold</b> words & more.",
] * 20


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(LINES) + "\n")
    return path


SMALL = ["--epochs", "2", "--hidden", "16", "--embedding-dim", "8", "--latent-dim", "3",
         "--num-samples", "10", "--no-progress"]  # fmt: skip


def test_the_workflow_measures_held_out_sentences():
    run = fit_text_vae(
        LINES, epochs=2, hidden_dim=16, embedding_dim=8, latent_dim=3, num_samples=10,
        progress=False,
    )  # fmt: skip
    figures = run.figures
    assert figures["num_eval"] == 14  # 10 % of the 140 sentences
    assert figures["nll"] > 0 and figures["ppl_word"] > 1 and figures["kl"] >= 0
    assert len(run.samples) == 10 and len(run.homotopy) == 5 and len(run.reconstructions) == 5
    summary = run.to_dict()
    assert summary["family"] == "SentenceVAE" and summary["collapsed"] == (figures["kl"] < 0.1)
    assert "held-out (14 sentences" in run.table()


def test_text_vae_command_writes_a_run_and_an_escaped_report(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["text-vae", str(corpus), "--out", str(out), "--report", "--json", *SMALL]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["vocab_size"] > 10 and summary["epochs"] == 2
    for name in ("config.yaml", "model.pt", "metrics.csv", "result.json", "samples.txt",
                 "homotopy.txt", "report.html", "report.md"):  # fmt: skip
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert "<h2>Sentence VAE</h2>" in html and "homotopy" in html
    assert "<b>" not in html.split("<body>")[1].replace("<b>bayesvae</b>", "")
    assert "&lt;" in html  # the corpus's "<b>" tokens are shown as text
    loaded = bayesvae.load(out)
    assert isinstance(loaded, SentenceVAE) and len(loaded.vocabulary) == summary["vocab_size"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--val-fraction", "0"], "val_fraction must be a finite number in (0, 1)"),
        (["--min-tokens", "30", "--max-tokens", "40"], "expected at least 2"),
        (["--max-tokens", "2", "--min-tokens", "3"], "must be at least min_tokens"),
        (["--word-dropout", "1.5"], "word_dropout"),
        (["--vocab-size", "3"], "max_size must be an integer > 4"),
        (["--report"], "--report needs --out"),
    ],
)
def test_bad_input_exits_2_with_one_line(corpus, capsys, args, words):
    assert main(["text-vae", str(corpus), *SMALL, *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_missing_corpus_exits_2(tmp_path, capsys):
    assert main(["text-vae", str(tmp_path / "none.txt"), *SMALL]) == 2
    assert "does not exist" in capsys.readouterr().err
