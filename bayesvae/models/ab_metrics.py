"""A/B metrics beyond conversion: per-unit counts, continuous values and revenue, each a Pyro
model/guide pair over per-arm summaries, with its conjugate posterior where one exists.

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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints

from bayesvae.models.base import PyroModel

__all__ = [
    "MetricSummary",
    "summarize_metric",
    "GammaPoissonABTest",
    "NegativeBinomialABTest",
    "NormalABTest",
    "RevenueABTest",
    "DEFAULT_PRIORS",
    "CONCENTRATION_PRIOR",
    "check_metric_prior",
]

#: the log-normal prior on the negative binomial's concentration (variance = mean + mean²/c)
CONCENTRATION_PRIOR = (0.0, 2.0)

#: metric -> default ``prior=`` (see the module docstring for each number's meaning)
DEFAULT_PRIORS: dict[str, tuple[float, ...]] = {
    "conversion": (1.0, 1.0),
    "count": (0.1, 0.1),
    "continuous": (0.0, 0.01, 1.0, 1.0),
    "revenue": (1.0, 1.0, 0.0, 0.01, 1.0, 1.0),
}
_PRIOR_NAMES = {
    "conversion": "Beta (a, b)",
    "count": "Gamma (shape a, rate b)",
    "continuous": "Normal-Inverse-Gamma (m0, k0, a0, b0)",
    "revenue": "Beta (a, b) then Normal-Inverse-Gamma (m0, k0, a0, b0) on log values",
}


def check_metric_prior(metric: str, prior: Sequence[float] | None) -> tuple[float, ...]:
    """The metric's prior as floats (its default when ``None``); ``ValueError`` on a wrong
    length, a non-finite value or a scale that is not positive (only ``m0`` may be any real)."""
    if prior is None:
        return DEFAULT_PRIORS[metric]
    try:
        values = tuple(float(v) for v in prior)
    except (TypeError, ValueError):
        raise TypeError(f"prior must be a sequence of numbers, got {prior!r}.") from None
    expected = len(DEFAULT_PRIORS[metric])
    if len(values) != expected:
        raise ValueError(
            f"prior for metric={metric!r} takes {expected} numbers "
            f"({_PRIOR_NAMES[metric]}), got {len(values)}: {list(values)}."
        )
    real_positions = {"continuous": {0}, "revenue": {2}}.get(metric, set())
    for position, value in enumerate(values):
        if not math.isfinite(value) or (position not in real_positions and value <= 0):
            raise ValueError(
                f"prior for metric={metric!r} ({_PRIOR_NAMES[metric]}) needs finite values, "
                f"positive except the location; got {list(values)}."
            )
    return values


# ------------------------------------------------------------------------------ summaries
@dataclass(frozen=True)
class MetricSummary:
    """Per-arm sufficient statistics of one metric (every array ``(K,)`` unless noted).

    ``units``: units per arm. ``total``: sum of the values. ``mean``/``sum_squares``: the values'
    mean and sum of squared deviations (for revenue: of the log values of payers). ``payers``:
    units with a positive value (revenue). ``distinct_values``/``distinct_arm``/
    ``distinct_weight``: ``(M,)`` distinct ``(arm, value)`` pairs and their multiplicities
    (counts, for the negative binomial).
    """

    metric: str
    names: tuple[str, ...]
    units: np.ndarray
    total: np.ndarray
    mean: np.ndarray
    sum_squares: np.ndarray
    payers: np.ndarray
    distinct_values: np.ndarray
    distinct_arm: np.ndarray
    distinct_weight: np.ndarray

    def describe(self, k: int) -> str:
        """Arm ``k``'s data in a few characters (``"200/1000"``, ``"mean 3.1 of 1000"``)."""
        n = int(self.units[k])
        if self.metric == "conversion":
            return f"{int(self.total[k])}/{n}"
        if self.metric == "revenue":
            return f"{int(self.payers[k])}/{n} paid, {self.total[k] / n:.4g}/unit"
        return f"mean {self.total[k] / n:.4g} of {n}"


def summarize_metric(
    metric: str, names: Sequence[str], values: Sequence[np.ndarray]
) -> MetricSummary:
    """Per-unit ``values`` of each arm (a list of 1-D arrays, one per name) -> their summary.

    ``ValueError`` names the arm on empty, non-finite, negative (count, revenue), non-integer
    (count) or non-binary (conversion) values, and on arms too small to estimate a variance.
    """
    names = tuple(str(n) for n in names)
    if len(names) < 2:
        raise ValueError(f"an A/B test needs at least two arms, got {len(names)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {list(names)}.")
    if len(values) != len(names):
        raise ValueError(f"expected one array of values per arm ({len(names)}), got {len(values)}.")
    arrays = []
    for name, raw in zip(names, values, strict=True):
        array = np.asarray(raw)
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == bool
        ):
            raise TypeError(f"arm {name!r}: values must be numbers, got dtype {array.dtype}.")
        array = array.astype(np.float64).ravel()
        if array.size == 0:
            raise ValueError(f"arm {name!r} has no units.")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"arm {name!r} has {int((~np.isfinite(array)).sum())} NaN/inf values.")
        if metric in ("count", "revenue", "conversion") and np.any(array < 0):
            raise ValueError(f"arm {name!r}: {metric} values must be >= 0, found {array.min()}.")
        if metric == "count" and np.any(array != np.round(array)):
            raise ValueError(f"arm {name!r}: count values must be whole numbers.")
        if metric == "conversion" and not np.all(np.isin(array, (0.0, 1.0))):
            raise ValueError(f"arm {name!r}: conversion values must be 0 or 1.")
        arrays.append(array)
    k = len(names)
    units = np.array([a.size for a in arrays], dtype=np.int64)
    total = np.array([a.sum() for a in arrays])
    mean, sum_squares, payers = np.zeros(k), np.zeros(k), np.zeros(k, dtype=np.int64)
    for j, array in enumerate(arrays):
        if metric == "revenue":
            positive = np.log(array[array > 0])
            payers[j] = positive.size
            if positive.size < 2:
                raise ValueError(
                    f"arm {names[j]!r} has {positive.size} paying unit(s); the revenue metric "
                    "needs at least two to estimate the spread of payments."
                )
            mean[j], sum_squares[j] = positive.mean(), ((positive - positive.mean()) ** 2).sum()
        else:
            mean[j], sum_squares[j] = array.mean(), ((array - array.mean()) ** 2).sum()
            if metric == "continuous" and array.size < 2:
                raise ValueError(
                    f"arm {names[j]!r} needs at least two units to estimate a variance."
                )
    if metric in ("continuous", "revenue"):
        flat = [names[j] for j in range(k) if sum_squares[j] <= 0]
        if flat:
            what = "payments" if metric == "revenue" else "values"
            raise ValueError(
                f"arm(s) {flat}: every one of the {what} is the same, so the {metric} metric's "
                "variance cannot be estimated (for a fixed price, test the paying rate with "
                "metric='conversion')."
            )
    distinct = [np.unique(a, return_counts=True) for a in arrays] if metric == "count" else []
    return MetricSummary(
        metric=metric,
        names=names,
        units=units,
        total=total,
        mean=mean,
        sum_squares=sum_squares,
        payers=payers,
        distinct_values=np.concatenate([v for v, _ in distinct]) if distinct else np.zeros(0),
        distinct_arm=np.concatenate([np.full(v.size, j) for j, (v, _) in enumerate(distinct)])
        if distinct
        else np.zeros(0, dtype=np.int64),
        distinct_weight=np.concatenate([c for _, c in distinct]).astype(np.float64)
        if distinct
        else np.zeros(0),
    )


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


def _check_tensors(
    arms: Sequence[str], labels: Sequence[str], arrays: Sequence[Any]
) -> tuple[torch.Tensor, ...]:
    out = []
    for label, values in zip(labels, arrays, strict=True):
        array = np.asarray(values)
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"{label} must be numbers, got {values!r}.")
        if array.shape != (len(arms),):
            raise ValueError(
                f"{label} must have one entry per arm ({len(arms)}), got shape {array.shape}."
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{label} must be finite, got {array.tolist()}.")
        out.append(torch.as_tensor(array, dtype=torch.float64))
    return tuple(out)


class _MetricABTest:
    """Shared part of the metric models (a mixin before :class:`PyroModel`, so it is not a
    registered family itself): arm names, a prior and the ArviZ dims."""

    max_plate_nesting = 1
    metric: ClassVar[str] = ""
    #: the ``(K,)`` site a decision compares: the expected metric per unit in each arm
    decision_site: ClassVar[str] = "mean"

    def __init__(self, arms: Sequence[str], *, prior: Sequence[float] | None = None) -> None:
        names = [str(a) for a in arms]
        if len(names) < 2:
            raise ValueError(f"an A/B test needs at least two arms, got {names}.")
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}.")
        values = check_metric_prior(self.metric, prior)
        super().__init__(dict(arms=names, prior=list(values)))
        self.arms, self.prior = names, values

    def arviz_dims(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Every per-arm site runs over ``arm``."""
        return {"arm": list(self.arms)}, {site: ["arm"] for site in self.arm_sites}

    @property
    def arm_sites(self) -> tuple[str, ...]:
        """Sample sites with one value per arm (the ArviZ ``arm`` dim)."""
        return (self.decision_site,)


class GammaPoissonABTest(_MetricABTest, PyroModel):
    """Counts per unit, ``Poisson(rate_k)``, with ``rate_k ~ Gamma(a, b)``.

    ``model(total, units)`` (each ``(K,)``): the arm total is ``Poisson(units * rate)``, which is
    the per-unit likelihood up to a constant. Conjugate: ``Gamma(a + total, b + units)``.
    """

    metric = "count"
    decision_site = "rate"

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

    def summary_data(self, summary: MetricSummary) -> tuple[np.ndarray, ...]:
        """The arrays :meth:`model` observes: ``(total, units)``."""
        return summary.total, summary.units

    def check_data(self, total: Any, units: Any = None, *rest: Any) -> tuple[torch.Tensor, ...]:
        """``(K,)`` whole totals >= 0 and units >= 1."""
        if units is None or rest:
            raise ValueError("a count test takes exactly two arrays: total and units.")
        total_t, units_t = _check_tensors(self.arms, ("total", "units"), (total, units))
        if torch.any(total_t < 0) or torch.any(total_t != total_t.round()):
            raise ValueError(f"total must be whole numbers >= 0, got {total_t.tolist()}.")
        if torch.any(units_t < 1) or torch.any(units_t != units_t.round()):
            raise ValueError(f"units must be whole numbers >= 1, got {units_t.tolist()}.")
        return total_t, units_t

    def exact_marginals(self, summary: MetricSummary) -> list[Any]:
        """The conjugate posterior of each arm's rate (frozen scipy Gammas)."""
        from scipy import stats

        a, b = self.prior
        return [
            stats.gamma(a + t, scale=1.0 / (b + n))
            for t, n in zip(summary.total, summary.units, strict=True)
        ]


class NegativeBinomialABTest(_MetricABTest, PyroModel):
    """Overdispersed counts per unit: ``GammaPoisson(c_k, c_k / mean_k)``, variance
    ``mean + mean² / c``; ``mean_k ~ Gamma(a, b)``, ``concentration_k ~ LogNormal(0, 2)``.

    ``model(values, arm, weight)`` (each ``(M,)``): distinct ``(arm, value)`` pairs and how many
    units share them. No conjugate posterior: use MCMC or SVI.
    """

    metric = "count"

    @property
    def arm_sites(self) -> tuple[str, ...]:
        return ("mean", "concentration")

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

    def summary_data(self, summary: MetricSummary) -> tuple[np.ndarray, ...]:
        """The arrays :meth:`model` observes: ``(values, arm, weight)``, each ``(M,)``."""
        return summary.distinct_values, summary.distinct_arm, summary.distinct_weight

    def check_data(
        self, values: Any, arm: Any = None, weight: Any = None, *rest: Any
    ) -> tuple[torch.Tensor, ...]:
        """``(M,)`` whole values >= 0, arm indices in ``[0, K)`` and positive weights."""
        if arm is None or weight is None or rest:
            raise ValueError("a negative-binomial test takes three arrays: values, arm, weight.")
        tensors = []
        for label, array in (("values", values), ("arm", arm), ("weight", weight)):
            array = np.asarray(array)
            if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.number):
                raise ValueError(
                    f"{label} must be a non-empty 1-D numeric array, got shape {array.shape}."
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{label} must be finite.")
            tensors.append(torch.as_tensor(array, dtype=torch.float64))
        v, a, w = tensors
        if not (v.shape == a.shape == w.shape):
            raise ValueError(
                "values, arm and weight must have the same length, got "
                f"{tuple(v.shape)}, {tuple(a.shape)}, {tuple(w.shape)}."
            )
        if torch.any(v < 0) or torch.any(v != v.round()):
            raise ValueError("values must be whole numbers >= 0.")
        if torch.any(a < 0) or torch.any(a >= len(self.arms)) or torch.any(a != a.round()):
            raise ValueError(f"arm must hold arm indices 0..{len(self.arms) - 1}.")
        if torch.any(w <= 0):
            raise ValueError("weight must be positive.")
        return v, a, w


def _nig_posterior(
    prior: Sequence[float], n: np.ndarray, mean: np.ndarray, ss: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Normal-Inverse-Gamma update: ``(m_n, k_n, a_n, b_n)``, each (K,)."""
    m0, k0, a0, b0 = prior
    k_n = k0 + n
    m_n = (k0 * m0 + n * mean) / k_n
    a_n = a0 + n / 2.0
    b_n = b0 + ss / 2.0 + k0 * n * (mean - m0) ** 2 / (2.0 * k_n)
    return m_n, k_n, a_n, b_n


def _nig_draws(
    rng: np.random.Generator, posterior: tuple[np.ndarray, ...], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draws of ``(mean, variance)`` from a NIG posterior, each ``(size, K)``."""
    m_n, k_n, a_n, b_n = posterior
    variance = b_n / rng.gamma(a_n, 1.0, size=(size, len(m_n)))
    mean = rng.normal(m_n, np.sqrt(variance / k_n))
    return mean, variance


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


class NormalABTest(_MetricABTest, PyroModel):
    """A continuous metric: ``Normal(mean_k, sd_k)`` per unit with unknown variance and the
    conjugate Normal-Inverse-Gamma prior ``variance ~ InvGamma(a0, b0)``,
    ``mean ~ Normal(m0, sqrt(variance / k0))``.

    ``model(mean, sum_squares, units)`` (each ``(K,)``, ``units >= 2``). The marginal posterior
    of each arm's mean is a Student-t (exact).
    """

    metric = "continuous"

    @property
    def arm_sites(self) -> tuple[str, ...]:
        return ("mean", "variance")

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

    def summary_data(self, summary: MetricSummary) -> tuple[np.ndarray, ...]:
        """The arrays :meth:`model` observes: ``(mean, sum_squares, units)``."""
        return summary.mean, summary.sum_squares, summary.units

    def check_data(
        self, mean: Any, sum_squares: Any = None, units: Any = None, *rest: Any
    ) -> tuple[torch.Tensor, ...]:
        """``(K,)`` means, sums of squares >= 0 and units >= 2."""
        if sum_squares is None or units is None or rest:
            raise ValueError("a continuous test takes three arrays: mean, sum_squares, units.")
        m, ss, n = _check_tensors(
            self.arms, ("mean", "sum_squares", "units"), (mean, sum_squares, units)
        )
        if torch.any(ss < 0):
            raise ValueError(f"sum_squares must be >= 0, got {ss.tolist()}.")
        if torch.any(n < 2) or torch.any(n != n.round()):
            raise ValueError(f"units must be whole numbers >= 2, got {n.tolist()}.")
        return m, ss, n

    def exact_marginals(self, summary: MetricSummary) -> list[Any]:
        """Student-t marginal posterior of each arm's mean (frozen scipy distributions)."""
        from scipy import stats

        m_n, k_n, a_n, b_n = _nig_posterior(
            self.prior, summary.units, summary.mean, summary.sum_squares
        )
        return [
            stats.t(df=2 * a, loc=m, scale=math.sqrt(b / (a * k)))
            for m, k, a, b in zip(m_n, k_n, a_n, b_n, strict=True)
        ]

    def exact_draws(
        self, summary: MetricSummary, rng: np.random.Generator, size: int
    ) -> dict[str, np.ndarray]:
        """Draws of every arm site from the conjugate posterior, each ``(size, K)``."""
        posterior = _nig_posterior(self.prior, summary.units, summary.mean, summary.sum_squares)
        mean, variance = _nig_draws(rng, posterior, size)
        return {"mean": mean, "variance": variance}


class RevenueABTest(_MetricABTest, PyroModel):
    """Revenue per unit, the delta log-normal model: a unit pays with probability
    ``pay_rate_k ~ Beta(a, b)``; a payment is ``LogNormal(log_mean_k, sqrt(log_variance_k))``
    with the Normal-Inverse-Gamma prior on the log scale. The decision site
    ``revenue_per_unit = pay_rate * exp(log_mean + log_variance / 2)``.

    ``model(payers, units, log_mean, log_sum_squares)`` (each ``(K,)``, ``payers >= 2``).
    Conjugate in each part (Beta, NIG); the product has no closed form, so exact answers come
    from draws of the exact posterior.
    """

    metric = "revenue"
    decision_site = "revenue_per_unit"

    @property
    def arm_sites(self) -> tuple[str, ...]:
        return ("revenue_per_unit", "pay_rate", "log_mean", "log_variance")

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

    def summary_data(self, summary: MetricSummary) -> tuple[np.ndarray, ...]:
        """The arrays :meth:`model` observes: ``(payers, units, log_mean, log_sum_squares)``."""
        return summary.payers, summary.units, summary.mean, summary.sum_squares

    def check_data(
        self,
        payers: Any,
        units: Any = None,
        log_mean: Any = None,
        log_sum_squares: Any = None,
        *rest: Any,
    ) -> tuple[torch.Tensor, ...]:
        """``(K,)`` payers (2 <= payers <= units), log-scale means and sums of squares >= 0."""
        if units is None or log_mean is None or log_sum_squares is None or rest:
            raise ValueError(
                "a revenue test takes four arrays: payers, units, log_mean, log_sum_squares."
            )
        p, n, m, ss = _check_tensors(
            self.arms,
            ("payers", "units", "log_mean", "log_sum_squares"),
            (payers, units, log_mean, log_sum_squares),
        )
        if torch.any(p < 2) or torch.any(p > n) or torch.any(p != p.round()):
            raise ValueError(
                f"payers must be whole numbers with 2 <= payers <= units, got {p.tolist()}."
            )
        if torch.any(ss < 0):
            raise ValueError(f"log_sum_squares must be >= 0, got {ss.tolist()}.")
        return p, n, m, ss

    def exact_draws(
        self, summary: MetricSummary, rng: np.random.Generator, size: int
    ) -> dict[str, np.ndarray]:
        """Draws of every arm site from the conjugate parts, each ``(size, K)``."""
        a, b = self.prior[:2]
        pay_rate = rng.beta(
            a + summary.payers, b + summary.units - summary.payers, size=(size, len(self.arms))
        )
        posterior = _nig_posterior(
            self.prior[2:], summary.payers, summary.mean, summary.sum_squares
        )
        log_mean, log_variance = _nig_draws(rng, posterior, size)
        return {
            "revenue_per_unit": pay_rate * np.exp(log_mean + log_variance / 2),
            "pay_rate": pay_rate,
            "log_mean": log_mean,
            "log_variance": log_variance,
        }
