"""Figures and reports built from fitted runs."""

from bayesvae.report.build import FAMILY_SECTIONS, Report, Section, build, register_section
from bayesvae.report.plots import (
    ab_lift,
    ab_posteriors,
    ab_prob_best,
    gradient_norms,
    image_grid,
    khat_per_point,
    latent_scatter,
    loss_curves,
    mcmc_figures,
    reconstructions,
)

__all__ = [
    "ab_lift",
    "ab_posteriors",
    "ab_prob_best",
    "build",
    "FAMILY_SECTIONS",
    "register_section",
    "Report",
    "Section",
    "gradient_norms",
    "khat_per_point",
    "mcmc_figures",
    "image_grid",
    "latent_scatter",
    "loss_curves",
    "reconstructions",
]
