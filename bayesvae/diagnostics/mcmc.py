"""MCMC checks: ArviZ summary, divergences, BFMI, and the problems worth a warning."""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesvae.infer.mcmc import ESS_THRESHOLD, RHAT_THRESHOLD, convergence_problems

__all__ = ["mcmc_checks", "BFMI_THRESHOLD"]

BFMI_THRESHOLD = 0.3


def mcmc_checks(idata: Any, *, hdi_prob: float = 0.95) -> dict[str, Any]:
    """Summary table (mean, sd, ``hdi_prob`` HDI, MCSE, bulk/tail ESS, R-hat; constant
    elements left out), divergences,
    BFMI per chain, and ``problems``: R-hat > 1.01, ESS < 400, any divergence, BFMI < 0.3."""
    import warnings

    import arviz as az

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # constant elements: 0/0 in R-hat
        summary = az.summary(idata, hdi_prob=hdi_prob)
    # elements fixed by construction (a Cholesky factor's unit diagonal, its zero upper
    # triangle) have no spread, R-hat or ESS: they are not rows of the table
    summary = summary[summary["sd"] > 0]
    problems = convergence_problems(idata)
    divergences = 0
    bfmi: list[float] = []
    if "sample_stats" in idata.groups():
        stats = idata.sample_stats
        if "diverging" in stats:
            divergences = int(stats["diverging"].sum())
        if "energy" in stats:
            bfmi = [float(v) for v in np.atleast_1d(az.bfmi(idata))]
            low = [round(v, 3) for v in bfmi if v < BFMI_THRESHOLD]
            if low:
                problems.append(
                    f"BFMI below {BFMI_THRESHOLD} in {len(low)} chain(s) {low}: the "
                    "sampler explores the energy poorly; reparameterize."
                )
    return {
        "summary": summary,
        "divergences": divergences,
        "bfmi": bfmi,
        "problems": problems,
        "thresholds": {"r_hat": RHAT_THRESHOLD, "ess": ESS_THRESHOLD, "bfmi": BFMI_THRESHOLD},
    }
