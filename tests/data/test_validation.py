"""The shared argument checks: NumPy scalars count as numbers, bools and strings do not."""

import numpy as np
import pytest

from bayesvae.data.validation import (
    check_non_negative_int,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
)


@pytest.mark.parametrize("value", [0.5, 2, np.float32(0.5), np.float64(3.0), np.int64(4)])
def test_positive_numbers_of_any_numeric_type_come_back_as_floats(value):
    result = check_positive_number("rope", value)
    assert type(result) is float and result == pytest.approx(float(value))
    assert check_non_negative_number("rope", value) == pytest.approx(float(value))


@pytest.mark.parametrize(
    "value", [0, 0.0, -1.0, np.float32(-0.1), float("nan"), float("inf"), True, "0.1", None]
)
def test_positive_number_refuses_what_is_not_a_finite_number_above_zero(value):
    with pytest.raises(ValueError, match="rope must be a finite number > 0"):
        check_positive_number("rope", value)


def test_non_negative_number_takes_zero():
    assert check_non_negative_number("loss_threshold", 0) == 0.0
    with pytest.raises(ValueError, match="loss_threshold must be a finite number >= 0"):
        check_non_negative_number("loss_threshold", -1e-9)


@pytest.mark.parametrize("check", [check_positive_int, check_non_negative_int])
def test_integer_checks_refuse_bools_and_floats(check):
    assert check("epochs", np.int32(3)) == 3
    for bad in (True, 3.0, "3"):
        with pytest.raises(TypeError, match="epochs must be"):
            check("epochs", bad)


@pytest.mark.parametrize(
    ("bounds", "inside", "outside", "span"),
    [
        ({"low": 0, "high": 1, "low_open": True, "high_open": True}, [0.5], [0, 1], "in (0, 1)"),
        ({"low": 0, "high": 1, "high_open": True}, [0, 0.999], [1, -0.1], "in [0, 1)"),
        ({"low": -1, "high": 1}, [-1, 1, np.float32(0.2)], [1.01], "in [-1, 1]"),
        ({"low": 0.5, "low_open": True}, [0.51, 1e9], [0.5], "> 0.5"),
        ({"high": 2}, [2, -1e9], [2.5], "<= 2"),
        ({"high": 2, "high_open": True}, [1.99], [2], "< 2"),
        ({}, [-3.0, np.int8(4)], [float("nan"), float("-inf"), True, "1", None], ""),
    ],
)
def test_check_number_takes_its_interval_and_names_it_when_refusing(bounds, inside, outside, span):
    from bayesvae.data.validation import check_number

    for value in inside:
        assert check_number("alpha", value, **bounds) == pytest.approx(float(value))
    for value in outside:
        with pytest.raises(ValueError) as info:
            check_number("alpha", value, **bounds)
        assert str(info.value).startswith(
            f"alpha must be a finite number{' ' if span else ''}{span},"
        )
