"""Bayesian A/B/n tests in one call: :func:`abtest` (counts) and :func:`abtest_from_rows`
(per-user rows). Three roads to the posterior, one result:

- ``method="exact"``: conjugate Beta posteriors; P(best), P(arm > control) and expected loss by
  1-D quadrature (no Monte Carlo error); lift intervals from draws of the exact posterior.
- ``method="mcmc"``: NUTS (NumPyro by default, ``backend="pyro"`` selectable), several chains.
- ``method="svi"``: the Pyro model/guide fitted with :func:`bayesvae.fit`; draws from the guide.

This module sits above ``bayesvae.models`` and ``bayesvae.infer`` (like the CLI): it combines a
model family with an inference method.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesvae.data.tabular import aggregate_outcomes
from bayesvae.data.validation import check_choice, check_positive_int
from bayesvae.models.abtest import (
    ArmCounts,
    BetaBinomialABTest,
    beta_hdi,
    check_counts,
    draws_hdi,
    exact_expected_loss,
    exact_prob_best,
    exact_prob_greater,
)

__all__ = ["abtest", "abtest_from_rows", "ABTestResult", "Decision", "METHODS"]

METHODS = ("exact", "mcmc", "svi")


@dataclass(frozen=True)
class Decision:
    """The recommendation and the numbers behind it.

    ``action`` is ``"choose"`` (``arm`` is the pick), ``"equivalent"`` (every arm within the ROPE
    of the best) or ``"keep collecting"``; ``text`` reads ``"choose B"``, ``"equivalent"`` or
    ``"keep collecting"``; ``reason`` explains it with the figures.
    """

    action: str
    arm: str | None
    text: str
    reason: str
    best_arm: str
    expected_loss: float
    prob_best: float
    loss_threshold: float
    rope: float | None


@dataclass
class ABTestResult:
    """Posterior summaries of an A/B/n test (rates per arm, K arms).

    Attributes:
        arms, successes, trials: the data, ``(K,)``.
        method: ``"exact"``, ``"mcmc"`` or ``"svi"``; ``control`` the reference arm.
        posterior_mean, hdi: posterior mean rate ``(K,)`` and ``hdi_prob`` HDI ``(K, 2)``.
        prob_best, prob_best_se: P(arm has the highest rate) and its Monte Carlo standard error
            (0 for the exact method).
        expected_loss, expected_loss_se: ``E[max_j rate_j - rate_k]``, the rate given up on
            average by choosing arm ``k``, and its Monte Carlo standard error.
        lift: one row per arm versus ``control``: absolute and relative lift (mean and HDI),
            ``prob_better`` = P(arm > control) with its standard error.
        decision: :class:`Decision`.
        draws: posterior draws of the rates ``(S, K)`` (from the exact posterior for
            ``method="exact"``).
        exact_posterior: ``(K, 2)`` Beta parameters of the exact posterior (``method="exact"``).
        diagnostics: how the posterior was obtained (timings, ESS, R-hat, divergences, ELBO).
    """

    arms: list[str]
    successes: np.ndarray
    trials: np.ndarray
    method: str
    control: str
    hdi_prob: float
    posterior_mean: np.ndarray
    hdi: np.ndarray
    prob_best: np.ndarray
    prob_best_se: np.ndarray
    expected_loss: np.ndarray
    expected_loss_se: np.ndarray
    lift: list[dict[str, Any]]
    decision: Decision
    draws: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)
    inference_data: Any = None
    exact_posterior: np.ndarray | None = None

    def to_inference_data(self) -> Any:
        """ArviZ ``InferenceData``: posterior, sample_stats (MCMC), observed_data and
        log_likelihood. For ``exact`` and ``svi`` it holds one chain of independent draws."""
        return self.inference_data

    def predictive(self, n_users: int, *, seed: int = 0) -> Any:
        """Posterior predictive successes among the next ``n_users`` of each arm: a DataFrame
        with the mean and the ``hdi_prob`` interval (Beta-Binomial, from the draws)."""
        import pandas as pd

        n_users = check_positive_int("n_users", n_users)
        rng = np.random.default_rng(seed)
        future = rng.binomial(n_users, self.draws)
        rows = []
        for k, arm in enumerate(self.arms):
            low, high = draws_hdi(future[:, k], self.hdi_prob)
            rows.append(
                {
                    "arm": arm,
                    "n_users": n_users,
                    "mean": float(future[:, k].mean()),
                    "low": low,
                    "high": high,
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """Everything a report or ``--json`` needs, as plain Python values."""
        arms = []
        for k, arm in enumerate(self.arms):
            arms.append(
                {
                    "arm": arm,
                    "successes": int(self.successes[k]),
                    "trials": int(self.trials[k]),
                    "posterior_mean": float(self.posterior_mean[k]),
                    "hdi": [float(self.hdi[k, 0]), float(self.hdi[k, 1])],
                    "prob_best": float(self.prob_best[k]),
                    "prob_best_se": float(self.prob_best_se[k]),
                    "expected_loss": float(self.expected_loss[k]),
                    "expected_loss_se": float(self.expected_loss_se[k]),
                }
            )
        decision = self.decision
        return {
            "method": self.method,
            "control": self.control,
            "hdi_prob": self.hdi_prob,
            "arms": arms,
            "lift": self.lift,
            "decision": {
                "text": decision.text,
                "action": decision.action,
                "arm": decision.arm,
                "reason": decision.reason,
                "best_arm": decision.best_arm,
                "expected_loss": decision.expected_loss,
                "prob_best": decision.prob_best,
                "loss_threshold": decision.loss_threshold,
                "rope": decision.rope,
            },
            "diagnostics": {
                k: v
                for k, v in self.diagnostics.items()
                if isinstance(v, (int, float, str, bool, type(None)))
            },
        }

    def table(self) -> str:
        """A readable plain-text summary."""
        pct = f"{self.hdi_prob:.0%}"
        lines = [
            f"Bayesian A/B test ({self.method}); control: {self.control}",
            "",
            f"{'arm':<12}{'conv.':>13}{'mean':>9}{pct + ' HDI':>20}{'P(best)':>10}"
            f"{'exp. loss':>12}",
        ]
        for k, arm in enumerate(self.arms):
            conv = f"{self.successes[k]}/{self.trials[k]}"
            hdi = f"[{self.hdi[k, 0]:.4f}, {self.hdi[k, 1]:.4f}]"
            lines.append(
                f"{arm:<12}{conv:>13}{self.posterior_mean[k]:>9.4f}{hdi:>20}"
                f"{self.prob_best[k]:>10.4f}{self.expected_loss[k]:>12.5f}"
            )
        lines += ["", f"lift over {self.control}:"]
        for row in self.lift:
            lines.append(
                f"  {row['arm']}: {row['relative_mean']:+.2%} relative "
                f"[{row['relative_hdi'][0]:+.2%}, {row['relative_hdi'][1]:+.2%}], "
                f"{row['absolute_mean']:+.4f} absolute; "
                f"P({row['arm']} > {self.control}) = {row['prob_better']:.4f}"
            )
        lines += ["", f"decision: {self.decision.text}", f"  {self.decision.reason}"]
        return "\n".join(lines)


def _resolve_counts(counts: Any, arms: Any, successes: Any, trials: Any) -> ArmCounts:
    if counts is not None:
        if any(v is not None for v in (arms, successes, trials)):
            raise TypeError("pass either counts= or arms=/successes=/trials=, not both.")
        if not isinstance(counts, Mapping):
            raise TypeError(
                f"counts must map arm name -> (successes, trials), got {type(counts).__name__}."
            )
        names = list(counts)
        pairs = list(counts.values())
        for name, pair in zip(names, pairs, strict=True):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(f"arm {name!r}: expected (successes, trials), got {pair!r}.")
        return check_counts(names, [p[0] for p in pairs], [p[1] for p in pairs])
    if successes is None or trials is None:
        raise TypeError("pass counts={'A': (s, n), ...} or successes= and trials= arrays.")
    successes_list = np.asarray(successes)
    names = (
        list(arms)
        if arms is not None
        else [chr(ord("A") + k) if k < 26 else f"arm{k}" for k in range(successes_list.size)]
    )
    return check_counts(names, successes, trials)


def _mcse(values: np.ndarray) -> float:
    """Monte Carlo standard error of the mean of ``values: (chains, draws)``."""
    import arviz as az

    if np.ptp(values) == 0:
        return 0.0
    return float(az.mcse(values, method="mean"))


def abtest(
    counts: Mapping[str, Sequence[int]] | None = None,
    *,
    arms: Sequence[str] | None = None,
    successes: Sequence[int] | None = None,
    trials: Sequence[int] | None = None,
    prior: Sequence[float] = (1.0, 1.0),
    hierarchical: bool = False,
    method: str = "exact",
    control: str | None = None,
    rope: float | None = None,
    loss_threshold: float = 0.001,
    hdi_prob: float = 0.95,
    backend: str = "numpyro",
    num_samples: int = 5000,
    num_warmup: int = 1000,
    num_chains: int = 4,
    svi_steps: int = 2000,
    num_draws: int = 50_000,
    seed: int = 0,
    progress: bool = False,
) -> ABTestResult:
    """Bayesian A/B/n test of conversion counts.

    Args:
        counts: ``{"A": (successes, trials), "B": (...)}``; or ``arms``, ``successes`` and
            ``trials`` as ``(K,)`` sequences.
        prior: ``(a, b)`` of each arm's Beta prior; ``hierarchical`` shares one prior with
            hyperpriors (mcmc and svi only).
        method: ``"exact"``, ``"mcmc"`` or ``"svi"``.
        control: reference arm for lift (default: the first arm).
        rope: half-width of the region of practical equivalence on the absolute difference in
            rates; arms whose difference from the best has its HDI inside ``[-rope, rope]`` are
            "equivalent". ``None`` disables the check.
        loss_threshold: choose the best arm once its expected loss is at most this (rate units).
        hdi_prob: mass of the highest-density intervals.
        backend, num_samples, num_warmup, num_chains: NUTS settings (``method="mcmc"``); the
            defaults keep the Monte Carlo error of P(B > A) near 0.003.
        svi_steps: optimisation steps (``method="svi"``); ``num_draws`` draws from the guide (and
            from the exact posterior for lift intervals with ``method="exact"``).
        seed: every random choice derives from it.
    """
    data = _resolve_counts(counts, arms, successes, trials)
    check_choice("method", method, METHODS)
    if not 0 < hdi_prob < 1:
        raise ValueError(f"hdi_prob must lie in (0, 1), got {hdi_prob}.")
    if rope is not None and not (isinstance(rope, (int, float)) and rope > 0):
        raise ValueError(f"rope must be a positive number or None, got {rope!r}.")
    if not (isinstance(loss_threshold, (int, float)) and loss_threshold >= 0):
        raise ValueError(f"loss_threshold must be a number >= 0, got {loss_threshold!r}.")
    control = data.names[0] if control is None else str(control)
    if control not in data.names:
        raise ValueError(f"control arm {control!r} is not one of the arms {list(data.names)}.")
    if method == "exact" and hierarchical:
        raise ValueError(
            "method='exact' needs the non-hierarchical model; use method='mcmc' "
            "or 'svi' with hierarchical=True."
        )
    num_draws = check_positive_int("num_draws", num_draws)
    model = BetaBinomialABTest(list(data.names), prior=prior, hierarchical=hierarchical)
    started = time.perf_counter()
    idata = None
    if method == "exact":
        chains, diagnostics, exact = _exact(model, data, num_draws, seed)
        idata = _draws_to_inference_data(model, data, {"rate": chains})
    elif method == "mcmc":
        chains, diagnostics, idata = _mcmc(
            model, data, backend, num_samples, num_warmup, num_chains, seed, progress
        )
        exact = None
    else:
        chains, diagnostics, idata = _svi(model, data, svi_steps, num_draws, seed, progress)
        exact = None
    diagnostics["seconds"] = time.perf_counter() - started
    return _summarize(
        data,
        chains,
        method,
        control,
        hdi_prob,
        rope,
        float(loss_threshold),
        diagnostics,
        idata,
        exact,
    )


def abtest_from_rows(source: Any, *, group: str, outcome: str, **options: Any) -> ABTestResult:
    """:func:`abtest` on per-user rows: a CSV path or DataFrame with a ``group`` column and a 0/1
    ``outcome`` column, aggregated per arm (first-appearance order)."""
    names, successes, trials = aggregate_outcomes(source, group=group, outcome=outcome)
    return abtest(arms=names, successes=successes, trials=trials, **options)


# ------------------------------------------------------------------------------ three roads
def _exact(
    model: BetaBinomialABTest, data: ArmCounts, num_draws: int, seed: int
) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    alpha, beta = model.exact_posterior(data)
    rng = np.random.default_rng(seed)
    draws = rng.beta(alpha, beta, size=(num_draws, len(alpha)))
    exact = {
        "alpha": alpha,
        "beta": beta,
        "prob_best": exact_prob_best(alpha, beta),
        "expected_loss": exact_expected_loss(alpha, beta),
    }
    return draws[None], {"posterior": "Beta(a + s, b + n - s) per arm"}, exact


def _mcmc(
    model: BetaBinomialABTest,
    data: ArmCounts,
    backend: str,
    num_samples: int,
    num_warmup: int,
    num_chains: int,
    seed: int,
    progress: bool = False,
) -> tuple[np.ndarray, dict[str, Any], Any]:
    from bayesvae.infer.mcmc import mcmc

    result = mcmc(
        model,
        data.successes,
        data.trials,
        backend=backend,
        num_samples=num_samples,
        num_warmup=num_warmup,
        num_chains=num_chains,
        seed=seed,
        progress=progress,
    )
    idata = result.inference_data
    summary = result.summary(var_names=["rate"])
    diagnostics = {
        "backend": backend,
        "num_chains": num_chains,
        "num_samples": num_samples,
        "num_warmup": num_warmup,
        "max_rhat": float(summary["r_hat"].max()),
        "min_ess_bulk": float(summary["ess_bulk"].min()),
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "problems": result.problems,
    }
    return result.samples["rate"], diagnostics, idata


def _svi(
    model: BetaBinomialABTest,
    data: ArmCounts,
    steps: int,
    num_draws: int,
    seed: int,
    progress: bool = False,
) -> tuple[np.ndarray, dict[str, Any], Any]:
    from bayesvae.diagnostics import svi_to_inference_data
    from bayesvae.infer import IterateAveraging, fit

    steps = check_positive_int("svi_steps", steps)
    k = len(data)
    # One epoch is one full-batch step; the guide's parameters are averaged over the last 3/4
    # of the steps (Polyak-Ruppert), which removes most of the optimiser's noise.
    fitted = fit(
        model,
        (data.successes, data.trials),
        epochs=steps,
        batch_size=k,
        lr=0.005,
        elbo="meanfield",
        num_particles=32,
        seed=seed,
        progress=progress,
        eval_size=k,
        device="cpu",
        callbacks=[IterateAveraging(max(steps // 4, 1))],
    )
    idata = svi_to_inference_data(
        model, data.successes, data.trials, num_samples=num_draws, draw_batch=10_000, seed=seed
    )
    last = fitted.history.iloc[-1]
    diagnostics = {
        "steps": steps,
        "final_elbo": float(last["recon"] - last["kl"]),
        "elbo": "TraceMeanField_ELBO",
        "guide": "mean-field Beta",
        "iterate_averaging": "last 3/4 of the steps",
    }
    return idata.posterior["rate"].to_numpy(), diagnostics, idata


def _draws_to_inference_data(
    model: BetaBinomialABTest, data: ArmCounts, posterior: dict[str, np.ndarray]
) -> Any:
    import arviz as az
    from scipy import stats

    coords, dims = model.arviz_dims()
    log_lik = stats.binom.logpmf(data.successes, data.trials, posterior["rate"])
    with warnings.catch_warnings():  # one chain: arviz notes R-hat is unavailable
        warnings.simplefilter("ignore", UserWarning)
        return az.from_dict(
            posterior=posterior,
            log_likelihood={"obs": log_lik},
            observed_data={"obs": data.successes},
            coords=coords,
            dims=dims,
        )


# ------------------------------------------------------------------------------- summaries
def _summarize(
    data: ArmCounts,
    chains: np.ndarray,
    method: str,
    control: str,
    hdi_prob: float,
    rope: float | None,
    loss_threshold: float,
    diagnostics: dict[str, Any],
    idata: Any,
    exact: dict[str, Any] | None,
) -> ABTestResult:
    """``chains``: rate draws ``(chains, draws, K)``."""
    names = list(data.names)
    k = len(names)
    flat = chains.reshape(-1, k)
    best_index = chains.argmax(-1)
    regret = chains.max(-1, keepdims=True) - chains
    if exact is not None:
        alpha, beta = exact["alpha"], exact["beta"]
        mean = alpha / (alpha + beta)
        hdi = np.array([beta_hdi(a, b, hdi_prob) for a, b in zip(alpha, beta, strict=True)])
        prob_best, prob_best_se = exact["prob_best"], np.zeros(k)
        expected_loss, expected_loss_se = exact["expected_loss"], np.zeros(k)
    else:
        mean = flat.mean(0)
        hdi = np.array([draws_hdi(flat[:, j], hdi_prob) for j in range(k)])
        prob_best = np.array([(best_index == j).mean() for j in range(k)])
        prob_best_se = np.array([_mcse((best_index == j).astype(float)) for j in range(k)])
        expected_loss = regret.reshape(-1, k).mean(0)
        expected_loss_se = np.array([_mcse(regret[..., j]) for j in range(k)])
    c = names.index(control)
    lift = []
    for j, arm in enumerate(names):
        if j == c:
            continue
        absolute = flat[:, j] - flat[:, c]
        relative = flat[:, j] / flat[:, c] - 1.0
        if exact is not None:
            prob_better, prob_better_se = (
                exact_prob_greater(exact["alpha"], exact["beta"], j, c),
                0.0,
            )
            absolute_mean = float(mean[j] - mean[c])
        else:
            better = (chains[..., j] > chains[..., c]).astype(float)
            prob_better, prob_better_se = float(better.mean()), _mcse(better)
            absolute_mean = float(absolute.mean())
        lift.append(
            {
                "arm": arm,
                "control": control,
                "absolute_mean": absolute_mean,
                "absolute_hdi": list(draws_hdi(absolute, hdi_prob)),
                "relative_mean": float(relative.mean()),
                "relative_hdi": list(draws_hdi(relative, hdi_prob)),
                "prob_better": float(prob_better),
                "prob_better_se": float(prob_better_se),
            }
        )
    decision = _decide(names, flat, expected_loss, prob_best, rope, loss_threshold, hdi_prob)
    return ABTestResult(
        arms=names,
        successes=data.successes,
        trials=data.trials,
        method=method,
        control=control,
        hdi_prob=hdi_prob,
        posterior_mean=np.asarray(mean),
        hdi=hdi,
        prob_best=np.asarray(prob_best),
        prob_best_se=prob_best_se,
        expected_loss=np.asarray(expected_loss),
        expected_loss_se=expected_loss_se,
        lift=lift,
        decision=decision,
        draws=flat,
        diagnostics=diagnostics,
        inference_data=idata,
        exact_posterior=None if exact is None else np.column_stack([exact["alpha"], exact["beta"]]),
    )


def _decide(
    names: list[str],
    draws: np.ndarray,
    expected_loss: np.ndarray,
    prob_best: np.ndarray,
    rope: float | None,
    loss_threshold: float,
    hdi_prob: float,
) -> Decision:
    best = int(np.argmin(expected_loss))
    numbers = dict(
        best_arm=names[best],
        expected_loss=float(expected_loss[best]),
        prob_best=float(prob_best[best]),
        loss_threshold=loss_threshold,
        rope=rope,
    )
    if rope is not None:
        widest = 0.0
        for j in range(len(names)):
            if j != best:
                low, high = draws_hdi(draws[:, best] - draws[:, j], hdi_prob)
                widest = max(widest, abs(low), abs(high))
        if widest <= rope:
            return Decision(
                "equivalent",
                None,
                "equivalent",
                f"the {hdi_prob:.0%} HDI of every difference from {names[best]} lies "
                f"within the ROPE ±{rope} (widest end {widest:.4f})",
                **numbers,
            )
    if len(names) > 1 and bool(np.all(expected_loss <= loss_threshold)):
        # e.g. 0/1000 against 0/1000: any arm costs less than the threshold, so picking the
        # first by its index would claim a difference the data do not show
        return Decision(
            "equivalent",
            None,
            "equivalent",
            f"every arm's expected loss is <= threshold {loss_threshold} (the largest "
            f"{float(expected_loss.max()):.5f}): choosing any of them costs less than the "
            "threshold",
            **numbers,
        )
    if expected_loss[best] <= loss_threshold:
        return Decision(
            "choose",
            names[best],
            f"choose {names[best]}",
            f"expected loss of choosing {names[best]} is {expected_loss[best]:.5f} "
            f"<= threshold {loss_threshold} (P(best) = {prob_best[best]:.3f})",
            **numbers,
        )
    return Decision(
        "keep collecting",
        None,
        "keep collecting",
        f"the best candidate {names[best]} still has expected loss "
        f"{expected_loss[best]:.5f} > threshold {loss_threshold} "
        f"(P(best) = {prob_best[best]:.3f})",
        **numbers,
    )
