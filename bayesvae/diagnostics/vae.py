"""VAE-specific checks: active units, KL per latent dimension, and the ELBO-IWAE gap."""

from __future__ import annotations

import warnings
from typing import Any

import torch

__all__ = [
    "active_units",
    "kl_per_dimension",
    "elbo_iwae_gap",
    "vae_diagnostics",
    "ACTIVE_UNIT_THRESHOLD",
]

ACTIVE_UNIT_THRESHOLD = 0.01


def active_units(
    vae: Any, x: Any, y: Any = None, *, threshold: float = ACTIVE_UNIT_THRESHOLD
) -> tuple[int, torch.Tensor]:
    """Latent dimensions whose posterior mean varies across data (Burda et al. 2016):
    ``Var_x(E_q[z_d | x]) > threshold``. Returns the count and the variances ``(latent_dim,)``.
    ``y``: labels, for a conditional VAE."""
    loc, _ = vae.encode(x, y)
    variances = loc.var(0).cpu()
    return int((variances > threshold).sum()), variances


def kl_per_dimension(vae: Any, x: Any, y: Any = None) -> torch.Tensor:
    """``KL(q(z_d | x) || N(0, 1))`` averaged over ``x``, per latent dimension, in nats (for a
    flow guide: of its Gaussian base; for a hierarchical or mixture-prior VAE: against N(0, 1),
    not the model's learned prior)."""
    loc, scale = vae.encode(x, y)
    kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1.0) - scale.log()
    return kl.mean(0).cpu()


def elbo_iwae_gap(
    vae: Any, x: Any, y: Any = None, *, num_samples: int = 100, seed: int = 0
) -> dict[str, float]:
    """Mean ELBO, mean importance-weighted bound with ``num_samples`` particles, and their gap
    (nats per data point): a large gap means the guide misses posterior mass."""
    elbo = float(vae.elbo(x, y, num_samples=10, seed=seed).mean())
    iwae = float(vae.log_likelihood(x, y, num_samples=num_samples, seed=seed).mean())
    return {"elbo": elbo, "iwae": iwae, "gap": iwae - elbo, "num_samples": num_samples}


def vae_diagnostics(
    vae: Any, x: Any, y: Any = None, *, num_samples: int = 100, seed: int = 0
) -> dict[str, Any]:
    """All of the above; warns (``UserWarning``) on posterior collapse (fewer than half of the
    latent dimensions active). A discrete-latent model gets the ELBO-IWAE gap only."""
    gap = elbo_iwae_gap(vae, x, y, num_samples=num_samples, seed=seed)
    if not vae.continuous_latent:
        return gap
    count, variances = active_units(vae, x, y)
    per_dim = kl_per_dimension(vae, x, y)
    result = {
        "active_units": count,
        "latent_dim": int(variances.numel()),
        "posterior_mean_variance": variances.tolist(),
        "kl_per_dimension": per_dim.tolist(),
        **gap,
    }
    if count < max(1, variances.numel() // 2):
        warnings.warn(
            f"posterior collapse: only {count} of {variances.numel()} latent "
            f"dimensions are active (variance of the posterior mean > "
            f"{ACTIVE_UNIT_THRESHOLD}).",
            UserWarning,
            stacklevel=2,
        )
    return result
