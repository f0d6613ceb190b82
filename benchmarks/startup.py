"""Start-up latency: ``import bayesvae``, ``bayesvae --help`` and the exact two-arm A/B test from
the command line, each in a fresh interpreter, several runs each.

    python benchmarks/startup.py            # 7 runs of each, ~15 s; appends to RESULTS.md
    python benchmarks/startup.py --quick    # 2 runs of each, writes nothing

Targets (issue 17, on an idle machine): ``bayesvae --help`` and
``bayesvae abtest --arm A=1/10 --arm B=2/10`` at most 1.5 s wall, ``import bayesvae`` at most
2.0 s. The figure compared with a target is the median over the runs; the minimum is shown beside
it (the best case on a busy machine). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: the installed console script beside this interpreter (else the module it runs)
_SCRIPT = Path(sys.executable).with_name("bayesvae")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bayesvae.cli"]
#: what is timed: (label, command, target seconds)
COMMANDS = [
    ("import bayesvae", [sys.executable, "-c", "import bayesvae"], 2.0),
    ("bayesvae --help", [*CLI, "--help"], 1.5),
    (
        "bayesvae abtest --arm A=1/10 --arm B=2/10",
        [*CLI, "abtest", "--arm", "A=1/10", "--arm", "B=2/10"],
        1.5,
    ),
    # for scale: the heavy libraries the commands above no longer import
    ("python -c 'import torch, pyro' (reference)", [sys.executable, "-c", "import pyro"], None),
]


def time_command(command: list[str], runs: int) -> list[float]:
    """Wall seconds of ``runs`` fresh runs of ``command`` (after one untimed warm-up run that
    fills the file cache)."""
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores = os.cpu_count()
    return f"{cpu}, {cores} cores, load average {load:.2f}; Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 runs each; write nothing")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    runs = 2 if args.quick else args.runs
    rows, missed = [], []
    for label, command, target in COMMANDS:
        times = time_command(command, runs)
        median, best = float(np.median(times)), float(np.min(times))
        verdict = "-" if target is None else ("met" if median <= target else "MISSED")
        if verdict == "MISSED":
            missed.append(label)
        rows.append((label, median, best, target, verdict))
        print(f"{label}: median {median:.2f} s, min {best:.2f} s ({verdict})", flush=True)
    if args.quick:
        return 0
    sys.path.insert(0, str(HERE))
    from vae_mnist import write_results

    import bayesvae

    lines = [
        f"Machine: {machine()}; bayesvae {bayesvae.__version__}. "
        f"Date: {time.strftime('%Y-%m-%d')}. {runs} runs of each command in a fresh "
        "interpreter, after one untimed warm-up run.",
        "",
        "| command | median (s) | min (s) | target (s) | |",
        "|---|---|---|---|---|",
    ]
    for label, median, best, target, verdict in rows:
        shown = "-" if target is None else f"<= {target:.1f}"
        lines.append(f"| `{label}` | {median:.2f} | {best:.2f} | {shown} | {verdict} |")
    lines += [
        "",
        "`import bayesvae` loads every public name lazily, and the exact A/B path needs numpy and "
        "scipy only (no torch, Pyro or ArviZ); tests/test_imports.py checks which libraries each "
        "of these commands loads.",
    ]
    write_results(args.results, "Start-up latency (benchmarks/startup.py)", "\n".join(lines))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
