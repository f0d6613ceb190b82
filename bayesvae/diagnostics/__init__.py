"""Posterior diagnostics for every fit: ArviZ conversion, MCMC and SVI checks, model comparison,
VAE-specific checks, and topic-model quality."""

from bayesvae.diagnostics.compare import (
    GUIDE_MEAN_TOLERANCE,
    compare,
    compare_posteriors,
    loo,
    waic,
)
from bayesvae.diagnostics.mcmc import mcmc_checks
from bayesvae.diagnostics.svi import (
    KHAT_GOOD,
    KHAT_USABLE,
    PSISResult,
    Sandwich,
    elbo_convergence,
    importance_log_weights,
    psis_diagnostic,
    sandwich,
    svi_to_inference_data,
)
from bayesvae.diagnostics.topics import (
    TopicCollapseWarning,
    npmi_coherence,
    topic_collapse,
    topic_diversity,
)
from bayesvae.diagnostics.vae import (
    active_units,
    elbo_iwae_gap,
    kl_per_dimension,
    vae_diagnostics,
)

__all__ = [
    "TopicCollapseWarning",
    "npmi_coherence",
    "topic_collapse",
    "topic_diversity",
    "KHAT_GOOD",
    "KHAT_USABLE",
    "PSISResult",
    "Sandwich",
    "active_units",
    "compare",
    "compare_posteriors",
    "GUIDE_MEAN_TOLERANCE",
    "elbo_convergence",
    "elbo_iwae_gap",
    "kl_per_dimension",
    "loo",
    "mcmc_checks",
    "importance_log_weights",
    "psis_diagnostic",
    "sandwich",
    "svi_to_inference_data",
    "vae_diagnostics",
    "waic",
]
