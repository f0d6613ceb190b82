"""Figures and reports built from fitted runs."""

from bayesvae.report.plots import (
    ab_lift,
    ab_posteriors,
    ab_prob_best,
    image_grid,
    latent_scatter,
    loss_curves,
    reconstructions,
)

__all__ = [
    "ab_lift",
    "ab_posteriors",
    "ab_prob_best",
    "image_grid",
    "latent_scatter",
    "loss_curves",
    "reconstructions",
]
