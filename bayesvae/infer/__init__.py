"""Inference: the SVI fit loop, objectives, callbacks, checkpoints."""

from bayesvae.infer.callbacks import Callback, EarlyStopping, FitState, IterateAveraging
from bayesvae.infer.checkpoint import load, save_model
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
    "load",
    "make_elbo",
    "resolve_device",
    "save_model",
    "scale_latents",
]
