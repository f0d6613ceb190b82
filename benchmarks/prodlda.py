"""ProdLDA on the paper's 20 Newsgroups (train 11,258 / test 7,487 documents, 1,995 words), K = 50:
NPMI coherence against the training and, separately, the test documents, topic diversity,
perplexity and epoch time, for the Pyro model and its NumPyro twin in the same run.

    python benchmarks/prodlda.py            # ../shared/data/20news_prodlda; ~15 min on 2 cores

Both backends train with the paper's settings (batch 200, Adam lr 0.002 with beta1 0.99,
dropout 0.6, two hidden layers of 100 softplus units, alpha 1) for the same number of epochs and
seed. Appends a section to ``benchmarks/RESULTS.md`` and exits 1 when a target is missed:
test-set NPMI >= 0.25 for the Pyro model, and the NumPyro twin >= 3x the Pyro model's
documents per second (median epoch, compilation excluded).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from vae_mnist import machine, write_results  # noqa: E402

from bayesvae.data.text import load_20news_prodlda  # noqa: E402
from bayesvae.diagnostics.topics import (  # noqa: E402
    TopicCollapseWarning,
    npmi_coherence,
    topic_diversity,
)
from bayesvae.models.prodlda import top_word_indices  # noqa: E402
from bayesvae.topics import fit_topics  # noqa: E402

NPMI_TARGET = 0.25
SPEED_TARGET = 3.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "20news_prodlda"
    )
    parser.add_argument("--topics", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    if not (args.data_dir / "20news_prodlda_bow.npz").exists():
        print(f"skipped: no 20news_prodlda_bow.npz in {args.data_dir}", file=sys.stderr)
        return 0
    train, test = load_20news_prodlda(args.data_dir)
    epochs = 2 if args.quick else args.epochs
    if args.quick:
        train.bow, test.bow = train.bow[:1000], test.bow[:500]
    rows = {}
    for backend in ("pyro", "numpyro"):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TopicCollapseWarning)  # reported in the table
            run = fit_topics(
                train,
                args.topics,
                backend=backend,
                epochs=epochs,
                seed=args.seed,
                eval_bow=test.bow,
            )
        wall = time.perf_counter() - started
        top10 = top_word_indices(run.model.topic_word_weights(), 10)
        history = run.history
        timed = history["seconds"].iloc[1:] if len(history) > 1 else history["seconds"]
        epoch_s = statistics.median(timed)
        rows[backend] = {
            "npmi_train": float(npmi_coherence(top10, train.bow).mean()),
            "npmi_test": float(npmi_coherence(top10, test.bow).mean()),
            "diversity": topic_diversity(top_word_indices(run.model.topic_word_weights(), 25)),
            "perplexity": run.perplexity,
            "epoch_s": epoch_s,
            "docs_per_s": len(train) / epoch_s,
            "wall_s": wall,
            "problems": len(run.problems),
            "example": run.top_words(10)[int(np.argmax(npmi_coherence(top10, test.bow)))],
        }
        print(backend, rows[backend], flush=True)
    speedup = rows["numpyro"]["docs_per_s"] / rows["pyro"]["docs_per_s"]
    failed = []
    if rows["pyro"]["npmi_test"] < NPMI_TARGET:
        failed.append(f"Pyro test NPMI {rows['pyro']['npmi_test']:.3f} < {NPMI_TARGET}")
    if speedup < SPEED_TARGET:
        failed.append(f"NumPyro speed-up {speedup:.2f}x < {SPEED_TARGET}x")
    lines = [
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        f"K = {args.topics}, {epochs} epochs, seed {args.seed}; paper settings (batch 200, Adam "
        "lr 0.002 beta1 0.99, dropout 0.6, 2 x 100 softplus, alpha 1, batch norm with a "
        "learned shift and no scale, as in the paper's code). "
        "NPMI: mean over topics of the mean pairwise NPMI of the top 10 words, by document "
        "co-occurrence in the reference corpus (a pair that never co-occurs counts -1). "
        "Perplexity: exp(-ELBO / tokens) on the test documents, an upper bound. Documents/s: "
        "training documents per second of the median epoch (compilation excluded).",
        "",
        "| backend | NPMI (train ref.) | NPMI (test ref.) | diversity (top 25) | test perplexity "
        "<= | s / epoch | documents / s | collapse warnings |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, row in rows.items():
        lines.append(
            f"| {backend} | {row['npmi_train']:.3f} | {row['npmi_test']:.3f} | "
            f"{row['diversity']:.3f} | {row['perplexity']:.0f} | {row['epoch_s']:.2f} | "
            f"{row['docs_per_s']:.0f} | {row['problems']} |"
        )
    lines += [
        "",
        f"NumPyro / Pyro documents per second: {speedup:.2f}x. Most coherent Pyro topic: "
        + " ".join(rows["pyro"]["example"])
        + ".",
        "",
        f"Targets (Pyro test NPMI >= {NPMI_TARGET}; NumPyro >= {SPEED_TARGET}x Pyro): "
        + ("met." if not failed else "MISSED: " + "; ".join(failed) + "."),
    ]
    print("\n".join(lines))
    if args.quick:
        return 0
    write_results(args.results, "ProdLDA on 20 Newsgroups, K = 50 (CPU)", "\n".join(lines))
    if failed:
        print("targets missed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
