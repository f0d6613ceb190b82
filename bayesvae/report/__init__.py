"""Figures and reports built from fitted runs."""

from bayesvae.report.plots import image_grid, latent_scatter, loss_curves, reconstructions

__all__ = ["image_grid", "latent_scatter", "loss_curves", "reconstructions"]
