"""A/B metrics beyond conversion: per-unit counts, continuous values and revenue, each a Pyro
model/guide pair over per-arm summaries; the conjugate posteriors, the summaries and the priors
are torch-free, in :mod:`bayesvae.models.ab_conjugate`.

=================  ==============================  ====================================  ==========
metric             likelihood                      prior (``prior=`` order)              exact
=================  ==============================  ====================================  ==========
``count``          ``Poisson(rate_k)`` per unit    ``rate_k ~ Gamma(a, b)``              Gamma
``count`` (NB)     ``GammaPoisson`` (negative      ``mean_k ~ Gamma(a, b)``,             none
                   binomial) per unit              ``concentration_k ~ LogNormal(0, 2)``
``continuous``     ``Normal(mean_k, sd_k)``        ``variance_k ~ InvGamma(a0, b0)``,    NIG
                                                   ``mean_k ~ Normal(m0, sd_k/√k0)``
``revenue``        zero with ``1 - pay_rate_k``,   ``pay_rate_k ~ Beta(a, b)``, NIG on   Beta×NIG
                   else ``LogNormal``              the log values of payers
=================  ==============================  ====================================  ==========

Each model observes its arms' sufficient statistics (a Poisson total, a mean and a sum of squares,
payers), so its likelihood equals the per-unit one up to a constant and NUTS costs the same for 100
or 100,000 units. The negative binomial has no sufficient statistic: it observes each distinct
``(arm, value)`` pair once, weighted by how often it occurs (``poutine.scale``). Every model
records the quantity a decision compares as the site ``decision_site`` names (``(K,)``): the
expected metric per unit in each arm.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints

from bayesvae.models.ab_conjugate import (
    CONCENTRATION_PRIOR,
    ABModelSpec,
    BetaBinomialSpec,
    GammaPoissonSpec,
    NegativeBinomialSpec,
    NormalSpec,
    RevenueSpec,
)
from bayesvae.models.abtest import BetaBinomialABTest, SpecTensors
from bayesvae.models.base import PyroModel

__all__ = [
    "GammaPoissonABTest",
    "NegativeBinomialABTest",
    "NormalABTest",
    "RevenueABTest",
    "pyro_model",
]


# -------------------------------------------------------------------------- guide helpers
def _positive(name: str, prefix: str, init: torch.Tensor) -> torch.Tensor:
    """A log-normal guide site (inside the arms plate) starting at ``init`` (K,)."""
    loc = pyro.param(f"{prefix}.{name}_log_loc", lambda: init.clamp(min=1e-6).log())
    scale = pyro.param(
        f"{prefix}.{name}_log_scale",
        lambda: torch.full_like(init, 0.1),
        constraint=constraints.positive,
    )
    return pyro.sample(name, dist.LogNormal(loc, scale))


def _real(name: str, prefix: str, init: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """A normal guide site starting at ``init`` with scale ``spread`` (K,)."""
    loc = pyro.param(f"{prefix}.{name}_loc", lambda: init.clone())
    scale = pyro.param(
        f"{prefix}.{name}_scale", lambda: spread.clone(), constraint=constraints.positive
    )
    return pyro.sample(name, dist.Normal(loc, scale))


def _normal_model(
    prior: Sequence[float],
    mean_obs: torch.Tensor,
    ss_obs: torch.Tensor,
    n: torch.Tensor,
    *,
    prefix: str = "",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sites ``{prefix}variance`` and ``{prefix}mean`` (K,) and the observed sample mean and sum
    of squares (inside the caller's arms plate): the Normal likelihood's sufficient statistics
    (``mean_obs ~ Normal(mean, sd/√n)``, ``ss_obs / variance ~ χ²(n - 1)``)."""
    m0, k0, a0, b0 = (mean_obs.new_tensor(v) for v in prior)
    variance = pyro.sample(f"{prefix}variance", dist.InverseGamma(a0, b0))
    mean = pyro.sample(f"{prefix}mean", dist.Normal(m0, (variance / k0).sqrt()))
    pyro.sample(f"obs_{prefix}mean", dist.Normal(mean, (variance / n).sqrt()), obs=mean_obs)
    pyro.sample(
        f"obs_{prefix}sum_squares",
        dist.Gamma((n - 1) / 2.0, 1.0 / (2.0 * variance)),
        obs=ss_obs,
    )
    return mean, variance


def _normal_guide(
    name: str,
    mean_obs: torch.Tensor,
    ss_obs: torch.Tensor,
    n: torch.Tensor,
    *,
    prefix: str = "",
) -> None:
    sample_variance = (ss_obs / (n - 1)).clamp(min=1e-12)
    _positive(f"{prefix}variance", name, sample_variance)
    _real(f"{prefix}mean", name, mean_obs, (sample_variance / n).sqrt())


class GammaPoissonABTest(SpecTensors, GammaPoissonSpec, PyroModel):
    """Counts per unit, ``Poisson(rate_k)``, with ``rate_k ~ Gamma(a, b)``.

    ``model(total, units)`` (each ``(K,)``): the arm total is ``Poisson(units * rate)``, which is
    the per-unit likelihood up to a constant. Conjugate: ``Gamma(a + total, b + units)``.
    """

    max_plate_nesting = 1

    def __init__(self, arms: Sequence[str], *, prior: Sequence[float] | None = None) -> None:
        GammaPoissonSpec.__init__(self, arms, prior=prior)
        PyroModel.__init__(self, self.spec_config)

    def model(
        self, total: torch.Tensor, units: torch.Tensor, *, num_data: int | None = None
    ) -> torch.Tensor:
        a, b = (total.new_tensor(v) for v in self.prior)
        with self.data_plate(total, num_data, name="arms"):
            rate = pyro.sample("rate", dist.Gamma(a, b))
            pyro.sample("obs", dist.Poisson(units * rate), obs=total)
        return rate

    def guide(
        self, total: torch.Tensor, units: torch.Tensor, *, num_data: int | None = None
    ) -> None:
        with self.data_plate(total, num_data, name="arms"):
            _positive("rate", self.pyro_name, (total + 0.5) / units)


class NegativeBinomialABTest(SpecTensors, NegativeBinomialSpec, PyroModel):
    """Overdispersed counts per unit: ``GammaPoisson(c_k, c_k / mean_k)``, variance
    ``mean + mean² / c``; ``mean_k ~ Gamma(a, b)``, ``concentration_k ~ LogNormal(0, 2)``.

    ``model(values, arm, weight)`` (each ``(M,)``): distinct ``(arm, value)`` pairs and how many
    units share them. No conjugate posterior: use MCMC or SVI.
    """

    max_plate_nesting = 1

    def __init__(self, arms: Sequence[str], *, prior: Sequence[float] | None = None) -> None:
        NegativeBinomialSpec.__init__(self, arms, prior=prior)
        PyroModel.__init__(self, self.spec_config)

    def model(
        self,
        values: torch.Tensor,
        arm: torch.Tensor,
        weight: torch.Tensor,
        *,
        num_data: int | None = None,
    ) -> torch.Tensor:
        a, b = (values.new_tensor(v) for v in self.prior)
        with pyro.plate("arms", len(self.arms)):
            mean = pyro.sample("mean", dist.Gamma(a, b))
            concentration = pyro.sample(
                "concentration",
                dist.LogNormal(values.new_tensor(CONCENTRATION_PRIOR[0]), CONCENTRATION_PRIOR[1]),
            )
        index = arm.long()
        c = concentration[..., index]
        with self.data_plate(values, num_data, name="values"), poutine.scale(scale=weight):
            pyro.sample("obs", dist.GammaPoisson(c, c / mean[..., index]), obs=values)
        return mean

    def guide(
        self,
        values: torch.Tensor,
        arm: torch.Tensor,
        weight: torch.Tensor,
        *,
        num_data: int | None = None,
    ) -> None:
        index = arm.long()
        k = len(self.arms)
        units = torch.zeros(k, dtype=values.dtype).index_add_(0, index, weight)
        sums = torch.zeros(k, dtype=values.dtype).index_add_(0, index, weight * values)
        mean = (sums + 0.5) / units
        squares = torch.zeros(k, dtype=values.dtype).index_add_(
            0, index, weight * (values - mean[index]) ** 2
        )
        variance = squares / units
        # method of moments: c = mean² / (variance - mean), floored where counts look Poisson
        concentration = (mean**2 / (variance - mean).clamp(min=1e-3 * mean)).clamp(0.01, 1e4)
        with pyro.plate("arms", k):
            _positive("mean", self.pyro_name, mean)
            _positive("concentration", self.pyro_name, concentration)


class NormalABTest(SpecTensors, NormalSpec, PyroModel):
    """A continuous metric: ``Normal(mean_k, sd_k)`` per unit with unknown variance and the
    conjugate Normal-Inverse-Gamma prior ``variance ~ InvGamma(a0, b0)``,
    ``mean ~ Normal(m0, sqrt(variance / k0))``.

    ``model(mean, sum_squares, units)`` (each ``(K,)``, ``units >= 2``). The marginal posterior
    of each arm's mean is a Student-t (exact).
    """

    max_plate_nesting = 1

    def __init__(self, arms: Sequence[str], *, prior: Sequence[float] | None = None) -> None:
        NormalSpec.__init__(self, arms, prior=prior)
        PyroModel.__init__(self, self.spec_config)

    def model(
        self,
        mean: torch.Tensor,
        sum_squares: torch.Tensor,
        units: torch.Tensor,
        *,
        num_data: int | None = None,
    ) -> torch.Tensor:
        with self.data_plate(mean, num_data, name="arms"):
            arm_mean, _ = _normal_model(self.prior, mean, sum_squares, units)
        return arm_mean

    def guide(
        self,
        mean: torch.Tensor,
        sum_squares: torch.Tensor,
        units: torch.Tensor,
        *,
        num_data: int | None = None,
    ) -> None:
        with self.data_plate(mean, num_data, name="arms"):
            _normal_guide(self.pyro_name, mean, sum_squares, units)


class RevenueABTest(SpecTensors, RevenueSpec, PyroModel):
    """Revenue per unit, the delta log-normal model: a unit pays with probability
    ``pay_rate_k ~ Beta(a, b)``; a payment is ``LogNormal(log_mean_k, sqrt(log_variance_k))``
    with the Normal-Inverse-Gamma prior on the log scale. The decision site
    ``revenue_per_unit = pay_rate * exp(log_mean + log_variance / 2)``.

    ``model(payers, units, log_mean, log_sum_squares)`` (each ``(K,)``, ``payers >= 2``).
    Conjugate in each part (Beta, NIG); the product has no closed form, so exact answers come
    from draws of the exact posterior.
    """

    max_plate_nesting = 1

    def __init__(self, arms: Sequence[str], *, prior: Sequence[float] | None = None) -> None:
        RevenueSpec.__init__(self, arms, prior=prior)
        PyroModel.__init__(self, self.spec_config)

    def model(
        self,
        payers: torch.Tensor,
        units: torch.Tensor,
        log_mean: torch.Tensor,
        log_sum_squares: torch.Tensor,
        *,
        num_data: int | None = None,
    ) -> torch.Tensor:
        a, b = (payers.new_tensor(v) for v in self.prior[:2])
        with self.data_plate(payers, num_data, name="arms"):
            pay_rate = pyro.sample("pay_rate", dist.Beta(a, b))
            pyro.sample("obs_payers", dist.Binomial(total_count=units, probs=pay_rate), obs=payers)
            mean, variance = _normal_model(
                self.prior[2:], log_mean, log_sum_squares, payers, prefix="log_"
            )
            revenue = pay_rate * (mean + variance / 2).exp()
            pyro.deterministic("revenue_per_unit", revenue)
        return revenue

    def guide(
        self,
        payers: torch.Tensor,
        units: torch.Tensor,
        log_mean: torch.Tensor,
        log_sum_squares: torch.Tensor,
        *,
        num_data: int | None = None,
    ) -> None:
        prefix = self.pyro_name
        with self.data_plate(payers, num_data, name="arms"):
            rate = (payers + 0.5) / (units + 1.0)
            alpha = pyro.param(
                f"{prefix}.pay_rate_alpha", lambda: rate * units, constraint=constraints.positive
            )
            beta = pyro.param(
                f"{prefix}.pay_rate_beta",
                lambda: (1 - rate) * units,
                constraint=constraints.positive,
            )
            pyro.sample("pay_rate", dist.Beta(alpha, beta))
            _normal_guide(prefix, log_mean, log_sum_squares, payers, prefix="log_")


def pyro_model(spec: ABModelSpec) -> PyroModel:
    """The Pyro model/guide pair of an A/B family described by ``spec`` (same arms and
    prior), for MCMC or SVI."""
    classes: dict[type, type] = {
        BetaBinomialSpec: BetaBinomialABTest,
        GammaPoissonSpec: GammaPoissonABTest,
        NegativeBinomialSpec: NegativeBinomialABTest,
        NormalSpec: NormalABTest,
        RevenueSpec: RevenueABTest,
    }
    return classes[type(spec)](**spec.spec_config)
