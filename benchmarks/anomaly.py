"""Anomaly detection on real tabular data: AnomalyMixture (SVI and NUTS) beside scikit-learn's
GaussianMixture, BayesianGaussianMixture and IsolationForest, side by side.

    python benchmarks/anomaly.py                 # every .npz in ../shared/data/anomaly, ~20 min
    python benchmarks/anomaly.py MORE_DIR ...    # plus every .npz (arrays X, y) in MORE_DIR

Protocol, the same for every method: for each seed, a stratified 70/30 train/test split; features
standardized with the training split's mean and standard deviation; each detector is fitted on
the (unlabelled, contaminated) training split and scores the test split; AUCROC and AUCPR
(average precision) against the test labels (1 = anomaly). Five seeds; the table gives the mean
and the standard deviation over seeds. Every method runs at its default settings (scikit-learn's
defaults; AnomalyMixture's defaults: K=1, diagonal covariance, contamination prior 0.05), seeded.

Appends a section to ``benchmarks/RESULTS.md`` and exits 1 when the target is missed: the mean
AUCROC over the data sets of AnomalyMixture (SVI) must be at least the best baseline's.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from vae_mnist import machine, write_results  # noqa: E402

from bayesvae.anomaly import (  # noqa: E402
    AnomalyMixture,  # noqa: E402
    VAEAnomalyDetector,
    ranking_metrics,
)
from bayesvae.infer.mcmc import ConvergenceWarning  # noqa: E402

DEFAULT_DIR = HERE.parent.parent / "shared" / "data" / "anomaly"
BASELINES = ("GaussianMixture", "BayesianGaussianMixture", "IsolationForest")


def anomaly_scores(method: str, train: np.ndarray, test: np.ndarray, seed: int, quick: bool):
    """Fit ``method`` on ``train`` and return (test anomaly scores, higher = more anomalous,
    a note such as convergence warnings)."""
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

    note = ""
    if method == "GaussianMixture":
        return -GaussianMixture(random_state=seed).fit(train).score_samples(test), note
    if method == "BayesianGaussianMixture":
        return -BayesianGaussianMixture(random_state=seed).fit(train).score_samples(test), note
    if method == "IsolationForest":
        return -IsolationForest(random_state=seed).fit(train).score_samples(test), note
    if method == "VAEAnomalyDetector":  # benchmarks/vae_anomaly.py
        detector = VAEAnomalyDetector(seed=seed, epochs=5 if quick else 100)
        return -detector.fit(train).score_samples(test), note
    options: dict[str, Any] = {"seed": seed}
    if method == "AnomalyMixture (NUTS)":
        options.update(method="mcmc", num_warmup=300, num_samples=300, num_chains=4)
        if quick:
            options.update(num_warmup=30, num_samples=30, num_chains=2)
    elif quick:
        options.update(epochs=20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = AnomalyMixture(**options).fit(train)
    problems = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    if problems:
        note = "convergence warning"
    return -model.score_samples(test), note


def run_set(path: Path, methods: list[str], seeds: list[int], quick: bool) -> dict[str, Any]:
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    with np.load(path, allow_pickle=False) as archive:
        X, y = archive["X"].astype(np.float64), archive["y"].astype(int)
    results: dict[str, dict[str, list[float]]] = {
        m: {"aucroc": [], "aucpr": [], "s": []} for m in methods
    }
    notes: dict[str, int] = {m: 0 for m in methods}
    for seed in seeds:
        train, test, _, y_test = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=seed
        )
        scaler = StandardScaler().fit(train)
        # drop columns constant on the training split (the same for every method)
        keep = scaler.scale_ > 1e-12
        train, test = scaler.transform(train)[:, keep], scaler.transform(test)[:, keep]
        for method in methods:
            started = time.perf_counter()
            score, note = anomaly_scores(method, train, test, seed, quick)
            metrics = ranking_metrics(y_test, score)
            results[method]["aucroc"].append(metrics["aucroc"])
            results[method]["aucpr"].append(metrics["aucpr"])
            results[method]["s"].append(time.perf_counter() - started)
            notes[method] += bool(note)
        print(
            f"{path.stem} seed {seed}: "
            + ", ".join(f"{m} {results[m]['aucroc'][-1]:.3f}" for m in methods),
            flush=True,
        )
    return {
        "n": len(X),
        "d": X.shape[1],
        "rate": float(y.mean()),
        "results": results,
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="*", type=Path, help="more folders of .npz (X, y) sets")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-mcmc", action="store_true", help="skip the NUTS rows")
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    files = sorted(args.data_dir.glob("*.npz")) if args.data_dir.is_dir() else []
    for folder in args.folders:
        if not folder.is_dir():
            parser.error(f"{folder} is not a folder")
        files += sorted(folder.glob("*.npz"))
    if not files:
        print(f"skipped: no .npz data sets in {args.data_dir}", file=sys.stderr)
        return 0
    if args.quick:
        files = [min(files, key=lambda f: f.stat().st_size)]
    seeds = list(range(1 if args.quick else args.seeds))
    ours = ["AnomalyMixture (SVI)"] + ([] if args.no_mcmc else ["AnomalyMixture (NUTS)"])
    methods = ours + list(BASELINES)
    started = time.perf_counter()
    sets = {path.stem: run_set(path, methods, seeds, args.quick) for path in files}
    minutes = (time.perf_counter() - started) / 60

    def mean(name: str, method: str, metric: str) -> float:
        return float(np.mean(sets[name]["results"][method][metric]))

    lines = [
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}. Whole run: {minutes:.0f} min.",
        "",
        f"Protocol: {len(seeds)} seeds; per seed a stratified 70/30 split, features standardized "
        "on the training split, every detector fitted on the unlabelled (contaminated) training "
        "split and scored on the test split. Default settings for every method, seeded "
        "(AnomalyMixture: K=1, diagonal covariance, contamination prior mean 0.05; SVI 300 "
        "epochs; NUTS 4 chains x 300 draws after 300 warm-up; scikit-learn defaults for the "
        "rest). Cells: mean ± standard deviation over seeds.",
        "",
    ]
    for metric, label in (("aucroc", "AUCROC"), ("aucpr", "AUCPR")):
        lines += [f"**{label}**", "", "| data (n, d, anomaly rate) | " + " | ".join(methods) + " |"]
        lines.append("|---" * (len(methods) + 1) + "|")
        for name, entry in sets.items():
            cells = []
            for method in methods:
                values = entry["results"][method][metric]
                cell = f"{np.mean(values):.3f} ± {np.std(values):.3f}"
                if metric == "aucroc" and entry["notes"][method]:
                    cell += f" ({entry['notes'][method]}/{len(seeds)} warned)"
                cells.append(cell)
            lines.append(
                f"| {name} ({entry['n']}, {entry['d']}, {entry['rate']:.1%}) | "
                + " | ".join(cells)
                + " |"
            )
        overall = [np.mean([mean(n, m, metric) for n in sets]) for m in methods]
        lines.append("| **mean over sets** | " + " | ".join(f"**{v:.3f}**" for v in overall) + " |")
        lines.append("")
    seconds = {m: np.mean([np.mean(sets[n]["results"][m]["s"]) for n in sets]) for m in methods}
    lines.append(
        "Mean seconds per fit and score: "
        + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items())
        + '. "warned": runs where NUTS reported R-hat > 1.01, low ESS or divergences.'
    )
    overall_auc = {m: np.mean([mean(n, m, "aucroc") for n in sets]) for m in methods}
    best_baseline = max(BASELINES, key=lambda m: overall_auc[m])
    verdicts, failed = [], []
    for method in ours:
        met = overall_auc[method] >= overall_auc[best_baseline]
        verdicts.append(
            f"{method} {overall_auc[method]:.3f} vs best baseline {best_baseline} "
            f"{overall_auc[best_baseline]:.3f}: {'met' if met else 'MISSED'}"
        )
        if not met and method == "AnomalyMixture (SVI)":
            failed.append(verdicts[-1])
    lines.append("")
    lines.append(
        "Target (mean AUCROC over the sets >= the best baseline's): " + "; ".join(verdicts) + "."
    )
    print("\n".join(lines))
    if not args.quick:
        write_results(
            args.results, "Anomaly mixtures on ADBench tabular sets (CPU)", "\n".join(lines)
        )
    if failed and not args.quick:
        print("target missed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
