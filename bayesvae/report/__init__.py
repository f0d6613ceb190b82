"""Figures and reports built from fitted runs.

``bayesvae.report(svi_result, mcmc=mcmc_result, out=DIR)`` — this package called as a function —
is :func:`bayesvae.report.program.report`: the report of a user's own Pyro program.
"""

import sys
import types

from bayesvae.report.build import FAMILY_SECTIONS, Report, Section, build, register_section
from bayesvae.report.plots import (
    ab_lift,
    ab_posteriors,
    ab_prob_best,
    ab_shrinkage,
    gradient_norms,
    image_grid,
    khat_per_point,
    latent_scatter,
    loss_curves,
    mcmc_figures,
    reconstructions,
)
from bayesvae.report.program import report

__all__ = [
    "report",
    "ab_lift",
    "ab_posteriors",
    "ab_prob_best",
    "ab_shrinkage",
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


class _CallableModule(types.ModuleType):
    """Lets ``bayesvae.report(...)`` call :func:`report` while ``bayesvae.report.build`` and the
    plots stay importable from the same name."""

    def __call__(self, *args, **kwargs):  # noqa: ANN204
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
