"""Generative data augmentation on MNIST with 1 % of the training labels.

    python benchmarks/augment.py           # 5 seeds, ~10 min on 2 CPU cores
    python benchmarks/augment.py --quick   # a smoke run (tiny; writes nothing)

Protocol, per seed: draw 600 labelled training images (1 %, 60 per class, seeded); train a
multinomial logistic regression (scikit-learn, C=0.1) on them, and on them plus CVAE-generated
images (``bayesvae.augment``: a conditional VAE fitted on the same 600 images only, then
``--per-class`` decoder-mean images per class, 60 and 500 by default); report test accuracy on
the 10,000 MNIST test images each way. Mean and standard deviation over the seeds, and the
mean paired difference.

Appends a section to ``benchmarks/RESULTS.md``. Exits 1 when augmentation lowers the mean
accuracy by more than two standard errors of the paired difference (it must at least not hurt).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from vae_mnist import machine, write_results

from bayesvae.augment import augment
from bayesvae.data import load_mnist

HERE = Path(__file__).resolve().parent
LABELS_PER_CLASS = 60


def classifier_accuracy(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=0.1, max_iter=300)
    return float((model.fit(x, y).predict(x_test) == y_test).mean())


def run_seed(train, test, seed: int, per_class: list[int], epochs: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    labelled = np.concatenate(
        [
            rng.choice(np.flatnonzero(train.y == c), LABELS_PER_CLASS, replace=False)
            for c in range(10)
        ]
    )
    x, y = train.x[labelled], train.y[labelled]
    started = time.perf_counter()
    first = augment(
        x, y, n_per_class=per_class[0], epochs=epochs, latent_dim=10, hidden_dims=(400,),
        batch_size=64, seed=seed,
    )  # fmt: skip
    row = {
        "seed": seed,
        "cvae_seconds": time.perf_counter() - started,
        "baseline": classifier_accuracy(x, y, test.x, test.y),
    }
    for count in per_class:  # the same fitted CVAE generates every size
        augmented = augment(x, y, n_per_class=count, model=first.model, seed=seed)
        row[f"augmented_{count}"] = classifier_accuracy(augmented.x, augmented.y, test.x, test.y)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--per-class",
        type=int,
        nargs="+",
        default=[60, 500],
        help="generated images per class (one augmented classifier per value)",
    )
    parser.add_argument("--epochs", type=int, default=300, help="CVAE epochs on the 600 images")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, 1,000 test images")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    if not (args.data_root / "mnist").is_dir():
        print(f"skipped: MNIST not found under {args.data_root}", file=sys.stderr)
        return 0
    train = load_mnist(args.data_root / "mnist", split="train", binarize=None)
    test = load_mnist(args.data_root / "mnist", split="test", binarize=None)
    if args.quick:
        from dataclasses import replace

        test = replace(test, x=test.x[:1000], y=test.y[:1000])
    seeds = [0] if args.quick else list(range(args.seeds))
    epochs, per_class = (2, [20]) if args.quick else (args.epochs, args.per_class)
    rows = []
    for seed in seeds:
        rows.append(run_seed(train, test, seed, per_class, epochs))
        print(json.dumps(rows[-1]), flush=True)
    base = np.array([r["baseline"] for r in rows])
    summary: dict[str, dict[str, float]] = {"baseline": _spread(base)}
    hurts = []
    for count in per_class:
        accuracy = np.array([r[f"augmented_{count}"] for r in rows])
        diff = accuracy - base
        stderr = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        summary[f"augmented_{count}"] = {
            **_spread(accuracy),
            "difference_mean": float(diff.mean()),
            "difference_stderr": stderr,
        }
        if float(diff.mean()) < -2 * stderr:
            hurts.append(count)
    print(json.dumps({"rows": rows, "summary": summary}, indent=1))
    if args.quick:
        return 0
    columns = " | ".join(f"with {c} generated per class" for c in per_class)
    lines = [
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        f"MNIST with {LABELS_PER_CLASS * 10} labelled training images (1 %, {LABELS_PER_CLASS} "
        "per class, drawn per seed). Classifier: multinomial logistic regression (scikit-learn, "
        f"C=0.1) on raw pixels. Augmentation: a ConditionalVAE (784-400-10, Bernoulli, grey "
        f"levels) fitted for {epochs} epochs on the same labelled images only; the same CVAE "
        f"then adds {' or '.join(str(c) for c in per_class)} decoder-mean images per class. "
        f"Test: the 10,000 MNIST test images. {len(seeds)} seeds. Accuracy:",
        "",
        f"| seed | without | {columns} |",
        "|---" * (len(per_class) + 2) + "|",
    ]
    for row in rows:
        cells = " | ".join(
            f"{row[f'augmented_{c}']:.4f} ({row[f'augmented_{c}'] - row['baseline']:+.4f})"
            for c in per_class
        )
        lines.append(f"| {row['seed']} | {row['baseline']:.4f} | {cells} |")
    cells = " | ".join(
        f"{summary[f'augmented_{c}']['mean']:.4f} ± {summary[f'augmented_{c}']['sd']:.4f} "
        f"({summary[f'augmented_{c}']['difference_mean']:+.4f} ± "
        f"{summary[f'augmented_{c}']['difference_stderr']:.4f} s.e.)"
        for c in per_class
    )
    lines += [
        f"| mean ± sd | {summary['baseline']['mean']:.4f} ± {summary['baseline']['sd']:.4f} "
        f"| {cells} |",
        "",
        "Target: augmentation does not lower mean accuracy by more than two standard errors of "
        "the paired difference: "
        + ("met." if not hurts else f"MISSED for {hurts} generated per class."),
    ]
    write_results(
        args.results, "CVAE data augmentation, MNIST with 1 % labels (CPU)", "\n".join(lines)
    )
    return 1 if hurts else 0


def _spread(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }


if __name__ == "__main__":
    sys.exit(main())
