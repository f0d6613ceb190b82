"""Bayesian A/B/n tests in one call: :func:`abtest` (conversion counts), :func:`abtest_samples`
(per-unit values of any metric), :func:`abtest_from_rows` (a table, checked before it is
analysed) and :func:`abtest_metrics` (several metrics of one table). Metrics: ``conversion``
(Beta-Binomial), ``count`` (Gamma-Poisson, or a negative binomial for overdispersed counts),
``continuous`` (Normal with unknown variance) and ``revenue`` (delta log-normal); see
:mod:`bayesvae.models.ab_metrics`. Three roads to the posterior, one result:

- ``method="exact"``: conjugate posteriors; for conversion, count (Poisson) and continuous
  metrics P(best), P(arm > control) and expected loss by 1-D quadrature (no Monte Carlo error);
  for revenue, whose per-unit mean has no closed form, from draws of the exact posterior (with
  their Monte Carlo error). Lift intervals come from draws of the exact posterior.
- ``method="mcmc"``: NUTS (NumPyro by default, ``backend="pyro"`` selectable), several chains.
- ``method="svi"``: the Pyro model/guide fitted with :func:`bayesvae.fit`; draws from the guide.

This module sits above ``bayesvae.models`` and ``bayesvae.infer`` (like the CLI): it combines a
model family with an inference method.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesvae.data.experiment import (
    SRM_THRESHOLD,
    SanityCheck,
    assignment_consistency,
    dedupe_units,
    duplicate_units,
    extreme_unit_influence,
    overdispersion,
    sample_ratio_mismatch,
    winsorize_values,
)
from bayesvae.data.tabular import outcome_values, read_table
from bayesvae.data.validation import (
    check_choice,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
    check_probability,
)
from bayesvae.models.ab_conjugate import (
    ABModelSpec,
    ArmCounts,
    BetaBinomialSpec,
    GammaPoissonSpec,
    MetricSummary,
    NegativeBinomialSpec,
    NormalSpec,
    RevenueSpec,
    check_counts,
    draws_hdi,
    marginal_expected_loss,
    marginal_hdi,
    marginal_prob_best,
    marginal_prob_greater,
    summarize_metric,
)

if TYPE_CHECKING:
    from bayesvae.runs import RunWriter

__all__ = [
    "abtest",
    "abtest_samples",
    "abtest_from_rows",
    "abtest_metrics",
    "ABTestResult",
    "ABTestSuite",
    "Decision",
    "METHODS",
    "METRICS",
    "COUNT_LIKELIHOODS",
]

METHODS = ("exact", "mcmc", "svi")
METRICS = ("conversion", "count", "continuous", "revenue")
COUNT_LIKELIHOODS = ("poisson", "negative-binomial")
#: default loss threshold: absolute for conversion rates, a share of the control's mean otherwise
CONVERSION_LOSS_THRESHOLD = 0.001
RELATIVE_LOSS_THRESHOLD = 0.01


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
    """Posterior summaries of an A/B/n test of one metric over K arms.

    Attributes:
        arms: arm names ``(K,)``; ``successes``, ``trials``: conversion counts ``(K,)`` (``None``
            for other metrics); ``units``: units per arm ``(K,)``; ``observed``: each arm's data
            in words.
        metric: ``"conversion"``, ``"count"``, ``"continuous"`` or ``"revenue"``; ``outcome``
            the column it was read from (or ``None``); ``likelihood`` the model in words.
        method: ``"exact"``, ``"mcmc"`` or ``"svi"``; ``control`` the reference arm.
        posterior_mean, hdi: posterior mean of each arm's expected metric per unit (the
            conversion rate, mean count, mean value or revenue per unit) ``(K,)`` and its
            ``hdi_prob`` HDI ``(K, 2)``.
        prob_best, prob_best_se: P(arm has the highest rate) and its Monte Carlo standard error
            (0 for the exact method).
        expected_loss, expected_loss_se: ``E[max_j rate_j - rate_k]``, the rate given up on
            average by choosing arm ``k``, and its Monte Carlo standard error.
        lift: one row per arm versus ``control``: absolute and relative lift (mean and HDI),
            ``prob_better`` = P(arm > control) with its standard error.
        decision: :class:`Decision`.
        draws: posterior draws of the rates ``(S, K)`` (from the exact posterior for
            ``method="exact"``).
        exact_posterior: ``(K, 2)`` Beta parameters of the exact posterior (conversion,
            ``method="exact"``).
        diagnostics: how the posterior was obtained (timings, ESS, R-hat, divergences, ELBO).
        checks: the data's :class:`~bayesvae.data.experiment.SanityCheck` results (sample
            ratio, duplicates, assignment, extreme units, dispersion); a failed one is shown
            above the decision.
        shrinkage: for the hierarchical model, each arm's observed rate, flat (independent
            prior) posterior mean and pooled posterior mean.
    """

    arms: list[str]
    successes: np.ndarray | None
    trials: np.ndarray | None
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
    _inference_data: Any = field(default=None, repr=False)
    exact_posterior: np.ndarray | None = None
    metric: str = "conversion"
    outcome: str | None = None
    likelihood: str = "Beta-Binomial"
    units: np.ndarray | None = None
    observed: list[str] = field(default_factory=list)
    checks: list[SanityCheck] = field(default_factory=list)
    shrinkage: list[dict[str, Any]] | None = None
    #: the exact 1-D posterior of each arm's value (frozen scipy distributions), for plots
    exact_marginals: list[Any] | None = None
    #: the model family (``BetaBinomialABTest``, ``NormalABTest``, ...) and its settings (arms,
    #: prior, ``hierarchical``), and the analysis options: what :meth:`save` writes to
    #: ``config.yaml``
    family: str = "BetaBinomialABTest"
    model_config: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)
    #: builds ``inference_data`` on first use (exact results: ArviZ is imported only then)
    _inference_data_factory: Callable[[], Any] | None = field(default=None, repr=False)

    @property
    def inference_data(self) -> Any:
        """ArviZ ``InferenceData`` of the posterior (see :meth:`to_inference_data`)."""
        if self._inference_data is None and self._inference_data_factory is not None:
            self._inference_data = self._inference_data_factory()
            self._inference_data_factory = None
        return self._inference_data

    @property
    def failed_checks(self) -> list[SanityCheck]:
        """The checks that did not pass."""
        return [check for check in self.checks if not check.passed]

    def to_inference_data(self) -> Any:
        """ArviZ ``InferenceData``: posterior, sample_stats (MCMC), observed_data and
        log_likelihood. For ``exact`` and ``svi`` it holds one chain of independent draws."""
        return self.inference_data

    def predictive(self, n_users: int, *, seed: int = 0) -> Any:
        """Posterior predictive successes among the next ``n_users`` of each arm: a DataFrame
        with the mean and the ``hdi_prob`` interval (Beta-Binomial, from the draws;
        conversion only)."""
        import pandas as pd

        if self.metric != "conversion":
            raise ValueError(f"predictive() is for conversion tests, not metric={self.metric!r}.")
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
            counts = (
                {"successes": int(self.successes[k]), "trials": int(self.trials[k])}
                if self.successes is not None and self.trials is not None
                else {}
            )
            arms.append(
                {
                    "arm": arm,
                    **counts,
                    "units": None if self.units is None else int(self.units[k]),
                    "observed": self.observed[k] if self.observed else None,
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
            "metric": self.metric,
            "outcome": self.outcome,
            "likelihood": self.likelihood,
            "method": self.method,
            "control": self.control,
            "hdi_prob": self.hdi_prob,
            "checks": [check.to_dict() for check in self.checks],
            "shrinkage": self.shrinkage,
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

    def save(self, out: str | Path | RunWriter) -> Path:
        """Write a run folder that ``bayesvae report`` reads: ``result.json``, ``summary.txt``,
        the posterior plots (``posteriors.png``, ``lift.png``, ``prob_best.png``, and
        ``shrinkage.png`` for the hierarchical model), ``posterior.nc`` (the ArviZ data) and
        ``config.yaml`` (family, arms, prior, analysis options). The folder is saved whole
        (:class:`bayesvae.runs.RunWriter`): a run already at ``out`` is replaced."""
        return _save_run(out, [self], self.to_dict(), self.table())

    def table(self) -> str:
        """A readable plain-text summary: the checks, one row per arm, lifts, the decision."""
        pct = f"{self.hdi_prob:.0%}"
        what = self.metric if self.outcome is None else f"{self.outcome} ({self.metric})"
        lines = [
            f"Bayesian A/B test of {what}, {self.likelihood} ({self.method}); "
            f"control: {self.control}"
        ]
        lines += _check_lines(self.checks)
        observed = self.observed or [""] * len(self.arms)
        width = max(13, *(len(o) + 2 for o in observed))
        lines += [
            "",
            f"{'arm':<12}{'observed':>{width}}{'mean':>11}{pct + ' HDI':>26}{'P(best)':>10}"
            f"{'exp. loss':>12}",
        ]
        for k, arm in enumerate(self.arms):
            hdi = f"[{self.hdi[k, 0]:.5g}, {self.hdi[k, 1]:.5g}]"
            lines.append(
                f"{arm:<12}{observed[k]:>{width}}{self.posterior_mean[k]:>11.5g}{hdi:>26}"
                f"{self.prob_best[k]:>10.4f}{self.expected_loss[k]:>12.5g}"
            )
        if self.shrinkage:
            lines += ["", "shrinkage (observed -> flat posterior -> pooled posterior):"]
            lines += [
                f"  {row['arm']}: {row['observed']:.4f} -> {row['flat_mean']:.4f} -> "
                f"{row['pooled_mean']:.4f}"
                for row in self.shrinkage
            ]
        lines += ["", f"lift over {self.control}:"]
        for row in self.lift:
            lines.append(
                f"  {row['arm']}: {row['relative_mean']:+.2%} relative "
                f"[{row['relative_hdi'][0]:+.2%}, {row['relative_hdi'][1]:+.2%}], "
                f"{row['absolute_mean']:+.5g} absolute; "
                f"P({row['arm']} > {self.control}) = {row['prob_better']:.4f}"
            )
        failed = self.failed_checks
        lines += ["", f"decision: {self.decision.text}", f"  {self.decision.reason}"]
        if failed:
            lines.append(f"  (read with care: {len(failed)} data check(s) failed, listed above)")
        return "\n".join(lines)


def _save_run(
    out: str | Path | RunWriter,
    results: list[ABTestResult],
    summary: dict[str, Any],
    table: str,
    outcomes: list[str] | None = None,
) -> Path:
    """The A/B run folder of ``results`` (one metric, or several with suffixed files);
    ``config.yaml``'s analysis section is the primary result's metric, outcome and options,
    and a suite's ``outcomes``."""
    from bayesvae.report import plots
    from bayesvae.runs import writing

    primary = results[0]
    with writing(out) as run:
        run.write_json("result.json", summary)
        run.write_text("summary.txt", table + "\n")
        rope = primary.analysis.get("rope")
        for index, one in enumerate(results):
            suffix = "" if len(results) == 1 else f"_{index}"
            plots.ab_posteriors(one, run.file(f"posteriors{suffix}.png"))
            plots.ab_lift(one, run.file(f"lift{suffix}.png"), rope=rope)
            plots.ab_prob_best(one, run.file(f"prob_best{suffix}.png"))
            if one.shrinkage:
                plots.ab_shrinkage(one, run.file(f"shrinkage{suffix}.png"))
            if one.inference_data is not None:
                run.write_netcdf(f"posterior{suffix}.nc", one.inference_data)
        run.write_config(
            primary.family,
            {**primary.model_config, "metrics": [one.metric for one in results]},
            analysis={
                "metric": primary.metric,
                "outcome": primary.outcome,
                **primary.analysis,
                **({} if outcomes is None else {"outcomes": outcomes}),
            },
        )
    return run.path


def _check_lines(checks: Sequence[SanityCheck]) -> list[str]:
    if not checks:
        return []
    lines = ["", "data checks:"]
    for check in checks:
        mark = "ok  " if check.passed else "FAIL"
        lines.append(f"  [{mark}] {check.name}: {check.summary}")
    return lines


@dataclass
class ABTestSuite:
    """Several metrics of one experiment: a result per outcome column (the first is primary)
    and the data checks they share."""

    results: dict[str, ABTestResult]
    checks: list[SanityCheck] = field(default_factory=list)

    def __getitem__(self, outcome: str) -> ABTestResult:
        return self.results[outcome]

    @property
    def primary(self) -> ABTestResult:
        """The first metric's result (the one a decision is made on)."""
        return next(iter(self.results.values()))

    def table(self) -> str:
        """The shared checks, then one table per metric."""
        lines = [f"Bayesian A/B test of {len(self.results)} metrics"] + _check_lines(self.checks)
        for result in self.results.values():
            lines += ["", "=" * 78, result.table()]
        return "\n".join(lines)

    def save(self, out: str | Path | RunWriter) -> Path:
        """Write one run folder for every metric (see :meth:`ABTestResult.save`): the plots and
        posterior of metric ``i`` carry the suffix ``_i``; ``result.json`` holds the shared
        checks and every result."""
        results = list(self.results.values())
        return _save_run(out, results, self.to_dict(), self.table(), outcomes=list(self.results))

    def to_dict(self) -> dict[str, Any]:
        """``{"checks": [...], "results": [one result dict per metric]}``."""
        return {
            "checks": [check.to_dict() for check in self.checks],
            "results": [result.to_dict() for result in self.results.values()],
        }


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


_ANALYSIS_DOC = """
        method: ``"exact"``, ``"mcmc"`` or ``"svi"``.
        control: reference arm for lift (default: the first arm).
        rope: half-width of the region of practical equivalence on the absolute difference of
            the metric (its own units); arms whose difference from the best has its HDI inside
            ``[-rope, rope]`` are "equivalent". ``None`` disables the check.
        loss_threshold: choose the best arm once its expected loss is at most this (metric
            units). Default: 0.001 for conversion rates; 1 % of the control arm's posterior
            mean for other metrics.
        hdi_prob: mass of the highest-density intervals.
        backend, num_samples, num_warmup, num_chains: NUTS settings (``method="mcmc"``); the
            defaults keep the Monte Carlo error of P(B > A) near 0.003.
        svi_steps: optimisation steps (``method="svi"``); ``num_draws`` draws from the guide (and
            from the exact posterior with ``method="exact"``).
        seed: every random choice derives from it."""


def abtest(
    counts: Mapping[str, Sequence[int]] | None = None,
    *,
    arms: Sequence[str] | None = None,
    successes: Sequence[int] | None = None,
    trials: Sequence[int] | None = None,
    prior: Sequence[float] | None = None,
    hierarchical: bool = False,
    method: str = "exact",
    control: str | None = None,
    rope: float | None = None,
    loss_threshold: float | None = None,
    hdi_prob: float = 0.95,
    backend: str = "numpyro",
    num_samples: int = 5000,
    num_warmup: int = 1000,
    num_chains: int = 4,
    svi_steps: int = 2000,
    num_draws: int = 50_000,
    seed: int = 0,
    progress: bool = False,
    checks: Sequence[SanityCheck] = (),
) -> ABTestResult:
    """Bayesian A/B/n test of conversion counts.

    Args:
        counts: ``{"A": (successes, trials), "B": (...)}``; or ``arms``, ``successes`` and
            ``trials`` as ``(K,)`` sequences.
        prior: ``(a, b)`` of each arm's Beta prior (default ``(1, 1)``); ``hierarchical``
            shares one prior with hyperpriors (mcmc and svi only); the result then shows each
            arm's shrinkage against the flat model.
        checks: data checks made upstream (e.g. by :func:`abtest_from_rows`), shown with the
            result.
    """
    data = _resolve_counts(counts, arms, successes, trials)
    settings = _Settings(
        method,
        control,
        rope,
        loss_threshold,
        hdi_prob,
        backend,
        num_samples,
        num_warmup,
        num_chains,
        svi_steps,
        num_draws,
        seed,
        progress,
    )
    return _conversion(data, prior, hierarchical, settings, list(checks), outcome=None)


def _conversion(
    data: ArmCounts,
    prior: Sequence[float] | None,
    hierarchical: bool,
    settings: _Settings,
    checks: list[SanityCheck],
    *,
    outcome: str | None,
) -> ABTestResult:
    """The Beta-Binomial analysis of validated counts."""
    if settings.method == "exact" and hierarchical:
        raise ValueError(
            "method='exact' needs the non-hierarchical model; use method='mcmc' "
            "or 'svi' with hierarchical=True."
        )
    summary = MetricSummary(
        metric="conversion",
        names=data.names,
        units=data.trials,
        total=data.successes.astype(np.float64),
        mean=data.successes / data.trials,
        sum_squares=np.zeros(len(data)),
        payers=np.zeros(len(data), dtype=np.int64),
        distinct_values=np.zeros(0),
        distinct_arm=np.zeros(0, dtype=np.int64),
        distinct_weight=np.zeros(0),
    )
    spec = BetaBinomialSpec(
        list(data.names), prior=(1.0, 1.0) if prior is None else prior, hierarchical=hierarchical
    )
    return _analyse(summary, spec, settings, checks=checks, counts=data, outcome=outcome)


abtest.__doc__ = (abtest.__doc__ or "") + _ANALYSIS_DOC


def abtest_samples(
    samples: Mapping[str, Any],
    *,
    metric: str = "continuous",
    count_likelihood: str = "poisson",
    prior: Sequence[float] | None = None,
    hierarchical: bool = False,
    winsorize: float | None = None,
    outcome: str | None = None,
    method: str = "exact",
    control: str | None = None,
    rope: float | None = None,
    loss_threshold: float | None = None,
    hdi_prob: float = 0.95,
    backend: str = "numpyro",
    num_samples: int = 5000,
    num_warmup: int = 1000,
    num_chains: int = 4,
    svi_steps: int = 2000,
    num_draws: int = 50_000,
    seed: int = 0,
    progress: bool = False,
    checks: Sequence[SanityCheck] = (),
) -> ABTestResult:
    """Bayesian A/B/n test of per-unit values: ``samples = {"A": values (n_A,), ...}``.

    Args:
        metric: ``"conversion"`` (0/1 values), ``"count"`` (whole numbers >= 0),
            ``"continuous"`` (any real values) or ``"revenue"`` (>= 0, zero for units that did
            not pay); see :mod:`bayesvae.models.ab_metrics` for each model and its ``prior``.
        count_likelihood: ``"poisson"`` (conjugate) or ``"negative-binomial"`` (overdispersed
            counts; mcmc or svi) for ``metric="count"``.
        winsorize: cap every arm's values at this pooled quantile (e.g. ``0.999``; for revenue,
            among payers) so that a single extreme unit cannot decide the test.
        outcome: the column name, for the tables.
        checks: data checks made upstream, shown with the result; this function adds the
            extreme-unit check (and, for Poisson counts, the dispersion check).
    """
    check_choice("metric", metric, METRICS)
    check_choice("count_likelihood", count_likelihood, COUNT_LIKELIHOODS)
    if not isinstance(samples, Mapping):
        raise TypeError(
            f"samples must map arm name -> per-unit values, got {type(samples).__name__}."
        )
    names = [str(n) for n in samples]
    values = [np.asarray(v) for v in samples.values()]
    if hierarchical and metric != "conversion":
        raise ValueError(
            f"hierarchical=True is for conversion rates; metric={metric!r} has no "
            "hierarchical model."
        )
    checks = list(checks)
    summary = summarize_metric(metric, names, values)  # validates before any transformation
    if winsorize is not None:
        if metric == "conversion":
            raise ValueError("winsorize applies to count, continuous and revenue metrics.")
        values, capped = winsorize_values(values, winsorize, positive_only=metric == "revenue")
        if metric == "count":
            values = [np.floor(v) for v in values]
        checks.append(capped)
        summary = summarize_metric(metric, names, values)
    if metric != "conversion":
        checks.append(extreme_unit_influence(names, values))
    if metric == "count" and count_likelihood == "poisson":
        checks.append(overdispersion(names, values))
    settings = _Settings(
        method,
        control,
        rope,
        loss_threshold,
        hdi_prob,
        backend,
        num_samples,
        num_warmup,
        num_chains,
        svi_steps,
        num_draws,
        seed,
        progress,
    )
    if metric == "conversion":
        counts = check_counts(names, summary.total, summary.units)
        return _conversion(counts, prior, hierarchical, settings, checks, outcome=outcome)
    spec: ABModelSpec
    if metric == "count":
        spec = (
            GammaPoissonSpec(names, prior=prior)
            if count_likelihood == "poisson"
            else NegativeBinomialSpec(names, prior=prior)
        )
    elif metric == "continuous":
        spec = NormalSpec(names, prior=prior)
    else:
        spec = RevenueSpec(names, prior=prior)
    return _analyse(summary, spec, settings, checks=checks, outcome=outcome)


abtest_samples.__doc__ = (abtest_samples.__doc__ or "") + _ANALYSIS_DOC


def _checked_rows(
    source: Any,
    *,
    group: str,
    unit: str | None,
    dedupe: str | None,
    allocation: Mapping[str, float] | Sequence[float] | None,
    check_column: str | None,
    srm_threshold: float,
) -> tuple[Any, list[SanityCheck], dict[str, Any]]:
    """The table after dedupe, the shared data checks (duplicates, assignment, SRM), and these
    options as plain values (for a run's ``config.yaml``)."""
    frame = read_table(source)
    if group not in frame.columns:
        raise ValueError(f"group column {group!r} not found; columns are {list(frame.columns)}.")
    if frame[group].isna().any():
        raise ValueError(f"group column {group!r} has missing values.")
    if dedupe is not None and unit is None:
        raise ValueError("dedupe needs unit=, the column that identifies a unit (user).")
    checks = []
    if unit is not None:
        checks.append(duplicate_units(frame, group=group, unit=unit))
        if dedupe is not None:
            frame, removed = dedupe_units(frame, group=group, unit=unit, how=dedupe)
            checks.append(removed)
    if check_column is not None:
        checks.append(assignment_consistency(frame, group=group, check_column=check_column))
    labels = frame[group].astype(str)
    names = list(dict.fromkeys(labels.tolist()))
    sizes = labels.value_counts().reindex(names).to_numpy()
    checks.insert(0, sample_ratio_mismatch(names, sizes, allocation, threshold=srm_threshold))
    if isinstance(allocation, Mapping):
        shares: Any = {str(arm): float(share) for arm, share in allocation.items()}
    else:
        shares = None if allocation is None else [float(share) for share in allocation]
    options = {
        "group": group,
        "unit": unit,
        "dedupe": dedupe,
        "allocation": shares,
        "check_column": check_column,
        "srm_threshold": float(srm_threshold),
    }
    return frame, checks, options


def abtest_from_rows(
    source: Any,
    *,
    group: str,
    outcome: str,
    metric: str = "conversion",
    unit: str | None = None,
    dedupe: str | None = None,
    allocation: Mapping[str, float] | Sequence[float] | None = None,
    check_column: str | None = None,
    srm_threshold: float = SRM_THRESHOLD,
    **options: Any,
) -> ABTestResult:
    """:func:`abtest_samples` on per-unit rows (a CSV path or DataFrame), checked first.

    Args:
        group: the column holding each row's arm (arms in order of first appearance).
        outcome: the metric's column (0/1 or True/False for conversion).
        metric: see :func:`abtest_samples`; ``**options`` are its options.
        unit: the column identifying a unit (user): units in two arms, or counted twice, are
            reported; ``dedupe="first"`` keeps each unit's first row, ``"drop"`` removes units
            seen in several arms.
        allocation: intended share per arm for the sample-ratio check (a sequence in arm
            order or a mapping; default equal); flagged when the chi-square ``p <
            srm_threshold``.
        check_column: a second column that should agree with the arm (e.g. the page shown):
            rows that disagree are reported.

    A failed check does not stop the analysis: it is in ``result.checks`` and shown above the
    decision.
    """
    frame, checks, row_options = _checked_rows(
        source,
        group=group,
        unit=unit,
        dedupe=dedupe,
        allocation=allocation,
        check_column=check_column,
        srm_threshold=srm_threshold,
    )
    check_choice("metric", metric, METRICS)
    names, values = outcome_values(
        frame, group=group, outcome=outcome, binary=metric == "conversion"
    )
    result = abtest_samples(
        dict(zip(names, values, strict=True)),
        metric=metric,
        outcome=outcome,
        checks=checks,
        **options,
    )
    result.analysis.update(row_options, **_metric_options(options))
    return result


def abtest_metrics(
    source: Any,
    *,
    group: str,
    metrics: Mapping[str, str],
    unit: str | None = None,
    dedupe: str | None = None,
    allocation: Mapping[str, float] | Sequence[float] | None = None,
    check_column: str | None = None,
    srm_threshold: float = SRM_THRESHOLD,
    **options: Any,
) -> ABTestSuite:
    """Several metrics of one experiment: ``metrics = {"retention_7": "conversion",
    "sum_gamerounds": "count"}`` (outcome column -> metric; the first is primary). The table is
    checked once (see :func:`abtest_from_rows`) and every metric analysed with ``**options``
    (those of :func:`abtest_samples`)."""
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValueError("metrics must map at least one outcome column to a metric name.")
    for column, metric in metrics.items():
        check_choice(f"metric of {column!r}", metric, METRICS)
    frame, checks, row_options = _checked_rows(
        source,
        group=group,
        unit=unit,
        dedupe=dedupe,
        allocation=allocation,
        check_column=check_column,
        srm_threshold=srm_threshold,
    )
    results = {}
    for column, metric in metrics.items():
        names, values = outcome_values(
            frame, group=group, outcome=column, binary=metric == "conversion"
        )
        metric_options = dict(options)
        if metric != "count":
            metric_options.pop("count_likelihood", None)
        if metric == "conversion":
            metric_options.pop("winsorize", None)
        if metric != "conversion":
            metric_options.pop("hierarchical", None)
        results[column] = abtest_samples(
            dict(zip(names, values, strict=True)),
            metric=metric,
            outcome=column,
            **metric_options,
        )
        results[column].analysis.update(row_options, **_metric_options(metric_options))
    return ABTestSuite(results, checks)


def _metric_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of :func:`abtest_samples` that a result does not record by itself."""
    return {key: options[key] for key in ("count_likelihood", "winsorize") if key in options}


# ------------------------------------------------------------------------------ analysis
@dataclass(frozen=True)
class _Settings:
    """The analysis options every metric shares (validated in :func:`_analyse`)."""

    method: str
    control: str | None
    rope: float | None
    loss_threshold: float | None
    hdi_prob: float
    backend: str
    num_samples: int
    num_warmup: int
    num_chains: int
    svi_steps: int
    num_draws: int
    seed: int
    progress: bool


def _analyse(
    summary: MetricSummary,
    spec: ABModelSpec,
    settings: _Settings,
    *,
    checks: list[SanityCheck],
    counts: ArmCounts | None = None,
    outcome: str | None = None,
) -> ABTestResult:
    method = settings.method
    check_choice("method", method, METHODS)
    hdi_prob = check_probability("hdi_prob", settings.hdi_prob)
    rope = None if settings.rope is None else check_positive_number("rope", settings.rope)
    threshold = settings.loss_threshold
    if threshold is not None:
        threshold = check_non_negative_number("loss_threshold", threshold)
    names = list(summary.names)
    control = names[0] if settings.control is None else str(settings.control)
    if control not in names:
        raise ValueError(f"control arm {control!r} is not one of the arms {names}.")
    num_draws = check_positive_int("num_draws", settings.num_draws)
    metric = spec.metric
    if threshold is None and metric == "conversion":
        threshold = CONVERSION_LOSS_THRESHOLD
    if method == "exact" and not spec.has_exact:
        hint = " (or count_likelihood='poisson')" if isinstance(spec, NegativeBinomialSpec) else ""
        raise ValueError(
            f"the {spec.likelihood} model has no closed-form posterior; use method='mcmc' or "
            f"'svi'{hint}."
        )
    data = spec.summary_data(summary)
    started = time.perf_counter()
    exact: dict[str, Any] | None = None
    idata: Any = None
    idata_factory = None
    if method == "exact":
        chains, diagnostics, exact, posterior = _exact(spec, summary, num_draws, settings.seed)

        def idata_factory() -> Any:
            return _draws_to_inference_data(spec, data, posterior)

    elif method == "mcmc":
        chains, diagnostics, idata = _mcmc(spec, data, settings)
    else:
        chains, diagnostics, idata = _svi(spec, data, settings, num_draws)
    diagnostics["seconds"] = time.perf_counter() - started
    result = _summarize(
        names, chains, method, control, hdi_prob, rope, threshold, diagnostics, idata, exact
    )
    result._inference_data_factory = idata_factory
    result.metric, result.outcome, result.likelihood = metric, outcome, spec.likelihood
    result.family, result.model_config = spec.family, spec.spec_config
    result.analysis = {key: value for key, value in asdict(settings).items() if key != "progress"}
    result.units = np.asarray(summary.units)
    result.observed = [summary.describe(k) for k in range(len(names))]
    result.checks = checks
    if counts is not None and isinstance(spec, BetaBinomialSpec):
        result.successes, result.trials = counts.successes, counts.trials
        if spec.hierarchical:
            result.shrinkage = _shrinkage(result, counts)
    return result


def _shrinkage(result: ABTestResult, counts: ArmCounts) -> list[dict[str, Any]]:
    """Observed rate, flat Beta(1, 1) posterior mean and pooled posterior mean per arm."""
    flat = (counts.successes + 1.0) / (counts.trials + 2.0)
    return [
        {
            "arm": arm,
            "observed": float(counts.successes[k] / counts.trials[k]),
            "flat_mean": float(flat[k]),
            "pooled_mean": float(result.posterior_mean[k]),
            "shift": float(result.posterior_mean[k] - flat[k]),
        }
        for k, arm in enumerate(result.arms)
    ]


def _exact(
    spec: ABModelSpec, summary: MetricSummary, num_draws: int, seed: int
) -> tuple[np.ndarray, dict[str, Any], dict[str, Any] | None, dict[str, np.ndarray]]:
    """Draws of the decision quantity ``(1, S, K)``, how they were made, the quadrature answers
    (``None`` when only draws exist) and every posterior site's draws for ArviZ."""
    posterior = spec.exact_posterior(summary, np.random.default_rng(seed), num_draws)
    sites = {k: v[None] for k, v in posterior.sites.items()}
    how = {"posterior": posterior.description}
    if posterior.marginals is None:
        return posterior.draws[None], how, None, sites
    exact = {
        "marginals": posterior.marginals,
        "prob_best": marginal_prob_best(posterior.marginals),
        "expected_loss": marginal_expected_loss(posterior.marginals),
        **posterior.parameters,
    }
    return posterior.draws[None], how, exact, sites


def _mcmc(
    spec: ABModelSpec, data: tuple[np.ndarray, ...], settings: _Settings
) -> tuple[np.ndarray, dict[str, Any], Any]:
    from bayesvae.infer.mcmc import mcmc

    if settings.backend == "numpyro":  # the spec names the family's twin: no torch, no Pyro
        model: Any = spec
    else:
        from bayesvae.models.ab_metrics import pyro_model

        model = pyro_model(spec)
    result = mcmc(
        model,
        *data,
        backend=settings.backend,
        num_samples=settings.num_samples,
        num_warmup=settings.num_warmup,
        num_chains=settings.num_chains,
        seed=settings.seed,
        progress=settings.progress,
    )
    idata = result.inference_data
    site = spec.decision_site
    summary = result.summary(var_names=[site])
    diagnostics = {
        "backend": settings.backend,
        "num_chains": settings.num_chains,
        "num_samples": settings.num_samples,
        "num_warmup": settings.num_warmup,
        "max_rhat": float(summary["r_hat"].max()),
        "min_ess_bulk": float(summary["ess_bulk"].min()),
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "problems": result.problems,
    }
    return result.samples[site], diagnostics, idata


def _svi(
    spec: ABModelSpec, data: tuple[np.ndarray, ...], settings: _Settings, num_draws: int
) -> tuple[np.ndarray, dict[str, Any], Any]:
    from bayesvae.diagnostics import svi_to_inference_data
    from bayesvae.infer import IterateAveraging, fit
    from bayesvae.models.ab_metrics import pyro_model

    steps = check_positive_int("svi_steps", settings.svi_steps)
    n = len(data[0])  # arms, or distinct (arm, value) pairs
    model = pyro_model(spec)
    # One epoch is one full-batch step; the guide's parameters are averaged over the last 3/4
    # of the steps (Polyak-Ruppert), which removes most of the optimiser's noise.
    fitted = fit(
        model,
        data,
        epochs=steps,
        batch_size=n,
        lr=0.005,
        elbo="meanfield",
        num_particles=32,
        seed=settings.seed,
        progress=settings.progress,
        eval_size=0,  # one-step epochs: an evaluation would cost as much as the step
        device="cpu",
        callbacks=[IterateAveraging(max(steps // 4, 1))],
    )
    idata = svi_to_inference_data(
        model, *data, num_samples=num_draws, draw_batch=10_000, seed=settings.seed
    )
    last = fitted.history.iloc[-1]
    diagnostics = {
        "steps": steps,
        "final_elbo": float(last["train_elbo"]),  # the last step's, per data row
        "elbo": "TraceMeanField_ELBO",
        "guide": "mean-field (Beta / log-normal / normal per site)",
        "iterate_averaging": "last 3/4 of the steps",
    }
    return idata.posterior[spec.decision_site].to_numpy(), diagnostics, idata


def _draws_to_inference_data(
    spec: ABModelSpec, data: tuple[np.ndarray, ...], posterior: dict[str, np.ndarray]
) -> Any:
    """One chain of exact-posterior draws as ``InferenceData``, with the conversion model's
    pointwise log-likelihood (the other metrics observe summaries, which have none per unit)."""
    import arviz as az
    from scipy import stats

    coords, dims = spec.arviz_dims()
    groups: dict[str, Any] = {}
    if isinstance(spec, BetaBinomialSpec):
        successes, trials = data
        groups["log_likelihood"] = {"obs": stats.binom.logpmf(successes, trials, posterior["rate"])}
        groups["observed_data"] = {"obs": successes}
    dims = {k: v for k, v in dims.items() if k in posterior or k in groups.get("observed_data", {})}
    with warnings.catch_warnings():  # one chain: arviz notes R-hat is unavailable
        warnings.simplefilter("ignore", UserWarning)
        return az.from_dict(posterior=posterior, coords=coords, dims=dims, **groups)


# ------------------------------------------------------------------------------- summaries
def _summarize(
    names: list[str],
    chains: np.ndarray,
    method: str,
    control: str,
    hdi_prob: float,
    rope: float | None,
    loss_threshold: float | None,
    diagnostics: dict[str, Any],
    idata: Any,
    exact: dict[str, Any] | None,
) -> ABTestResult:
    """``chains``: draws of each arm's value ``(chains, draws, K)``."""
    k = len(names)
    flat = chains.reshape(-1, k)
    best_index = chains.argmax(-1)
    regret = chains.max(-1, keepdims=True) - chains
    if exact is not None:
        marginals = exact["marginals"]
        mean = np.array([float(m.mean()) for m in marginals])
        hdi = np.array([marginal_hdi(m, hdi_prob) for m in marginals])
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
    if loss_threshold is None:  # a share of the control's mean, in the metric's units
        loss_threshold = RELATIVE_LOSS_THRESHOLD * abs(float(mean[c]))
    lift = []
    for j, arm in enumerate(names):
        if j == c:
            continue
        absolute = flat[:, j] - flat[:, c]
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = flat[:, j] / flat[:, c] - 1.0
        if exact is not None:
            prob_better, prob_better_se = marginal_prob_greater(exact["marginals"], j, c), 0.0
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
    decision = _decide(names, flat, expected_loss, prob_best, rope, float(loss_threshold), hdi_prob)
    return ABTestResult(
        arms=names,
        successes=None,
        trials=None,
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
        _inference_data=idata,
        exact_posterior=None
        if exact is None or "alpha" not in exact
        else np.column_stack([exact["alpha"], exact["beta"]]),
        exact_marginals=None if exact is None else exact["marginals"],
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
            f"every arm's expected loss is <= threshold {loss_threshold:.4g} (the largest "
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
            f"<= threshold {loss_threshold:.4g} (P(best) = {prob_best[best]:.3f})",
            **numbers,
        )
    return Decision(
        "keep collecting",
        None,
        "keep collecting",
        f"the best candidate {names[best]} still has expected loss "
        f"{expected_loss[best]:.5f} > threshold {loss_threshold:.4g} "
        f"(P(best) = {prob_best[best]:.3f})",
        **numbers,
    )
