"""Inference: the SVI fit loop, objectives, callbacks, training checkpoints, NUTS.

Names load on first use (see :mod:`bayesvae._lazy`), so ``bayesvae.infer.mcmc`` samples a
NumPyro twin without importing torch or Pyro.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bayesvae._lazy import lazy_exports

_EXPORTS = {
    "Callback": "bayesvae.infer.callbacks:Callback",
    "EarlyStopping": "bayesvae.infer.callbacks:EarlyStopping",
    "FitState": "bayesvae.infer.callbacks:FitState",
    "IterateAveraging": "bayesvae.infer.callbacks:IterateAveraging",
    "OBJECTIVES": "bayesvae.infer.objectives:OBJECTIVES",
    "make_elbo": "bayesvae.infer.objectives:make_elbo",
    "scale_latents": "bayesvae.infer.objectives:scale_latents",
    "FitResult": "bayesvae.infer.svi:FitResult",
    "TrainingDivergedError": "bayesvae.infer.svi:TrainingDivergedError",
    "evaluate": "bayesvae.infer.svi:evaluate",
    "fit": "bayesvae.infer.svi:fit",
    "resolve_device": "bayesvae.infer.svi:resolve_device",
}
__all__ = [
    "Callback",
    "EarlyStopping",
    "FitState",
    "IterateAveraging",
    "FitResult",
    "OBJECTIVES",
    "TrainingDivergedError",
    "evaluate",
    "fit",
    "make_elbo",
    "resolve_device",
    "scale_latents",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from bayesvae.infer.callbacks import Callback, EarlyStopping, FitState, IterateAveraging
    from bayesvae.infer.objectives import OBJECTIVES, make_elbo, scale_latents
    from bayesvae.infer.svi import FitResult, TrainingDivergedError, evaluate, fit, resolve_device
