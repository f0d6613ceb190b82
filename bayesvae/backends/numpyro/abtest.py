"""NumPyro twins of the A/B models in :mod:`bayesvae.models.abtest` and
:mod:`bayesvae.models.ab_metrics` (same sites, same priors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers

from bayesvae.models.ab_conjugate import (
    CONCENTRATION_PRIOR,
    HIERARCHICAL_CONCENTRATION_PRIOR,
    HIERARCHICAL_MEAN_PRIOR,
)

__all__ = [
    "beta_binomial_model",
    "gamma_poisson_model",
    "negative_binomial_model",
    "normal_model",
    "revenue_model",
]


def beta_binomial_model(
    successes: Any,
    trials: Any,
    *,
    prior: Sequence[float] = (1.0, 1.0),
    hierarchical: bool = False,
) -> Any:
    """``successes, trials: (K,)``; sites ``rate`` (K,), ``obs``, and when ``hierarchical``
    ``mean`` and ``concentration``."""
    successes, trials = jnp.asarray(successes), jnp.asarray(trials)
    if hierarchical:
        mean = numpyro.sample("mean", dist.Beta(*HIERARCHICAL_MEAN_PRIOR))
        concentration = numpyro.sample(
            "concentration", dist.Pareto(*HIERARCHICAL_CONCENTRATION_PRIOR)
        )
        a, b = mean * concentration, (1 - mean) * concentration
    else:
        a, b = prior
    with numpyro.plate("arms", successes.shape[0]):
        rate = numpyro.sample("rate", dist.Beta(a, b))
        numpyro.sample("obs", dist.Binomial(total_count=trials, probs=rate), obs=successes)
    return rate


# ------------------------------------------------------------- metrics beyond conversion
def gamma_poisson_model(total: Any, units: Any, *, prior: Sequence[float] = (0.1, 0.1)) -> Any:
    """Twin of :class:`bayesvae.models.GammaPoissonABTest`: ``total, units: (K,)``."""
    total, units = jnp.asarray(total), jnp.asarray(units)
    with numpyro.plate("arms", total.shape[0]):
        rate = numpyro.sample("rate", dist.Gamma(prior[0], prior[1]))
        numpyro.sample("obs", dist.Poisson(units * rate), obs=total)
    return rate


def negative_binomial_model(
    values: Any, arm: Any, weight: Any, *, num_arms: int, prior: Sequence[float] = (0.1, 0.1)
) -> Any:
    """Twin of :class:`bayesvae.models.NegativeBinomialABTest`: distinct ``(arm, value)``
    pairs ``(M,)`` weighted by their multiplicity."""
    values, weight = jnp.asarray(values), jnp.asarray(weight)
    index = jnp.asarray(arm).astype(jnp.int32)
    with numpyro.plate("arms", num_arms):
        mean = numpyro.sample("mean", dist.Gamma(prior[0], prior[1]))
        concentration = numpyro.sample("concentration", dist.LogNormal(*CONCENTRATION_PRIOR))
    c = concentration[..., index]
    with numpyro.plate("values", values.shape[0]), handlers.scale(scale=weight):
        numpyro.sample("obs", dist.GammaPoisson(c, c / mean[..., index]), obs=values)
    return mean


def _normal_sites(
    prior: Sequence[float], mean_obs: Any, ss_obs: Any, n: Any, prefix: str = ""
) -> tuple[Any, Any]:
    m0, k0, a0, b0 = prior
    variance = numpyro.sample(f"{prefix}variance", dist.InverseGamma(a0, b0))
    mean = numpyro.sample(f"{prefix}mean", dist.Normal(m0, jnp.sqrt(variance / k0)))
    numpyro.sample(f"obs_{prefix}mean", dist.Normal(mean, jnp.sqrt(variance / n)), obs=mean_obs)
    numpyro.sample(
        f"obs_{prefix}sum_squares", dist.Gamma((n - 1) / 2.0, 1.0 / (2.0 * variance)), obs=ss_obs
    )
    return mean, variance


def normal_model(
    mean: Any,
    sum_squares: Any,
    units: Any,
    *,
    prior: Sequence[float] = (0.0, 0.01, 1.0, 1.0),
) -> Any:
    """Twin of :class:`bayesvae.models.NormalABTest`: ``mean, sum_squares, units: (K,)``."""
    mean, sum_squares, units = (jnp.asarray(v) for v in (mean, sum_squares, units))
    with numpyro.plate("arms", mean.shape[0]):
        arm_mean, _ = _normal_sites(prior, mean, sum_squares, units)
    return arm_mean


def revenue_model(
    payers: Any,
    units: Any,
    log_mean: Any,
    log_sum_squares: Any,
    *,
    prior: Sequence[float] = (1.0, 1.0, 0.0, 0.01, 1.0, 1.0),
) -> Any:
    """Twin of :class:`bayesvae.models.RevenueABTest` (same sites, ``revenue_per_unit``
    deterministic)."""
    payers, units, log_mean, log_sum_squares = (
        jnp.asarray(v) for v in (payers, units, log_mean, log_sum_squares)
    )
    with numpyro.plate("arms", payers.shape[0]):
        pay_rate = numpyro.sample("pay_rate", dist.Beta(prior[0], prior[1]))
        numpyro.sample("obs_payers", dist.Binomial(total_count=units, probs=pay_rate), obs=payers)
        mean, variance = _normal_sites(prior[2:], log_mean, log_sum_squares, payers, "log_")
        revenue = numpyro.deterministic("revenue_per_unit", pay_rate * jnp.exp(mean + variance / 2))
    return revenue
