"""A/B test speed: latency of the exact path, and NUTS effective samples per second for NumPyro
and Pyro on the same model and data in the same run.

    python benchmarks/abtest.py            # about a minute on 2 CPU cores

Appends a section to ``benchmarks/RESULTS.md`` and exits 1 when a check fails: the exact
P(B > A) must equal 0.863657 (to 1e-6) and one exact two-arm test must take under a second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import bayesvae
from bayesvae.infer.mcmc import mcmc
from bayesvae.models import BetaBinomialABTest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from vae_mnist import machine, write_results  # noqa: E402

EXACT = 0.863657
LATENCY_LIMIT_S = 1.0


def exact_latency(counts: dict, repeats: int) -> tuple[float, float]:
    bayesvae.abtest(counts, num_draws=2000)  # warm imports and caches
    times, answer = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = bayesvae.abtest(counts)
        times.append(time.perf_counter() - started)
        answer = result.lift[0]["prob_better"]
    return statistics.median(times), answer


def nuts_ess_per_second(backend: str, num_samples: int, num_chains: int) -> dict:
    model = BetaBinomialABTest(["A", "B"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mcmc(
            model,
            [200, 220],
            [1000, 1000],
            backend=backend,
            num_samples=num_samples,
            num_warmup=num_samples,
            num_chains=num_chains,
            seed=0,
        )
    ess = float(result.summary(var_names=["rate"])["ess_bulk"].min())
    return {"seconds": result.seconds, "min_ess_bulk": ess, "ess_per_s": ess / result.seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    draws = 100 if args.quick else args.num_samples
    two = {"A": (200, 1000), "B": (220, 1000)}
    four = {"A": (200, 1000), "B": (220, 1000), "C": (210, 1000), "D": (190, 1000)}
    latency_two, answer = exact_latency(two, 3 if args.quick else args.repeats)
    latency_four, _ = exact_latency(four, 3 if args.quick else args.repeats)
    nuts = {
        backend: nuts_ess_per_second(backend, draws, args.num_chains)
        for backend in ("numpyro", "pyro")
    }
    failed = []
    if abs(answer - EXACT) > 1e-6:
        failed.append(f"exact P(B > A) = {answer:.7f}, expected {EXACT}")
    if latency_two > LATENCY_LIMIT_S:
        failed.append(f"exact two-arm latency {latency_two:.3f} s > {LATENCY_LIMIT_S} s")
    print(
        json.dumps(
            {
                "exact_latency_s": {"2 arms": latency_two, "4 arms": latency_four},
                "exact_p_b_gt_a": answer,
                "nuts": nuts,
            },
            indent=1,
        )
    )
    lines = [
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "Exact path (`bayesvae.abtest(..., method='exact')`, quadrature for P(best), P(B > A) "
        f"and expected loss, 50,000 exact-posterior draws for lift intervals), median of "
        f"{args.repeats} calls: two arms {latency_two * 1e3:.0f} ms, four arms "
        f"{latency_four * 1e3:.0f} ms. P(B > A) for 200/1000 vs 220/1000 = {answer:.6f}.",
        "",
        f"NUTS on the same two-arm model, {args.num_chains} chains x {draws} draws after "
        f"{draws} warm-up steps, wall time including compilation:",
        "",
        "| backend | seconds | min bulk ESS (rate) | ESS per second |",
        "|---|---|---|---|",
    ]
    for backend, row in nuts.items():
        lines.append(
            f"| {backend} | {row['seconds']:.1f} | {row['min_ess_bulk']:.0f} | "
            f"{row['ess_per_s']:.0f} |"
        )
    lines.append(
        "\nChecks: exact answer to 1e-6 and two-arm latency under "
        f"{LATENCY_LIMIT_S} s: " + ("met." if not failed else "FAILED: " + "; ".join(failed))
    )
    if not args.quick:
        write_results(
            args.results, "A/B tests: exact latency and NUTS ESS/s (CPU)", "\n".join(lines)
        )
    if failed:
        print("checks failed: " + "; ".join(failed), file=sys.stderr)
        return 0 if args.quick and abs(answer - EXACT) <= 1e-6 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
