"""Sanity checks of experiment data: sample-ratio mismatch (its false-alarm rate and power),
duplicate units, inconsistent assignment, winsorizing, extreme units, dispersion."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesvae.data.experiment import (
    SRM_THRESHOLD,
    assignment_consistency,
    check_allocation,
    dedupe_units,
    duplicate_units,
    extreme_unit_influence,
    overdispersion,
    sample_ratio_mismatch,
    winsorize_values,
)


def _srm_flag_rate(share, units, threshold, repeats, seed):
    rng = np.random.default_rng(seed)
    first = rng.binomial(units, share, size=repeats)
    flags = [
        not sample_ratio_mismatch(["A", "B"], [a, units - a], threshold=threshold).passed
        for a in first
    ]
    return float(np.mean(flags))


def test_srm_false_alarm_rate_is_its_threshold_under_the_null():
    repeats = 20_000
    rate = _srm_flag_rate(0.5, 100_000, 0.01, repeats, seed=0)
    # binomial sd of the rate at 0.01 over 20k repeats is 0.0007
    assert abs(rate - 0.01) < 4 * np.sqrt(0.01 * 0.99 / repeats)
    strict = _srm_flag_rate(0.5, 100_000, SRM_THRESHOLD, repeats, seed=1)
    assert strict < 0.001 + 4 * np.sqrt(0.001 / repeats)


def test_srm_power_against_a_one_percent_imbalance_matches_theory():
    # 50.5 / 49.5 on 100k units (one percentage point more in A): the chi-square statistic is
    # non-central with lambda = n * sum((p - q)^2 / q) = 100k * 2 * 0.005^2 / 0.5 = 10
    units, repeats = 100_000, 4000
    critical = stats.chi2.isf(SRM_THRESHOLD, df=1)
    theory = stats.ncx2.sf(critical, df=1, nc=units * 2 * 0.005**2 / 0.5)
    rate = _srm_flag_rate(0.505, units, SRM_THRESHOLD, repeats, seed=2)
    assert abs(rate - theory) < 4 * np.sqrt(theory * (1 - theory) / repeats)
    # and a 51 / 49 split is caught every time
    assert _srm_flag_rate(0.51, units, SRM_THRESHOLD, 200, seed=3) == 1.0


def test_srm_uses_the_intended_allocation():
    assert sample_ratio_mismatch(["A", "B"], [6700, 3300], [2, 1]).passed
    assert not sample_ratio_mismatch(["A", "B"], [6700, 3300]).passed
    check = sample_ratio_mismatch(["A", "B"], [6700, 3300], {"B": 1, "A": 2})
    assert check.passed and check.details["allocation"] == pytest.approx([2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="one per arm"):
        check_allocation([1, 1, 1], ["A", "B"])
    with pytest.raises(ValueError, match="missing"):
        check_allocation({"A": 1}, ["A", "B"])
    with pytest.raises(ValueError, match="positive"):
        check_allocation([1, 0], ["A", "B"])


FRAME = pd.DataFrame(
    {
        "user": [1, 2, 3, 3, 4, 5, 5, 6],
        "group": ["A", "A", "A", "B", "B", "B", "B", "B"],
        "page": ["old", "old", "new", "new", "new", "new", "new", "old"],
        "y": [0, 1, 0, 1, 1, 0, 0, 1],
    }
)


def test_duplicate_units_are_counted_and_removed():
    check = duplicate_units(FRAME, group="group", unit="user")
    assert not check.passed
    assert check.details["in_several_arms"] == 1  # user 3
    assert check.details["repeated_within_arm"] == 1  # user 5
    assert check.details["extra_rows"] == 2
    first, done = dedupe_units(FRAME, group="group", unit="user", how="first")
    assert first["user"].tolist() == [1, 2, 3, 4, 5, 6] and done.details["removed_rows"] == 2
    assert first.loc[first["user"] == 3, "group"].item() == "A"
    dropped, _ = dedupe_units(FRAME, group="group", unit="user", how="drop")
    assert dropped["user"].tolist() == [1, 2, 4, 5, 6]
    assert duplicate_units(first, group="group", unit="user").passed
    with pytest.raises(ValueError, match="dedupe must be"):
        dedupe_units(FRAME, group="group", unit="user", how="last")
    with pytest.raises(ValueError, match="not found"):
        duplicate_units(FRAME, group="group", unit="id")


def test_inconsistent_assignment_is_counted_per_arm():
    check = assignment_consistency(FRAME, group="group", check_column="page")
    assert not check.passed
    assert check.details["expected"] == {"A": "old", "B": "new"}
    assert check.details["per_arm"] == {"A": 1, "B": 1}
    assert check.details["inconsistent_rows"] == 2
    clean = FRAME.assign(page=FRAME["group"].map({"A": "old", "B": "new"}))
    assert assignment_consistency(clean, group="group", check_column="page").passed


def test_winsorize_caps_every_arm_at_one_pooled_quantile():
    values = [np.arange(1000.0), np.arange(1000.0) + 0.5]
    capped, check = winsorize_values(values, 0.99)
    cap = np.quantile(np.concatenate(values), 0.99)
    assert all(v.max() == pytest.approx(cap) for v in capped)
    assert check.details["capped_units"] == sum(int((v > cap).sum()) for v in values)
    with pytest.raises(ValueError, match=r"winsorize must be a finite number in \(0.5, 1\)"):
        winsorize_values(values, 1.5)


def test_one_extreme_unit_is_flagged_and_dispersion_is_measured():
    rng = np.random.default_rng(0)
    plain = [rng.poisson(50, 5000), rng.poisson(50, 5000)]
    assert extreme_unit_influence(["A", "B"], plain).passed
    assert overdispersion(["A", "B"], plain).passed
    heavy = [plain[0].copy(), plain[1]]
    heavy[0][0] = 49_854
    check = extreme_unit_influence(["A", "B"], heavy)
    assert not check.passed and "'A'" in check.summary
    assert not overdispersion(["A", "B"], heavy).passed
