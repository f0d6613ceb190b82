"""The Beta-Binomial A/B/n test as a Pyro model/guide pair (conversion rates).

Model: each arm ``k`` has a conversion rate ``rate_k ~ Beta(a, b)`` (or, hierarchical,
``mean ~ Beta(1, 1)``, ``concentration ~ Pareto(1, 1.5)``,
``rate_k ~ Beta(mean * concentration, (1 - mean) * concentration)``) and
``successes_k ~ Binomial(trials_k, rate_k)``. The conjugate posterior, the data checks and the
exact decision metrics are torch-free, in :mod:`bayesvae.models.ab_conjugate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from bayesvae.models.ab_conjugate import (
    HIERARCHICAL_CONCENTRATION_PRIOR,
    HIERARCHICAL_MEAN_PRIOR,
    BetaBinomialSpec,
)
from bayesvae.models.base import PyroModel

__all__ = ["BetaBinomialABTest"]


class SpecTensors:
    """Mixin of an A/B family's Pyro class: its spec's validated arrays (``check_data``) as
    tensors, the inputs of the Pyro program. List it first among the bases."""

    def check_data(self, *data: Any) -> tuple[torch.Tensor, ...]:
        """The spec's :meth:`check_data`, each array as a tensor of the same dtype."""
        arrays = super().check_data(*data)  # type: ignore[misc]
        return tuple(torch.as_tensor(array) for array in arrays)


class BetaBinomialABTest(SpecTensors, BetaBinomialSpec, PyroModel):
    """Beta-Binomial model of ``K >= 2`` arms as a Pyro model/guide pair.

    Args:
        arms: arm names, in order (e.g. ``["A", "B"]``).
        prior: ``(a, b)`` of the Beta prior on each arm's rate (non-hierarchical).
        hierarchical: share a prior across arms with hyperpriors on its mean and concentration
            (partial pooling; for many variants).

    ``model(successes, trials)`` and ``guide(successes, trials)`` take ``(K,)`` tensors. The
    guide is mean-field: a Beta per arm rate and, when hierarchical, a Beta for the mean and a
    shifted log-normal for the concentration. The exact posterior and what the model observes
    come from :class:`~bayesvae.models.ab_conjugate.BetaBinomialSpec`.
    """

    max_plate_nesting = 1

    def __init__(
        self,
        arms: Sequence[str],
        *,
        prior: Sequence[float] = (1.0, 1.0),
        hierarchical: bool = False,
    ) -> None:
        BetaBinomialSpec.__init__(self, arms, prior=prior, hierarchical=hierarchical)
        PyroModel.__init__(self, self.spec_config)

    @property
    def num_arms(self) -> int:
        return len(self.arms)

    # ------------------------------------------------------------------------------ program
    def model(
        self, successes: torch.Tensor, trials: torch.Tensor, *, num_data: int | None = None
    ) -> torch.Tensor:
        """``successes, trials: (K,)``; samples ``rate: (K,)`` (and the hyperparameters)."""
        zero = successes.new_zeros(())
        if self.hierarchical:
            mean = pyro.sample(
                "mean",
                dist.Beta(zero + HIERARCHICAL_MEAN_PRIOR[0], zero + HIERARCHICAL_MEAN_PRIOR[1]),
            )
            concentration = pyro.sample(
                "concentration",
                dist.Pareto(
                    zero + HIERARCHICAL_CONCENTRATION_PRIOR[0],
                    zero + HIERARCHICAL_CONCENTRATION_PRIOR[1],
                ),
            )
            a, b = mean * concentration, (1 - mean) * concentration
        else:
            a, b = zero + self.prior[0], zero + self.prior[1]
        with self.data_plate(successes, num_data, name="arms"):
            rate = pyro.sample("rate", dist.Beta(a, b))
            pyro.sample("obs", dist.Binomial(total_count=trials, probs=rate), obs=successes)
        return rate

    def guide(
        self, successes: torch.Tensor, trials: torch.Tensor, *, num_data: int | None = None
    ) -> None:
        """Mean-field guide; parameters live in Pyro's param store under ``self.pyro_name``."""
        name, ones = self.pyro_name, successes.new_ones(self.num_arms)
        if self.hierarchical:
            m_a = pyro.param(f"{name}.mean_alpha", ones[0] * 2, constraint=constraints.positive)
            m_b = pyro.param(f"{name}.mean_beta", ones[0] * 2, constraint=constraints.positive)
            pyro.sample("mean", dist.Beta(m_a, m_b))
            c_loc = pyro.param(f"{name}.concentration_loc", ones[0])
            c_scale = pyro.param(
                f"{name}.concentration_scale", ones[0] * 0.5, constraint=constraints.positive
            )
            shifted = dist.TransformedDistribution(
                dist.Normal(c_loc, c_scale),
                [dist.transforms.ExpTransform(), dist.transforms.AffineTransform(1.0, 1.0)],
            )
            pyro.sample("concentration", shifted)
        # Beta(mean * concentration, (1 - mean) * concentration), fitted on unconstrained scales.
        # It starts where a Laplace approximation of the likelihood would: mean at the observed
        # rate, concentration at the number of trials (the data's information); SVI then fits the
        # prior's contribution and the exact shape.
        logit_mean = pyro.param(
            f"{name}.rate_logit_mean", lambda: torch.logit((successes / trials).clamp(0.01, 0.99))
        )
        log_concentration = pyro.param(
            f"{name}.rate_log_concentration", lambda: trials.clamp(min=2.0).log()
        )
        mean, concentration = torch.sigmoid(logit_mean), log_concentration.exp()
        with self.data_plate(successes, num_data, name="arms"):
            pyro.sample("rate", dist.Beta(mean * concentration, (1 - mean) * concentration))
