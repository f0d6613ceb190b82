"""Bayesian anomaly detection on a real tabular set (or the seed's synthetic case), by SVI and by
NUTS, with the run folder and its HTML report.

python examples/anomaly.py --out runs/example-anomaly
python examples/anomaly.py --data ../shared/data/anomaly/6_cardio.npz --out runs/cardio
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import bayesvae
from bayesvae.report import build


def synthetic(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """1000 points from N(0, I) in 2-D plus 50 anomalies from N(3, 2I); labels 1 = anomaly."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(1000, 2)), rng.normal(3.0, np.sqrt(2.0), size=(50, 2))])
    return X, np.r_[np.zeros(1000), np.ones(50)].astype(int)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help=".npz with X and y (default: synthetic)")
    parser.add_argument("--out", type=Path, default=Path("runs/example-anomaly"))
    parser.add_argument("--components", type=int, default=1)
    parser.add_argument("--num-samples", type=int, default=300, help="NUTS draws per chain")
    args = parser.parse_args(argv)

    if args.data is None:
        X, y = synthetic()
    else:
        X, y, _ = bayesvae.data.read_features(args.data, label_column="y")
    for method in ("svi", "mcmc"):
        run = bayesvae.detect_anomalies(
            X,
            labels=y,
            n_components=args.components,
            method=method,
            num_samples=args.num_samples,
            num_warmup=args.num_samples,
            num_chains=2,
            seed=0,
        )
        print(run.table(), end="\n\n")
        folder = run.save(args.out / method)
        print(f"report: {build(folder).html}\n")


if __name__ == "__main__":
    main()
