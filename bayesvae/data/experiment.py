"""Checks of experiment data before an A/B analysis, as the tools practitioners use make them:
sample-ratio mismatch, duplicate units, inconsistent assignment columns, and what a single
extreme unit does to a metric. A failed check never stops an analysis; it is reported above the
decision (:class:`SanityCheck`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesvae.data.validation import check_number, check_probability

__all__ = [
    "SanityCheck",
    "SRM_THRESHOLD",
    "DEDUPE_CHOICES",
    "sample_ratio_mismatch",
    "check_allocation",
    "duplicate_units",
    "dedupe_units",
    "assignment_consistency",
    "winsorize_values",
    "extreme_unit_influence",
    "overdispersion",
]

#: p-value below which the arm sizes are flagged as a sample-ratio mismatch (GrowthBook, Eppo
#: and Statsig use the same threshold)
SRM_THRESHOLD = 1e-3
DEDUPE_CHOICES = ("first", "drop")


@dataclass(frozen=True)
class SanityCheck:
    """One check of the data: ``name`` (e.g. ``"sample ratio"``), whether it ``passed``, a
    one-sentence ``summary`` with the figures, and the figures themselves in ``details``."""

    name: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "name": self.name,
            "passed": self.passed,
            "summary": self.summary,
            "details": self.details,
        }


def check_allocation(
    allocation: Mapping[str, float] | Sequence[float] | None, arms: Sequence[str]
) -> np.ndarray:
    """Intended share of units per arm, ``(K,)`` summing to 1; ``None`` means equal shares.

    A sequence is in arm order; a mapping names every arm. ``ValueError`` on a wrong length,
    unknown or missing arms, or weights that are not positive.
    """
    arms = list(arms)
    if allocation is None:
        return np.full(len(arms), 1.0 / len(arms))
    if isinstance(allocation, Mapping):
        by_name = {str(k): v for k, v in allocation.items()}
        unknown = sorted(set(by_name) - set(arms))
        missing = [a for a in arms if a not in by_name]
        if unknown or missing:
            raise ValueError(
                f"allocation must name every arm {arms}; unknown {unknown}, missing {missing}."
            )
        weights = [by_name[a] for a in arms]
    else:
        weights = list(allocation)
        if len(weights) != len(arms):
            raise ValueError(
                f"allocation has {len(weights)} weights for {len(arms)} arms {arms}; give one "
                "per arm, in arm order (or a mapping arm -> weight)."
            )
    try:
        values = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"allocation weights must be numbers, got {weights!r}.") from None
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"allocation weights must be positive and finite, got {weights!r}.")
    return values / values.sum()


def sample_ratio_mismatch(
    arms: Sequence[str],
    units: Sequence[int],
    allocation: Mapping[str, float] | Sequence[float] | None = None,
    *,
    threshold: float = SRM_THRESHOLD,
) -> SanityCheck:
    """Chi-square goodness-of-fit test of the arm sizes ``units (K,)`` against the intended
    ``allocation`` (default: equal); flagged when ``p < threshold``."""
    from scipy import stats

    threshold = check_probability("threshold", threshold)
    shares = check_allocation(allocation, arms)
    observed = np.asarray(units, dtype=np.float64)
    expected = shares * observed.sum()
    statistic, p_value = stats.chisquare(observed, expected)
    worst = int(np.argmax(np.abs(observed - expected) / np.sqrt(expected)))
    intended = ", ".join(f"{a} {s:.1%}" for a, s in zip(arms, shares, strict=True))
    actual = ", ".join(f"{a} {n / observed.sum():.2%}" for a, n in zip(arms, observed, strict=True))
    passed = bool(p_value >= threshold)
    summary = (
        f"arm sizes match the intended allocation ({intended}): chi-square p = {p_value:.3g}."
        if passed
        else f"sample-ratio mismatch: the arm sizes ({actual}) are unlikely under the intended "
        f"allocation ({intended}), chi-square p = {p_value:.2g} < {threshold:g}; arm "
        f"{arms[worst]!r} has {abs(observed[worst] - expected[worst]):.0f} "
        f"{'more' if observed[worst] > expected[worst] else 'fewer'} units than intended. Find "
        "the cause (assignment, logging, bots) before trusting the result."
    )
    return SanityCheck(
        "sample ratio",
        passed,
        summary,
        {
            "p_value": float(p_value),
            "chi_square": float(statistic),
            "threshold": threshold,
            "allocation": [float(s) for s in shares],
            "units": [int(n) for n in observed],
            "expected": [float(e) for e in expected],
        },
    )


def duplicate_units(frame: Any, *, group: str, unit: str) -> SanityCheck:
    """Units that appear in more than one arm, or more than once within an arm."""
    if unit not in frame.columns:
        raise ValueError(f"unit column {unit!r} not found; columns are {list(frame.columns)}.")
    if frame[unit].isna().any():
        raise ValueError(
            f"unit column {unit!r} has {int(frame[unit].isna().sum())} missing values."
        )
    arms_per_unit = frame.groupby(unit, sort=False)[group].nunique()
    rows_per_unit = frame.groupby(unit, sort=False).size()
    in_several_arms = int((arms_per_unit > 1).sum())
    repeated = int(((rows_per_unit > 1) & (arms_per_unit == 1)).sum())
    extra_rows = int((rows_per_unit - 1).clip(lower=0).sum())
    passed = in_several_arms == 0 and repeated == 0
    examples = [str(u) for u in rows_per_unit[rows_per_unit > 1].index[:5]]
    summary = (
        f"every {unit} appears once ({len(rows_per_unit)} units)."
        if passed
        else f"duplicate units: {in_several_arms} {unit}(s) appear in more than one arm and "
        f"{repeated} more appear more than once within one arm ({extra_rows} extra rows, e.g. "
        f"{', '.join(examples)}); they are counted as separate units unless dedupe='first' or "
        "'drop' is given."
    )
    return SanityCheck(
        "duplicate units",
        passed,
        summary,
        {
            "units": int(len(rows_per_unit)),
            "in_several_arms": in_several_arms,
            "repeated_within_arm": repeated,
            "extra_rows": extra_rows,
            "examples": examples,
        },
    )


def dedupe_units(frame: Any, *, group: str, unit: str, how: str) -> tuple[Any, SanityCheck]:
    """Remove duplicate units: ``how="first"`` keeps each unit's first row (its first
    assignment); ``"drop"`` removes every row of a unit seen in more than one arm and keeps the
    first row of a unit repeated within one arm. Returns the table and what was done."""
    if how not in DEDUPE_CHOICES:
        raise ValueError(f"dedupe must be one of {list(DEDUPE_CHOICES)}, got {how!r}.")
    before = len(frame)
    if how == "drop":
        arms_per_unit = frame.groupby(unit, sort=False)[group].transform("nunique")
        frame = frame[arms_per_unit == 1]
    frame = frame.drop_duplicates(subset=[unit], keep="first")
    removed = before - len(frame)
    return frame, SanityCheck(
        "dedupe",
        True,
        f"dedupe={how!r} removed {removed} of {before} rows; {len(frame)} units remain.",
        {"how": how, "removed_rows": removed, "rows": len(frame)},
    )


def assignment_consistency(frame: Any, *, group: str, check_column: str) -> SanityCheck:
    """Rows whose ``check_column`` (e.g. the landing page shown) disagrees with their arm: each
    arm is expected to map to one value, the one most of its rows hold, and different arms to
    different values."""
    if check_column not in frame.columns:
        raise ValueError(
            f"check column {check_column!r} not found; columns are {list(frame.columns)}."
        )
    table = frame.groupby([group, check_column], sort=False).size().unstack(fill_value=0)
    expected = table.idxmax(axis=1)
    matching = sum(int(table.loc[arm, value]) for arm, value in expected.items())
    inconsistent = int(table.to_numpy().sum()) - matching
    shared = sorted({str(v) for v in expected[expected.duplicated(keep=False)]})
    passed = inconsistent == 0 and not shared
    per_arm = {
        str(arm): int(table.loc[arm].sum() - table.loc[arm, value])
        for arm, value in expected.items()
    }
    mapping = ", ".join(f"{a} -> {v}" for a, v in expected.items())
    summary = (
        f"every row's {check_column!r} matches its arm ({mapping})."
        if passed
        else f"inconsistent assignment: {inconsistent} rows ({inconsistent / len(frame):.2%}) "
        f"have a {check_column!r} other than their arm's ({mapping}); per arm "
        f"{per_arm}" + (f"; arms share the value(s) {shared}" if shared else "") + "."
    )
    return SanityCheck(
        "assignment consistency",
        passed,
        summary,
        {
            "check_column": check_column,
            "inconsistent_rows": inconsistent,
            "per_arm": per_arm,
            "expected": {str(a): str(v) for a, v in expected.items()},
        },
    )


def winsorize_values(
    values: Sequence[np.ndarray], quantile: float, *, positive_only: bool = False
) -> tuple[list[np.ndarray], SanityCheck]:
    """Cap every arm's values at the pooled ``quantile`` (the same cap for every arm, so the
    comparison stays fair). ``positive_only`` takes the quantile among positive values (revenue:
    among payers)."""
    quantile = check_number("winsorize", quantile, low=0.5, high=1, low_open=True, high_open=True)
    pooled = np.concatenate([np.asarray(v, dtype=np.float64) for v in values])
    if positive_only:
        pooled = pooled[pooled > 0]
    cap = float(np.quantile(pooled, quantile)) if pooled.size else 0.0
    capped = [np.minimum(np.asarray(v, dtype=np.float64), cap) for v in values]
    changed = int(sum(int((np.asarray(v) > cap).sum()) for v in values))
    return capped, SanityCheck(
        "winsorize",
        True,
        f"values above the pooled {quantile:.4g} quantile ({cap:.6g}) were capped there: "
        f"{changed} units.",
        {"quantile": quantile, "cap": cap, "capped_units": changed},
    )


def extreme_unit_influence(arms: Sequence[str], values: Sequence[np.ndarray]) -> SanityCheck:
    """What one unit does to each arm's mean: removing the arm's largest value moves the mean by
    how many standard errors (of the other units)? Flagged when more than one (a single unit
    could flip the decision; consider winsorizing)."""
    rows = []
    for arm, raw in zip(arms, values, strict=True):
        array = np.asarray(raw, dtype=np.float64)
        n = array.size
        if n < 3:
            continue
        top = int(np.argmax(array))
        without = np.delete(array, top)
        # the standard error of the rest: an extreme unit would inflate its own yardstick
        standard_error = float(without.std(ddof=1) / np.sqrt(n))
        shift = float(array.mean() - without.mean())
        ratio = shift / standard_error if standard_error > 0 else 0.0
        next_largest = float(without.max())
        rows.append(
            {
                "arm": str(arm),
                "largest": float(array[top]),
                "next_largest": next_largest,
                "share_of_total": float(array[top] / array.sum()) if array.sum() > 0 else 0.0,
                "mean_shift": shift,
                "shift_in_standard_errors": ratio,
            }
        )
    flagged = [r for r in rows if r["shift_in_standard_errors"] > 1.0]
    if flagged:
        worst = max(flagged, key=lambda r: r["shift_in_standard_errors"])
        summary = (
            f"a single unit moves an arm's mean: in {worst['arm']!r} the largest value "
            f"{worst['largest']:.6g} (next largest {worst['next_largest']:.6g}) shifts the mean "
            f"by {worst['mean_shift']:.4g}, {worst['shift_in_standard_errors']:.1f} standard "
            "errors; the result may hinge on it (consider winsorize=0.999)."
        )
    else:
        summary = "no single unit moves an arm's mean by more than one standard error."
    return SanityCheck("extreme units", not flagged, summary, {"arms": rows})


def overdispersion(arms: Sequence[str], values: Sequence[np.ndarray]) -> SanityCheck:
    """Variance-to-mean ratio of counts per arm; a Poisson model assumes 1. Flagged above 1.5,
    where the Poisson posterior is too narrow (use the negative binomial)."""
    ratios = {}
    for arm, raw in zip(arms, values, strict=True):
        array = np.asarray(raw, dtype=np.float64)
        mean = array.mean()
        ratios[str(arm)] = float(array.var(ddof=1) / mean) if mean > 0 and array.size > 1 else 1.0
    worst = max(ratios.values())
    passed = worst <= 1.5
    summary = (
        f"counts look Poisson (variance/mean at most {worst:.2f})."
        if passed
        else f"overdispersed counts: variance/mean up to {worst:.3g} where a Poisson model "
        "assumes 1, so its intervals are too narrow; use count_likelihood='negative-binomial'."
    )
    return SanityCheck("dispersion", passed, summary, {"variance_to_mean": ratios})
