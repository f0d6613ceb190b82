"""NumPyro twin of :class:`bayesvae.AnomalyMixture`: the same sites and priors, with the
discrete assignment summed out by ``logsumexp`` (NUTS needs a continuous posterior)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import logsumexp

from bayesvae.models.anomaly import LOC_PRIOR_SCALE, SCALE_PRIOR

__all__ = ["anomaly_mixture_model"]


def anomaly_mixture_model(
    x: Any,
    *,
    n_components: int,
    covariance: str = "diag",
    contamination_prior: Sequence[float] = (1.0, 19.0),
    anomaly_scale: Any = 4.0,
    reg_covar: float = 1e-3,
    lkj_concentration: float = 2.0,
) -> Any:
    """``x``: standardized features (N, D). Sites ``contamination``, ``weights`` (K > 1),
    ``loc`` (K, D), ``scale`` (K, D), ``corr_chol`` (K, D, D; full covariance) and a per-point
    factor ``obs`` holding ``log p(x_n | parameters)``; ``anomaly_scale`` is the anomaly
    component's standard deviation, one number or one per feature ``(D,)``. Returns the
    per-point log joint of each component, ``(N, K + 1)`` (the anomaly component last)."""
    x = jnp.asarray(x)
    K, D = n_components, x.shape[-1]
    contamination = numpyro.sample("contamination", dist.Beta(*contamination_prior))
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.ones(K))) if K > 1 else jnp.ones(1)
    with numpyro.plate("components", K):
        loc = numpyro.sample("loc", dist.Normal(jnp.zeros(D), LOC_PRIOR_SCALE).to_event(1))
        scale = numpyro.sample(
            "scale", dist.LogNormal(jnp.full(D, SCALE_PRIOR[0]), SCALE_PRIOR[1]).to_event(1)
        )
        if covariance == "full":
            corr_chol = numpyro.sample("corr_chol", dist.LKJCholesky(D, lkj_concentration))
    if covariance == "full":
        factor = scale[..., None] * corr_chol
        cov = factor @ jnp.swapaxes(factor, -1, -2) + reg_covar * jnp.eye(D)
        normal = dist.MultivariateNormal(loc, covariance_matrix=cov).log_prob(x[:, None, :])
    else:
        normal = dist.Normal(loc, jnp.sqrt(scale**2 + reg_covar)).log_prob(x[:, None, :]).sum(-1)
    anomaly = dist.Normal(0.0, anomaly_scale).log_prob(x).sum(-1, keepdims=True)
    log_mix = jnp.concatenate(
        [jnp.log1p(-contamination) + jnp.log(weights), jnp.log(contamination)[None]]
    )
    joint = jnp.concatenate([normal, anomaly], axis=-1) + log_mix  # (N, K + 1)
    with numpyro.plate("data", x.shape[0]):
        numpyro.factor("obs", logsumexp(joint, axis=-1))
    return joint


def twin_of(mixture: Any) -> Any:
    """The NumPyro twin of an :class:`~bayesvae.AnomalyMixture` with its configuration
    (assignments summed out with ``logsumexp``), for NUTS."""
    from functools import partial

    return partial(
        anomaly_mixture_model,
        n_components=mixture.n_components,
        covariance=mixture.covariance,
        contamination_prior=mixture._contamination_prior,
        anomaly_scale=mixture.anomaly_scales.cpu().numpy(),
        reg_covar=mixture.reg_covar,
        lkj_concentration=mixture.lkj_concentration,
    )
