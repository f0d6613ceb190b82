"""Learning-rate schedules shared by the Pyro fit loop (:mod:`bayesvae.infer.engine`) and the
jitted NumPyro loop (:func:`bayesvae.backends.numpyro.loop.adam`): their names and the factor each
applies to the base rate in an epoch. Pure Python: importing it loads neither torch nor jax."""

from __future__ import annotations

import math

from bayesvae.data.validation import check_choice

__all__ = ["LR_SCHEDULES", "lr_factor"]

#: the names ``bayesvae.fit(lr_schedule=...)`` takes
LR_SCHEDULES = ("constant", "cosine", "exponential")


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
