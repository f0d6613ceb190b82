"""NumPyro twin of :class:`bayesvae.models.BetaBinomialABTest` (same sites, same priors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayesvae.models.abtest import HIERARCHICAL_CONCENTRATION_PRIOR, HIERARCHICAL_MEAN_PRIOR

__all__ = ["beta_binomial_model"]


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
