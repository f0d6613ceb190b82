"""The learning-rate schedules and Adam options both fit loops share."""

import numpy as np
import pytest

from bayesvae.backends.schedules import check_betas, lr_factor


def test_betas_are_a_pair_of_numbers_below_one():
    assert check_betas([np.float32(0.5), 0.999]) == (0.5, pytest.approx(0.999))
    for bad in ((0.9,), (0.9, 1.0), "09", (0.9, "0.99"), 0.9, None):
        with pytest.raises(ValueError, match="betas must be"):
            check_betas(bad)


def test_schedules_give_their_factor_per_epoch():
    assert lr_factor("constant", 7, horizon=10, decay=0.5) == 1.0
    assert lr_factor("exponential", 3, horizon=10, decay=0.5) == pytest.approx(0.125)
    assert lr_factor("cosine", 5, horizon=10, decay=0.5) == pytest.approx(0.5)
    assert lr_factor("cosine", 20, horizon=10, decay=0.5) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("cosine", 0, horizon=10, decay=0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown lr_schedule 'zigzag'"):
        lr_factor("zigzag", 0, horizon=10, decay=0.5)
