"""Beta-Binomial A/B/n testing: the Pyro model/guide, exact conjugate answers, and the decision
metrics computed from posterior draws.

Model: each arm ``k`` has a conversion rate ``rate_k ~ Beta(a, b)`` (or, hierarchical,
``mean ~ Beta(1, 1)``, ``concentration ~ Pareto(1, 1.5)``,
``rate_k ~ Beta(mean * concentration, (1 - mean) * concentration)``) and
``successes_k ~ Binomial(trials_k, rate_k)``.
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
from pyro.distributions import constraints

from bayesvae.models.base import PyroModel

__all__ = [
    "BetaBinomialABTest",
    "ArmCounts",
    "check_counts",
    "exact_prob_best",
    "exact_expected_loss",
    "exact_prob_greater",
    "marginal_prob_best",
    "marginal_expected_loss",
    "marginal_prob_greater",
    "beta_hdi",
    "marginal_hdi",
    "draws_hdi",
    "HIERARCHICAL_MEAN_PRIOR",
    "HIERARCHICAL_CONCENTRATION_PRIOR",
]

HIERARCHICAL_MEAN_PRIOR = (1.0, 1.0)  # Beta(1, 1) on the population mean rate
HIERARCHICAL_CONCENTRATION_PRIOR = (1.0, 1.5)  # Pareto(scale 1, alpha 1.5) on a + b


@dataclass(frozen=True)
class ArmCounts:
    """Validated counts: ``names`` (K,), ``successes`` (K,) and ``trials`` (K,) integers."""

    names: tuple[str, ...]
    successes: np.ndarray
    trials: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def check_counts(names: Sequence[str], successes: Any, trials: Any) -> ArmCounts:
    """Validate arm counts, raising ``ValueError``/``TypeError`` naming the arm and the problem."""
    names = tuple(str(n) for n in names)
    if len(names) < 2:
        raise ValueError(f"an A/B test needs at least two arms, got {len(names)}.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"arm names must be unique, got duplicates {duplicates}.")
    arrays = {}
    for label, values in (("successes", successes), ("trials", trials)):
        array = np.asarray(values)
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"{label} must be numbers, got {values!r}.")
        if array.shape != (len(names),):
            raise ValueError(
                f"{label} must have one entry per arm ({len(names)}), got shape {array.shape}."
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{label} must be finite, got {array.tolist()}.")
        if np.any(array != np.round(array)):
            bad = names[int(np.argmax(array != np.round(array)))]
            raise ValueError(f"{label} must be whole numbers; arm {bad!r} has {values!r}.")
        if np.any(array < 0):
            bad = names[int(np.argmax(array < 0))]
            raise ValueError(f"{label} must be non-negative; arm {bad!r} has {array.tolist()}.")
        arrays[label] = array.astype(np.int64)
    for name, s, n in zip(names, arrays["successes"], arrays["trials"], strict=True):
        if n == 0:
            raise ValueError(f"arm {name!r} has zero trials; every arm needs at least one.")
        if s > n:
            raise ValueError(f"arm {name!r} has more successes ({s}) than trials ({n}).")
    return ArmCounts(names, arrays["successes"], arrays["trials"])


def _check_prior(prior: Sequence[float]) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in prior)
    except (TypeError, ValueError):
        raise TypeError(f"prior must be two numbers (a, b), got {prior!r}.") from None
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"prior parameters must be positive and finite, got ({a}, {b}).")
    return a, b


class BetaBinomialABTest(PyroModel):
    """Beta-Binomial model of ``K >= 2`` arms as a Pyro model/guide pair.

    Args:
        arms: arm names, in order (e.g. ``["A", "B"]``).
        prior: ``(a, b)`` of the Beta prior on each arm's rate (non-hierarchical).
        hierarchical: share a prior across arms with hyperpriors on its mean and concentration
            (partial pooling; for many variants).

    ``model(successes, trials)`` and ``guide(successes, trials)`` take ``(K,)`` tensors. The
    guide is mean-field: a Beta per arm rate and, when hierarchical, a Beta for the mean and a
    shifted log-normal for the concentration.
    """

    max_plate_nesting = 1
    metric: ClassVar[str] = "conversion"
    #: the ``(K,)`` site a decision compares
    decision_site: ClassVar[str] = "rate"

    def __init__(
        self,
        arms: Sequence[str],
        *,
        prior: Sequence[float] = (1.0, 1.0),
        hierarchical: bool = False,
    ) -> None:
        names = [str(a) for a in arms]
        if len(names) < 2:
            raise ValueError(f"an A/B test needs at least two arms, got {names}.")
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}.")
        a, b = _check_prior(prior)
        if not isinstance(hierarchical, bool):
            raise TypeError(f"hierarchical must be True or False, got {hierarchical!r}.")
        super().__init__(dict(arms=names, prior=[a, b], hierarchical=hierarchical))
        self.arms, self.prior, self.hierarchical = names, (a, b), hierarchical

    @property
    def nuts_target_accept_prob(self) -> float:
        """NUTS target acceptance: the hierarchical posterior has a funnel (small steps)."""
        return 0.99 if self.hierarchical else 0.8

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

    def summary_data(self, summary: Any) -> tuple[np.ndarray, ...]:
        """The arrays :meth:`model` observes, from a
        :class:`~bayesvae.models.ab_metrics.MetricSummary`: ``(successes, trials)``."""
        return summary.total.astype(np.int64), summary.units

    def check_data(
        self, successes: Any, trials: Any = None, *rest: Any
    ) -> tuple[torch.Tensor, ...]:
        """Validate ``(K,)`` counts and return them as float tensors."""
        if trials is None or rest:
            raise ValueError("an A/B test takes exactly two arrays: successes and trials.")
        counts = check_counts(self.arms, successes, trials)
        return (
            torch.as_tensor(counts.successes, dtype=torch.float32),
            torch.as_tensor(counts.trials, dtype=torch.float32),
        )

    def arviz_dims(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Coordinates and dims for ArviZ: the ``rate`` and ``obs`` sites run over ``arm``."""
        return {"arm": list(self.arms)}, {"rate": ["arm"], "obs": ["arm"]}

    # ------------------------------------------------------------------------- exact answers
    def exact_posterior(self, counts: ArmCounts) -> tuple[np.ndarray, np.ndarray]:
        """Conjugate posterior ``Beta(a + s, b + n - s)`` per arm: ``(alpha, beta)``, each (K,).

        Only for the non-hierarchical model.
        """
        if self.hierarchical:
            raise ValueError(
                "the hierarchical model has no closed-form posterior; use method='mcmc' or 'svi'."
            )
        a, b = self.prior
        return a + counts.successes, b + counts.trials - counts.successes


# --------------------------------------------------------- exact metrics (1-D marginals)
def _support(marginals: Sequence[Any]) -> tuple[float, float]:
    lo = min(float(m.ppf(1e-15)) for m in marginals)
    hi = max(float(m.isf(1e-15)) for m in marginals)
    return lo, hi


def _quad(fn: Any, marginals: Sequence[Any]) -> float:
    """``∫ fn`` over the joint bulk of ``marginals`` (frozen scipy distributions), with the
    breakpoints that keep quadrature accurate where the densities are narrow."""
    from scipy import integrate

    lo, hi = _support(marginals)
    points = []
    for m in marginals:
        mean, sd = float(m.mean()), float(m.std())
        points += [float(m.median()), mean, mean - 3 * sd, mean + 3 * sd]
        points += [float(v) for v in m.ppf([1e-6, 0.01, 0.99, 1 - 1e-6])]
    inner = np.unique(np.clip(points, lo, hi))
    value, _ = integrate.quad(
        fn,
        lo,
        hi,
        points=inner[(inner > lo) & (inner < hi)],
        epsabs=1e-13,
        epsrel=1e-11,
        limit=500,
    )
    return float(value)


def marginal_prob_greater(marginals: Sequence[Any], i: int, j: int) -> float:
    """``P(theta_i > theta_j)`` for independent arms with 1-D posteriors ``marginals`` (frozen
    scipy distributions), by quadrature: ``∫ f_i F_j``."""
    pair = [marginals[i], marginals[j]]
    value = _quad(lambda x: float(pair[0].pdf(x) * pair[1].cdf(x)), pair)
    return min(max(value, 0.0), 1.0)  # quadrature may overshoot by ~1e-15


def marginal_prob_best(marginals: Sequence[Any]) -> np.ndarray:
    """``P(arm k has the highest value)``: ``∫ f_k Π_{j≠k} F_j`` by quadrature, (K,)."""
    out = np.empty(len(marginals))
    for k, own in enumerate(marginals):
        others = [m for j, m in enumerate(marginals) if j != k]

        def integrand(x: float, own: Any = own, others: list[Any] = others) -> float:
            return float(own.pdf(x) * np.prod([m.cdf(x) for m in others]))

        out[k] = _quad(integrand, marginals)
    return np.clip(out, 0.0, 1.0)


def marginal_expected_loss(marginals: Sequence[Any]) -> np.ndarray:
    """Expected loss of choosing arm k, ``E[max_j theta_j - theta_k]``, (K,):
    ``E[max] = lo + ∫ (1 - Π_j F_j(x)) dx`` by quadrature, minus the arm's mean."""
    lo, _ = _support(marginals)
    expected_max = lo + _quad(
        lambda x: 1.0 - float(np.prod([m.cdf(x) for m in marginals])), marginals
    )
    return np.maximum(expected_max - np.array([float(m.mean()) for m in marginals]), 0.0)


def _beta_marginals(alpha: np.ndarray, beta: np.ndarray) -> list[Any]:
    from scipy import stats

    return [stats.beta(a, b) for a, b in zip(alpha, beta, strict=True)]


def exact_prob_greater(alpha: np.ndarray, beta: np.ndarray, i: int, j: int) -> float:
    """``P(rate_i > rate_j)`` for independent Beta arms, by 1-D quadrature (no Monte Carlo)."""
    return marginal_prob_greater(_beta_marginals(alpha, beta), i, j)


def exact_prob_best(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``P(arm k has the highest rate)`` for independent Beta arms: ``∫ f_k Π_{j≠k} F_j``, (K,)."""
    return marginal_prob_best(_beta_marginals(alpha, beta))


def exact_expected_loss(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Expected loss of choosing arm k, ``E[max_j rate_j - rate_k]``, (K,), by quadrature."""
    return marginal_expected_loss(_beta_marginals(alpha, beta))


def marginal_hdi(marginal: Any, prob: float = 0.95) -> tuple[float, float]:
    """Shortest interval holding ``prob`` of a unimodal 1-D distribution (frozen scipy)."""
    from scipy import optimize

    def width(low_tail: float) -> float:
        return float(marginal.ppf(low_tail + prob) - marginal.ppf(low_tail))

    best = optimize.minimize_scalar(
        width, bounds=(0.0, 1.0 - prob), method="bounded", options={"xatol": 1e-10}
    )
    low_tail = float(best.x)
    return float(marginal.ppf(low_tail)), float(marginal.ppf(low_tail + prob))


def beta_hdi(alpha: float, beta: float, prob: float = 0.95) -> tuple[float, float]:
    """Shortest interval holding ``prob`` of ``Beta(alpha, beta)``."""
    from scipy import stats

    return marginal_hdi(stats.beta(alpha, beta), prob)


def draws_hdi(draws: np.ndarray, prob: float = 0.95) -> tuple[float, float]:
    """Shortest interval holding ``prob`` of the 1-D sample ``draws``."""
    ordered = np.sort(np.asarray(draws).ravel())
    n = len(ordered)
    span = max(int(math.floor(prob * n)), 1)
    widths = ordered[span:] - ordered[: n - span]
    start = int(np.argmin(widths))
    return float(ordered[start]), float(ordered[start + span])
