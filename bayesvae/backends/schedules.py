"""Learning-rate schedules shared by the Pyro fit loop (:mod:`bayesvae.infer.engine`) and the
jitted NumPyro loop (:func:`bayesvae.backends.numpyro.loop.adam`): their names and the factor each
applies to the base rate in an epoch. Pure Python: importing it loads neither torch nor jax."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from bayesvae.data.validation import check_choice, check_number

__all__ = ["LR_SCHEDULES", "lr_factor", "check_betas"]

#: the names ``bayesvae.fit(lr_schedule=...)`` takes
LR_SCHEDULES = ("constant", "cosine", "exponential")


def check_betas(betas: Any) -> tuple[float, float]:
    """Adam's two moment decays as floats, each in ``[0, 1)``; anything else is a
    ``ValueError`` naming ``betas``."""
    pair = () if isinstance(betas, (str, bytes)) or not isinstance(betas, Iterable) else betas
    pair = tuple(pair)
    if len(pair) != 2:
        raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}.")
    first, second = (check_number("betas", b, low=0, high=1, high_open=True) for b in pair)
    return first, second


def lr_factor(schedule: str, epoch: int, *, horizon: int, decay: float) -> float:
    """The factor on the base learning rate in ``epoch`` (counted from 0): 1 for
    ``"constant"``, ``(1 + cos(pi min(epoch, horizon) / horizon)) / 2`` for ``"cosine"`` (down to
    0 at ``horizon``), ``decay ** epoch`` for ``"exponential"``. An unknown name is a
    ``ValueError``."""
    check_choice("lr_schedule", schedule, LR_SCHEDULES)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch, horizon) / horizon))
    if schedule == "exponential":
        return float(decay**epoch)
    return 1.0
