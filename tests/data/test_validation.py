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
    with pytest.raises(ValueError, match="rope must be a finite number"):
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
