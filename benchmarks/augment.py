"""Generative data augmentation and semi-supervised learning on MNIST with 1 % of the labels.

    python benchmarks/augment.py                  # 5 seeds: CVAE augmentation, M1+M2 and M2
    python benchmarks/augment.py --parts cvae     # the augmentation part only (~10 min)
    python benchmarks/augment.py --parts m1m2     # the stacked M1+M2 model only (~40 min)
    python benchmarks/augment.py --parts m2 --seeds 1 --m2-epochs 10   # a budget-limited M2 row
    python benchmarks/augment.py --quick          # a smoke run (tiny; writes nothing)

Protocol, per seed: draw 600 labelled training images (1 %, 60 per class, seeded); train a
multinomial logistic regression (scikit-learn, C=0.1) on them, and on them plus CVAE-generated
images (``bayesvae.augment``: a conditional VAE fitted on the same 600 images only, then
``--per-class`` decoder-mean images per class, 60 and 500 by default); report test accuracy on
the 10,000 MNIST test images each way. Mean and standard deviation over the seeds, and the
mean paired difference. The M2 semi-supervised VAE (``bayesvae.models.SemiSupervisedVAE``,
Kingma et al. 2014: 784-500-50, Bernoulli on grey levels, Adam 3e-4, batch 100, classifier
weight ``0.1 N / 600`` per labelled row) trains on all 60,000 training images with the same 600
labels and classifies the test images with ``q(y | x)``; target: test error <= 6 %. The paper's
stacked M1+M2 (part ``m1m2``) first fits M1, a VAE (784-600-600-50, Bernoulli on grey levels,
Adam 1e-3, batch 100) to the 60,000 training images without their labels on the NumPyro backend,
then fits the same M2 (500 hidden units, 50 latents, Adam 1e-3) to M1's posterior means
with a Gaussian likelihood, and classifies a test image by ``q(y | M1 mean)``.

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

import bayesvae
from bayesvae.augment import augment
from bayesvae.data import load_mnist

HERE = Path(__file__).resolve().parent
LABELS_PER_CLASS = 60


def classifier_accuracy(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=0.1, max_iter=300)
    return float((model.fit(x, y).predict(x_test) == y_test).mean())


def hide_labels(y: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """The labels ``(N,)`` of the rows ``labelled``, ``-1`` (unlabelled) for every other row."""
    partial = np.full(len(y), -1)
    partial[labelled] = y[labelled]
    return partial


def m2_accuracy(train, test, labelled: np.ndarray, seed: int, epochs: int) -> dict[str, float]:
    """Train M2 on every training image, labels for ``labelled`` rows only; test accuracy."""
    from bayesvae.models import SemiSupervisedVAE

    partial = hide_labels(train.y, labelled)
    model = SemiSupervisedVAE(
        784, num_classes=10, latent_dim=50, hidden_dims=(500,), seed=seed,
        classifier_weight=0.1 * len(train.y) / len(labelled),
    )  # fmt: skip
    started = time.perf_counter()
    bayesvae.fit(
        model, (train.x, partial), epochs=epochs, batch_size=100, lr=3e-4, seed=seed,
        progress=False,
    )  # fmt: skip
    predicted = model.classify(test.x).numpy()
    return {
        "m2": float((predicted == test.y).mean()),
        "m2_seconds": time.perf_counter() - started,
    }


M1_HIDDEN = (600, 600)
LATENT_DIM = 50


def m1_features(
    train_x: np.ndarray, test_x: np.ndarray, seed: int, epochs: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """M1: a VAE fitted to every training image ``(N, 784)`` without labels; its posterior means
    ``(N, 50)`` and ``(N_test, 50)`` as they are, and the seconds it took. (Not standardized: most
    of the 50 units are inactive, their means near 0 for every image, and scaling them to unit
    variance would turn them into noise that M2's classifier fits with 600 labels.)"""
    from bayesvae.models import VAE

    m1 = VAE(784, latent_dim=LATENT_DIM, hidden_dims=M1_HIDDEN, seed=seed)
    started = time.perf_counter()
    bayesvae.fit(
        m1, train_x, epochs=epochs, batch_size=100, lr=1e-3, seed=seed, backend="numpyro",
        progress=False,
    )  # fmt: skip
    features, test_features = (m1.encode(x)[0].numpy() for x in (train_x, test_x))
    return features, test_features, time.perf_counter() - started


def m1m2_accuracy(
    train, test, labelled: np.ndarray, seed: int, m1_epochs: int, epochs: int
) -> dict[str, float]:
    """M1+M2: M2 with a Gaussian likelihood on M1's posterior means, labels for
    ``labelled`` rows only; test accuracy of ``q(y | M1 mean)`` and the seconds of each stage."""
    from bayesvae.models import SemiSupervisedVAE

    features, test_features, m1_seconds = m1_features(train.x, test.x, seed, m1_epochs)
    partial = hide_labels(train.y, labelled)
    model = SemiSupervisedVAE(
        LATENT_DIM, num_classes=10, latent_dim=LATENT_DIM, hidden_dims=(500,),
        likelihood="gaussian", seed=seed,
        classifier_weight=0.1 * len(train.y) / len(labelled),
    )  # fmt: skip
    started = time.perf_counter()
    bayesvae.fit(
        model, (features, partial), epochs=epochs, batch_size=100, lr=1e-3, seed=seed,
        progress=False,
    )  # fmt: skip
    predicted = model.classify(test_features).numpy()
    return {
        "m1m2": float((predicted == test.y).mean()),
        "m1_seconds": m1_seconds,
        "m1m2_seconds": time.perf_counter() - started,
    }


def run_seed(
    train,
    test,
    seed: int,
    per_class: list[int],
    epochs: int,
    parts: list[str],
    m2_epochs: int,
    m1_epochs: int,
    m1m2_epochs: int,
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    labelled = np.concatenate(
        [
            rng.choice(np.flatnonzero(train.y == c), LABELS_PER_CLASS, replace=False)
            for c in range(10)
        ]
    )
    x, y = train.x[labelled], train.y[labelled]
    row = {"seed": seed, "baseline": classifier_accuracy(x, y, test.x, test.y)}
    if "m1m2" in parts:
        row.update(m1m2_accuracy(train, test, labelled, seed, m1_epochs, m1m2_epochs))
    if "m2" in parts:
        row.update(m2_accuracy(train, test, labelled, seed, m2_epochs))
    if "cvae" not in parts:
        return row
    started = time.perf_counter()
    first = augment(
        x, y, n_per_class=per_class[0], epochs=epochs, latent_dim=10, hidden_dims=(400,),
        batch_size=64, seed=seed,
    )  # fmt: skip
    row["cvae_seconds"] = time.perf_counter() - started
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
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["cvae", "m1m2", "m2"],
        choices=("cvae", "m1m2", "m2"),
        help="what to run",
    )
    parser.add_argument("--m2-epochs", type=int, default=100, help="M2 epochs on 60,000 images")
    parser.add_argument(
        "--m1-epochs", type=int, default=50, help="M1 epochs (NumPyro) on 60,000 images"
    )
    parser.add_argument(
        "--m1m2-epochs", type=int, default=30, help="M2 epochs on M1's 60,000 features"
    )
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
        train = replace(train, x=train.x[:3000], y=train.y[:3000])
    seeds = [0] if args.quick else list(range(args.seeds))
    epochs, per_class = (2, [20]) if args.quick else (args.epochs, args.per_class)
    m2_epochs = 1 if args.quick else args.m2_epochs
    m1_epochs, m1m2_epochs = (1, 1) if args.quick else (args.m1_epochs, args.m1m2_epochs)
    if "cvae" not in args.parts:
        per_class = []
    rows = []
    for seed in seeds:
        rows.append(
            run_seed(
                train, test, seed, per_class, epochs, args.parts, m2_epochs, m1_epochs,
                m1m2_epochs,
            )
        )  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    base = np.array([r["baseline"] for r in rows])
    summary: dict[str, dict[str, float]] = {"baseline": _spread(base)}
    if "m2" in args.parts:
        m2 = np.array([r["m2"] for r in rows])
        summary["m2"] = {**_spread(m2), "error_mean": float(1 - m2.mean())}
    if "m1m2" in args.parts:
        m1m2 = np.array([r["m1m2"] for r in rows])
        summary["m1m2"] = {**_spread(m1m2), "error_mean": float(1 - m1m2.mean())}
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
    failed = False
    if "m1m2" in args.parts:
        failed |= _write_m1m2(args.results, rows, summary["m1m2"], m1_epochs, m1m2_epochs)
    if "m2" in args.parts:
        failed |= _write_m2(args.results, rows, summary["m2"], m2_epochs)
    if "cvae" not in args.parts:
        return 1 if failed else 0
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
    return 1 if hurts or failed else 0


M2_TARGET_ERROR = 0.06


def _write_m2(path: Path, rows: list[dict], summary: dict[str, float], epochs: int) -> bool:
    """The M2 section of RESULTS.md; ``True`` when the target is missed."""
    missed = summary["error_mean"] > M2_TARGET_ERROR
    lines = [
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        f"MNIST, {LABELS_PER_CLASS * 10} labels (the same draw per seed as the CVAE rows) among "
        f"the 60,000 training images. M2 (784-500-50, Bernoulli on grey levels, Adam 3e-4, batch "
        f"100, classifier weight 0.1 N / 600 = 10 per labelled row) for {epochs} epochs, no "
        "early stopping; test: the 10,000 test images classified by q(y | x). "
        f"{len(rows)} seed(s). Anchors: Kingma et al. (2014) M2 4.94 % error with 600 labels "
        "(M1+M2 2.59 %).",
        "",
        "| seed | logistic regression on the 600 | M2 accuracy | M2 test error | M2 minutes |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['seed']} | {row['baseline']:.4f} | {row['m2']:.4f} | {1 - row['m2']:.2%} "
            f"| {row['m2_seconds'] / 60:.1f} |"
        )
    lines += [
        "",
        f"Mean test error {summary['error_mean']:.2%} (sd {summary['sd']:.2%}). Target: <= "
        f"{M2_TARGET_ERROR:.0%} with 600 labels (5 seeds): "
        + ("MISSED." if missed or len(rows) < 5 else "met.")
        + (f" Only {len(rows)} seed(s) ran." if len(rows) < 5 else ""),
    ]
    write_results(path, "M2 semi-supervised VAE, MNIST with 600 labels (CPU)", "\n".join(lines))
    return missed


def _write_m1m2(
    path: Path, rows: list[dict], summary: dict[str, float], m1_epochs: int, epochs: int
) -> bool:
    """The M1+M2 section of RESULTS.md; ``True`` when the target is missed."""
    missed = summary["error_mean"] > M2_TARGET_ERROR or len(rows) < 5
    lines = [
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        f"MNIST, {LABELS_PER_CLASS * 10} labels (the same draw per seed as the CVAE and M2 rows) "
        "among the 60,000 training images. M1: a VAE (784-600-600-50, ReLU, Bernoulli on grey "
        f"levels, Adam 1e-3, batch 100) fitted for {m1_epochs} epochs on the NumPyro backend to "
        "the 60,000 training images without their labels. M2 (`SemiSupervisedVAE`: 50-500-50, "
        "Gaussian likelihood with a learned scale per dimension, Adam 1e-3, batch 100, "
        "classifier weight 0.1 N / 600 = 10 per labelled row) fitted for "
        f"{epochs} epochs to M1's posterior means (not standardized) with the 600 labels; no early "
        "stopping. Test: the 10,000 test images classified by q(y | M1's mean). Both stages "
        f"seeded per seed. {len(rows)} seed(s). Anchor: Kingma et al. (2014) M1+M2 2.59 % "
        "(± 0.05) error with 600 labels.",
        "",
        "| seed | logistic regression on the 600 | M1+M2 accuracy | M1+M2 test error "
        "| M1 minutes | M2 minutes |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['seed']} | {row['baseline']:.4f} | {row['m1m2']:.4f} "
            f"| {1 - row['m1m2']:.2%} | {row['m1_seconds'] / 60:.1f} "
            f"| {row['m1m2_seconds'] / 60:.1f} |"
        )
    lines += [
        "",
        f"Mean test error {summary['error_mean']:.2%} (sd {summary['sd']:.2%}). Target: <= "
        f"{M2_TARGET_ERROR:.0%} with 600 labels (5 seeds): "
        + ("MISSED." if missed else "met.")
        + (f" Only {len(rows)} seed(s) ran." if len(rows) < 5 else ""),
    ]
    write_results(path, "M1+M2 semi-supervised VAE, MNIST with 600 labels (CPU)", "\n".join(lines))
    return missed


def _spread(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }


if __name__ == "__main__":
    sys.exit(main())
