"""Every family fast: wall times of the commands a new user runs first, at their default
settings, each in a fresh interpreter (start-up included), against issue 17's targets.

    python benchmarks/speed.py            # ~15 min on 2 CPU cores; run on an idle machine
    python benchmarks/speed.py --quick    # tiny sizes, checks the script (targets not judged)
    python benchmarks/speed.py --no-mcmc  # without the NUTS row (over 15 min on 50k rows here)

Data, written to a temporary folder, seeded:

- a synthetic 50,000 x 10 anomaly table: normal rows from a correlated Gaussian, 5 % anomalies
  uniform over a box 1.5 times as wide as the normal rows' range (labels not given to the
  detectors); the largest ADBench set in ``../shared/data/anomaly`` as well, when present;
- a synthetic corpus of 2,000 documents of 60 words from 5 topics over a 1,000-word vocabulary
  (each document a mixture of two topics).

Timed (one run each after one untimed warm-up run of the same command on a small input, so the
file cache is warm but no interpreter state is shared):

- ``bayesvae anomaly TABLE`` (SVI; and with Pyro's loop, ``--backend pyro``, for comparison),
  ``--method mcmc`` (NUTS),
  ``bayesvae vae-anomaly TABLE``;
- ``bayesvae topics CORPUS --topics 5``;
- ``bayesvae abtest --arm A=200/1000 --arm B=220/1000 --method mcmc`` twice: its first run
  in an empty JAX compilation cache (the command keeps one, see
  ``bayesvae.enable_compilation_cache``), then a later run that reads it; and, in this
  process, the exact two-arm call's median latency over 20 calls.

The other commands run with the compilation cache off, so each compiles what it runs.

Appends a section to ``benchmarks/RESULTS.md`` and exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from vae_mnist import machine, write_results  # noqa: E402

ANOMALY_DIR = HERE.parent.parent / "shared" / "data" / "anomaly"
#: label -> target wall seconds (None: measured for comparison, no target)
TARGETS: dict[str, float | None] = {
    "anomaly (SVI)": 30.0,
    "anomaly (SVI, --backend pyro)": None,
    "anomaly (NUTS)": 180.0,
    "vae-anomaly": 120.0,
    "topics": 20.0,
    "abtest (MCMC), first run": 10.0,
    "abtest (MCMC), later runs": 10.0,
}
EXACT_TARGET_MS = 100.0


def anomaly_table(rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(X (rows, features), y (rows,))``: a correlated Gaussian plus 5 % uniform anomalies."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(features, features)) / np.sqrt(features)
    normal = rng.normal(size=(rows, features)) @ mixing + rng.normal(size=features)
    anomalies = rng.random(rows) < 0.05
    low, high = normal.min(0), normal.max(0)
    centre, half = (low + high) / 2, 0.75 * (high - low)
    box = centre + half * rng.uniform(-1, 1, size=(rows, features))
    return np.where(anomalies[:, None], box, normal), anomalies.astype(int)


def topic_corpus(docs: int, words: int, topics: int = 5, vocab: int = 1000, seed: int = 0):
    """``docs`` lines of ``words`` words each, from ``topics`` topics over ``vocab`` words."""
    rng = np.random.default_rng(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    # letters only (the text pipeline drops tokens with digits), none of them a stop word
    names = np.array(
        [
            f"zq{letters[i // 26 // 26 % 26]}{letters[i // 26 % 26]}{letters[i % 26]}"
            for i in range(vocab)
        ]
    )
    topic_words = rng.dirichlet(np.full(vocab, 0.05), size=topics)  # (topics, vocab)
    lines = []
    for _ in range(docs):
        mix = rng.dirichlet(np.full(topics, 0.3))
        lines.append(" ".join(names[rng.choice(vocab, size=words, p=mix @ topic_words)]))
    return "\n".join(lines) + "\n"


def timed(command: list[str], cache: Path | None = None) -> float:
    """Wall seconds of ``bayesvae COMMAND`` in a fresh interpreter, with JAX's compilation
    cache in ``cache`` (off when ``None``); raises if it fails."""
    import os

    env = {**os.environ, "BAYESVAE_JAX_CACHE": "off" if cache is None else str(cache)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bayesvae.cli", *command], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bayesvae {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds


def exact_latency_ms(calls: int = 20) -> float:
    import bayesvae

    counts = {"A": (200, 1000), "B": (220, 1000)}
    bayesvae.abtest(counts)  # warm
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        bayesvae.abtest(counts)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes to check the script")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--data-dir", type=Path, default=ANOMALY_DIR)
    parser.add_argument(
        "--no-mcmc", action="store_true", help="skip `bayesvae anomaly --method mcmc`"
    )
    args = parser.parse_args(argv)
    rows, docs = (2000, 200) if args.quick else (50_000, 2000)
    rows_run: list[tuple[str, str, float]] = []  # (label, data, seconds)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        X, y = anomaly_table(rows, 10)
        np.savez(tmp / "synthetic.npz", X=X)
        np.savez(tmp / "small.npz", X=X[:500])
        (tmp / "corpus.txt").write_text(topic_corpus(docs, 60))
        (tmp / "small.txt").write_text(topic_corpus(50, 20, seed=1))
        tables = [("synthetic", tmp / "synthetic.npz", rows, 10)]
        real = sorted(args.data_dir.glob("*.npz")) if args.data_dir.is_dir() else []
        if real and not args.quick:
            largest = max(real, key=lambda p: np.load(p)["X"].shape[0])
            with np.load(largest) as archive:
                np.savez(tmp / "largest.npz", X=archive["X"].astype(np.float64))
                shape = archive["X"].shape
            tables.append((largest.stem, tmp / "largest.npz", shape[0], shape[1]))
        quick = ["--epochs", "5"] if args.quick else []
        nuts_quick = ["--num-warmup", "50", "--num-samples", "50"] if args.quick else []
        timed(["anomaly", str(tmp / "small.npz"), "--no-progress", "--epochs", "2"])  # warm-up
        for name, path, n, d in tables:
            data = f"{name} ({n:,} x {d})"
            commands = {
                "anomaly (SVI)": ["anomaly", str(path), *quick],
                "anomaly (SVI, --backend pyro)": [
                    "anomaly",
                    str(path),
                    "--backend",
                    "pyro",
                    *quick,
                ],
                "anomaly (NUTS)": ["anomaly", str(path), "--method", "mcmc", *nuts_quick],
                "vae-anomaly": ["vae-anomaly", str(path), *quick],
            }
            if args.no_mcmc:
                del commands["anomaly (NUTS)"]
            for label, command in commands.items():
                seconds = timed([*command, "--no-progress"])
                rows_run.append((label, data, seconds))
                print(f"{label} on {data}: {seconds:.1f} s", flush=True)
        timed(["topics", str(tmp / "small.txt"), "--topics", "2", "--epochs", "1", "--no-progress"])
        seconds = timed(
            ["topics", str(tmp / "corpus.txt"), "--topics", "5", "--no-progress", *quick]
        )
        rows_run.append(("topics", f"{docs:,} documents x 60 words, K = 5", seconds))
        print(f"topics: {seconds:.1f} s", flush=True)
        ab = ["abtest", "--arm", "A=200/1000", "--arm", "B=220/1000", "--method", "mcmc"]
        ab += ["--num-samples", "200"] if args.quick else []
        # the command keeps JAX's compiled programs in a cache folder: its first run in an
        # empty cache compiles NUTS, later runs of the same model read it back
        cache = tmp / "jax-cache"
        for label in ("abtest (MCMC), first run", "abtest (MCMC), later runs"):
            seconds = timed(ab, cache=cache)
            rows_run.append((label, "two arms, 200/1000 vs 220/1000", seconds))
            print(f"{label}: {seconds:.1f} s", flush=True)
    exact_ms = exact_latency_ms()
    print(f"abtest (exact), in process: {exact_ms:.1f} ms", flush=True)

    lines = [
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "Each command at its default settings in a fresh interpreter (`python -m bayesvae.cli "
        "...`, start-up and imports included), one timed run after a warm-up run on a small "
        "input. Anomaly table: synthetic 50,000 x 10 (a correlated Gaussian, 5 % uniform "
        "anomalies), and the largest ADBench set in ../shared/data/anomaly. Corpus: synthetic, "
        "2,000 documents of 60 words from 5 topics over 1,000 words. JAX's compilation cache "
        "is off for every command but the MCMC A/B test, which runs twice: first in an empty "
        "cache (compiling NUTS), then again (reading the compiled sampler back).",
        "",
        "| command | data | wall (s) | target (s) | |",
        "|---|---|---|---|---|",
    ]
    failed = []
    for label, data, seconds in rows_run:
        target = TARGETS[label]
        if target is None:
            lines.append(f"| `{label}` | {data} | {seconds:.1f} | none | |")
            continue
        met = seconds <= target
        lines.append(
            f"| `{label}` | {data} | {seconds:.1f} | {target:.0f} | {'met' if met else 'MISSED'} |"
        )
        if not met:
            failed.append(f"{label} on {data}: {seconds:.1f} s > {target:.0f} s")
    exact_met = exact_ms <= EXACT_TARGET_MS
    lines.append(
        f"| `abtest` (exact), in process, median of 20 | two arms | {exact_ms / 1000:.3f} | "
        f"{EXACT_TARGET_MS / 1000:.1f} | {'met' if exact_met else 'MISSED'} |"
    )
    if not exact_met:
        failed.append(f"exact abtest {exact_ms:.0f} ms > {EXACT_TARGET_MS:.0f} ms")
    if args.no_mcmc:
        lines += ["", "`anomaly (NUTS)` (target 180 s) was not run (`--no-mcmc`): not measured."]
    lines += [
        "",
        "Targets measured: " + ("all met." if not failed else "MISSED: " + "; ".join(failed)),
    ]
    if args.quick:
        print("\n".join(lines))
        return 0
    write_results(args.results, "Every family fast: default commands (CPU)", "\n".join(lines))
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
