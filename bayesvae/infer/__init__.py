"""Inference: the SVI fit loop, objectives, callbacks, training checkpoints."""

from bayesvae.infer.callbacks import Callback, EarlyStopping, FitState, IterateAveraging
from bayesvae.infer.objectives import OBJECTIVES, make_elbo, scale_latents
from bayesvae.infer.svi import FitResult, TrainingDivergedError, evaluate, fit, resolve_device

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
