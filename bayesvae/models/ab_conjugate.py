"""The torch-free half of the A/B families: validated data, per-arm summaries, priors, and each
family's conjugate posterior with the decision metrics computed exactly from it.

Each family is described here by a small class (``BetaBinomialSpec``, ``GammaPoissonSpec``,
``NegativeBinomialSpec``, ``NormalSpec``, ``RevenueSpec``): its arms and prior, the metric it
measures, the site a decision compares, the arrays its Pyro model observes and, where one exists,
the exact posterior (:meth:`ABModelSpec.exact_posterior`). The Pyro model/guide pairs in
:mod:`bayesvae.models.abtest` and :mod:`bayesvae.models.ab_metrics` extend these classes with
``model``/``guide``. This module needs numpy and scipy only, so the exact path of an A/B test
(``method="exact"``) never imports torch or Pyro.

Beta-Binomial model: each arm ``k`` has a conversion rate ``rate_k ~ Beta(a, b)`` (or,
hierarchical, ``mean ~ Beta(1, 1)``, ``concentration ~ Pareto(1, 1.5)``,
``rate_k ~ Beta(mean * concentration, (1 - mean) * concentration)``) and
``successes_k ~ Binomial(trials_k, rate_k)``. The other metrics' models are tabulated in
:mod:`bayesvae.models.ab_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bayesvae.models.contract import ModelContract

__all__ = [
    "ABModelSpec",
    "BetaBinomialSpec",
    "GammaPoissonSpec",
    "NegativeBinomialSpec",
    "NormalSpec",
    "RevenueSpec",
    "ExactPosterior",
    "ArmCounts",
    "check_counts",
    "check_arm_arrays",
    "check_arm_names",
    "check_beta_prior",
    "MetricSummary",
    "summarize_metric",
    "check_metric_prior",
    "DEFAULT_PRIORS",
    "CONCENTRATION_PRIOR",
    "HIERARCHICAL_MEAN_PRIOR",
    "HIERARCHICAL_CONCENTRATION_PRIOR",
    "exact_prob_best",
    "exact_expected_loss",
    "exact_prob_greater",
    "marginal_prob_best",
    "marginal_expected_loss",
    "marginal_prob_greater",
    "beta_hdi",
    "marginal_hdi",
    "draws_hdi",
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
    given = (successes, trials)
    checked = check_arm_arrays(names, ("successes", "trials"), given)
    for label, values, array in zip(("successes", "trials"), given, checked, strict=True):
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


def check_beta_prior(prior: Sequence[float]) -> tuple[float, float]:
    """``(a, b)`` of a Beta prior as floats; ``TypeError``/``ValueError`` otherwise."""
    try:
        a, b = (float(v) for v in prior)
    except (TypeError, ValueError):
        raise TypeError(f"prior must be two numbers (a, b), got {prior!r}.") from None
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"prior parameters must be positive and finite, got ({a}, {b}).")
    return a, b


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


# --------------------------------------------------------- exact metrics (1-D marginals)
def _support(marginals: Sequence[Any]) -> tuple[float, float]:
    lo = min(float(m.ppf(1e-15)) for m in marginals)
    hi = max(float(m.isf(1e-15)) for m in marginals)
    return lo, hi


def _quad(fn: Any, marginals: Sequence[Any]) -> float:
    """``∫ fn`` over the joint bulk of ``marginals`` (frozen scipy distributions). ``fn`` is
    elementwise on arrays. The bulk is cut at breakpoints (each marginal's median, mean, mean ±
    3 sd and tail quantiles) where the densities are narrow, and every piece is integrated at
    once by vectorized tanh-sinh quadrature (``scipy.integrate.tanhsinh``, about 20x faster than
    calling ``quad`` point by point); a piece that does not converge goes to adaptive ``quad``."""
    from scipy import integrate

    lo, hi = _support(marginals)
    points = [lo, hi]
    for m in marginals:
        mean, sd = float(m.mean()), float(m.std())
        points += [float(m.median()), mean, mean - 3 * sd, mean + 3 * sd]
        points += [float(v) for v in m.ppf([1e-6, 0.01, 0.99, 1 - 1e-6])]
    edges = np.unique(np.clip(points, lo, hi))
    pieces = integrate.tanhsinh(fn, edges[:-1], edges[1:], atol=1e-14, rtol=1e-12)
    values = np.array(pieces.integral, dtype=np.float64, ndmin=1)
    for index in np.flatnonzero(~np.array(pieces.success, ndmin=1)):
        values[index] = integrate.quad(
            lambda x: float(fn(x)), edges[index], edges[index + 1], epsabs=1e-14, limit=500
        )[0]
    return float(values.sum())


def _cdf_product(marginals: Sequence[Any], x: np.ndarray) -> np.ndarray:
    """``Π_j F_j(x)`` elementwise (1 for no marginals)."""
    out = np.ones_like(x, dtype=np.float64)
    for m in marginals:
        out = out * m.cdf(x)
    return out


def marginal_prob_greater(marginals: Sequence[Any], i: int, j: int) -> float:
    """``P(theta_i > theta_j)`` for independent arms with 1-D posteriors ``marginals`` (frozen
    scipy distributions), by quadrature: ``∫ f_i F_j``."""
    pair = [marginals[i], marginals[j]]
    value = _quad(lambda x: pair[0].pdf(x) * pair[1].cdf(x), pair)
    return min(max(value, 0.0), 1.0)  # quadrature may overshoot by ~1e-15


def marginal_prob_best(marginals: Sequence[Any]) -> np.ndarray:
    """``P(arm k has the highest value)``: ``∫ f_k Π_{j≠k} F_j`` by quadrature, (K,)."""
    out = np.empty(len(marginals))
    for k, own in enumerate(marginals):
        others = [m for j, m in enumerate(marginals) if j != k]

        def integrand(x: np.ndarray, own: Any = own, others: list[Any] = others) -> np.ndarray:
            return own.pdf(x) * _cdf_product(others, x)

        out[k] = _quad(integrand, marginals)
    return np.clip(out, 0.0, 1.0)


def marginal_expected_loss(marginals: Sequence[Any]) -> np.ndarray:
    """Expected loss of choosing arm k, ``E[max_j theta_j - theta_k]``, (K,):
    ``E[max] = lo + ∫ (1 - Π_j F_j(x)) dx`` by quadrature, minus the arm's mean."""
    lo, _ = _support(marginals)
    expected_max = lo + _quad(lambda x: 1.0 - _cdf_product(marginals, x), marginals)
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


def check_arm_arrays(
    arms: Sequence[str], labels: Sequence[str], arrays: Sequence[Any]
) -> tuple[np.ndarray, ...]:
    """Each of ``arrays`` as a finite float64 ``(K,)`` array, one entry per arm (``TypeError``
    for non-numbers, ``ValueError`` for a wrong shape or NaN/inf, naming ``labels[i]``)."""
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
        out.append(array.astype(np.float64))
    return tuple(out)


def _whole(array: np.ndarray) -> bool:
    return bool(np.all(array == np.round(array)))


def check_arm_names(arms: Sequence[str]) -> list[str]:
    """Arm names as strings: at least two, all different (``ValueError`` otherwise)."""
    names = [str(a) for a in arms]
    if len(names) < 2:
        raise ValueError(f"an A/B test needs at least two arms, got {names}.")
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}.")
    return names


# ------------------------------------------------------------------- the families, torch-free
@dataclass
class ExactPosterior:
    """A family's conjugate posterior for one data set.

    ``draws``: the decision quantity (the expected metric per unit of each arm) ``(S, K)``;
    ``sites``: draws of every per-arm site ``(S, K)`` (for ArviZ); ``marginals``: the decision
    quantity's exact 1-D posterior per arm (frozen scipy distributions), or ``None`` when it has
    no closed form and summaries come from the draws; ``description``: the posterior in words;
    ``parameters``: named posterior parameters (``alpha``/``beta`` for conversion), each (K,).
    """

    draws: np.ndarray
    sites: dict[str, np.ndarray]
    marginals: list[Any] | None
    description: str
    parameters: dict[str, np.ndarray] = field(default_factory=dict)


class ABModelSpec(ModelContract):
    """What an A/B family is, apart from its Pyro program: arms, prior, the metric measured, the
    ``(K,)`` site a decision compares (``decision_site``), the arrays the model observes
    (:meth:`summary_data`) and, where conjugate, the exact posterior. Subclasses set
    ``metric``, ``decision_site``, ``likelihood`` (the model in words) and ``has_exact``.

    A spec is the torch-free half of its family's :class:`~bayesvae.models.contract.ModelContract`:
    ``family`` (the Pyro class it describes), :meth:`check_data` (validated NumPy arrays) and
    :meth:`arviz_dims`, so ``bayesvae.mcmc(spec, *data)`` samples the family's NumPyro twin
    without importing torch or Pyro."""

    metric: ClassVar[str] = ""
    #: the ``(K,)`` site a decision compares: the expected metric per unit in each arm
    decision_site: ClassVar[str] = "mean"
    likelihood: ClassVar[str] = ""
    #: whether :meth:`exact_posterior` exists (a conjugate posterior)
    has_exact: ClassVar[bool] = True
    #: how :meth:`exact_posterior` gets the posterior, in words
    exact_description: ClassVar[str] = ""

    def __init__(self, arms: Sequence[str], *, prior: Sequence[float] | None = None) -> None:
        self.arms = check_arm_names(arms)
        self.prior = check_metric_prior(self.metric, prior)

    @property
    def spec_config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this family."""
        return {"arms": list(self.arms), "prior": list(self.prior)}

    @property
    def arm_sites(self) -> tuple[str, ...]:
        """Sample sites with one value per arm (the ArviZ ``arm`` dim)."""
        return (self.decision_site,)

    def arviz_dims(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Coordinates and dims for ArviZ: every per-arm site runs over ``arm``."""
        return {"arm": list(self.arms)}, {site: ["arm"] for site in self.arm_sites}

    def summary_data(self, summary: MetricSummary) -> tuple[np.ndarray, ...]:
        """The arrays the Pyro model observes, from a :class:`MetricSummary`."""
        raise NotImplementedError

    def exact_marginals(self, summary: MetricSummary) -> list[Any] | None:
        """The decision quantity's exact 1-D posterior per arm (frozen scipy distributions), or
        ``None`` when it has no closed form."""
        return None

    def exact_draws(
        self, summary: MetricSummary, rng: np.random.Generator, size: int
    ) -> dict[str, np.ndarray]:
        """Draws of every arm site from the conjugate posterior, each ``(size, K)``."""
        raise self._no_exact()

    def exact_parameters(self, summary: MetricSummary) -> dict[str, np.ndarray]:
        """Named parameters of the conjugate posterior (none by default)."""
        return {}

    def exact_posterior(
        self, summary: MetricSummary, rng: np.random.Generator, size: int
    ) -> ExactPosterior:
        """The conjugate posterior of ``summary``'s arms, ``size`` draws from ``rng``."""
        if not self.has_exact:
            raise self._no_exact()
        sites = self.exact_draws(summary, rng, size)
        return ExactPosterior(
            draws=sites[self.decision_site],
            sites=sites,
            marginals=self.exact_marginals(summary),
            description=self.exact_description,
            parameters=self.exact_parameters(summary),
        )

    def _no_exact(self) -> ValueError:
        return ValueError(
            f"the {self.likelihood} model has no closed-form posterior; use method='mcmc' or 'svi'."
        )


class BetaBinomialSpec(ABModelSpec):
    """Conversion: ``successes_k ~ Binomial(trials_k, rate_k)``, ``rate_k ~ Beta(a, b)`` (or the
    hierarchical prior, which has no closed form). Observes ``(successes, trials)``."""

    family = "BetaBinomialABTest"
    metric = "conversion"
    decision_site = "rate"
    exact_description = "Beta(a + s, b + n - s) per arm"

    def __init__(
        self,
        arms: Sequence[str],
        *,
        prior: Sequence[float] = (1.0, 1.0),
        hierarchical: bool = False,
    ) -> None:
        self.arms = check_arm_names(arms)
        self.prior = check_beta_prior(prior)
        if not isinstance(hierarchical, bool):
            raise TypeError(f"hierarchical must be True or False, got {hierarchical!r}.")
        self.hierarchical = hierarchical

    @property
    def spec_config(self) -> dict[str, Any]:
        return {**super().spec_config, "hierarchical": self.hierarchical}

    @property
    def likelihood(self) -> str:  # type: ignore[override]
        return "Beta-Binomial" + (", hierarchical" if self.hierarchical else "")

    @property
    def nuts_target_accept_prob(self) -> float:  # type: ignore[override]
        """NUTS target acceptance: the hierarchical posterior has a funnel (small steps)."""
        return 0.99 if self.hierarchical else 0.8

    def check_data(
        self, successes: Any, trials: Any = None, *rest: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validate ``(K,)`` counts (whole, ``0 <= successes <= trials``, ``trials >= 1``);
        return them as float32 arrays."""
        if trials is None or rest:
            raise ValueError("an A/B test takes exactly two arrays: successes and trials.")
        counts = check_counts(self.arms, successes, trials)
        return counts.successes.astype(np.float32), counts.trials.astype(np.float32)

    @property
    def has_exact(self) -> bool:  # type: ignore[override]
        return not self.hierarchical

    def arviz_dims(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """The ``rate`` and ``obs`` sites run over ``arm``."""
        return {"arm": list(self.arms)}, {"rate": ["arm"], "obs": ["arm"]}

    def summary_data(self, summary: MetricSummary) -> tuple[np.ndarray, ...]:
        """``(successes, trials)``, each (K,)."""
        return summary.total.astype(np.int64), summary.units

    def exact_parameters(self, summary: MetricSummary) -> dict[str, np.ndarray]:
        """The conjugate ``Beta(a + s, b + n - s)`` per arm: ``alpha``, ``beta``, each (K,)."""
        if self.hierarchical:
            raise self._no_exact()
        a, b = self.prior
        successes = summary.total.astype(np.int64)
        return {"alpha": a + successes, "beta": b + summary.units - successes}

    def exact_marginals(self, summary: MetricSummary) -> list[Any]:
        """Each arm's ``Beta`` posterior (frozen scipy distributions)."""
        parameters = self.exact_parameters(summary)
        return _beta_marginals(parameters["alpha"], parameters["beta"])

    def exact_draws(
        self, summary: MetricSummary, rng: np.random.Generator, size: int
    ) -> dict[str, np.ndarray]:
        parameters = self.exact_parameters(summary)
        alpha, beta = parameters["alpha"], parameters["beta"]
        return {"rate": rng.beta(alpha, beta, size=(size, len(alpha)))}


class GammaPoissonSpec(ABModelSpec):
    """Counts per unit, ``Poisson(rate_k)``, ``rate_k ~ Gamma(a, b)``; observes
    ``(total, units)``. Conjugate: ``Gamma(a + total, b + units)``."""

    family = "GammaPoissonABTest"
    metric = "count"
    decision_site = "rate"
    likelihood = "Gamma-Poisson"
    exact_description = "Gamma(a + total, b + units) per arm"

    def check_data(
        self, total: Any, units: Any = None, *rest: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(K,)`` whole totals >= 0 and units >= 1, as float64 arrays."""
        if units is None or rest:
            raise ValueError("a count test takes exactly two arrays: total and units.")
        total, units = check_arm_arrays(self.arms, ("total", "units"), (total, units))
        if np.any(total < 0) or not _whole(total):
            raise ValueError(f"total must be whole numbers >= 0, got {total.tolist()}.")
        if np.any(units < 1) or not _whole(units):
            raise ValueError(f"units must be whole numbers >= 1, got {units.tolist()}.")
        return total, units

    def summary_data(self, summary: MetricSummary) -> tuple[np.ndarray, ...]:
        """``(total, units)``, each (K,)."""
        return summary.total, summary.units

    def exact_marginals(self, summary: MetricSummary) -> list[Any]:
        """The conjugate posterior of each arm's rate (frozen scipy Gammas)."""
        from scipy import stats

        a, b = self.prior
        return [
            stats.gamma(a + t, scale=1.0 / (b + n))
            for t, n in zip(summary.total, summary.units, strict=True)
        ]

    def exact_draws(
        self, summary: MetricSummary, rng: np.random.Generator, size: int
    ) -> dict[str, np.ndarray]:
        marginals = self.exact_marginals(summary)
        return {"rate": np.column_stack([m.rvs(size=size, random_state=rng) for m in marginals])}


class NegativeBinomialSpec(ABModelSpec):
    """Overdispersed counts per unit: ``GammaPoisson(c_k, c_k / mean_k)``; observes each
    distinct ``(arm, value)`` pair with its multiplicity. No conjugate posterior."""

    family = "NegativeBinomialABTest"
    metric = "count"
    likelihood = "negative binomial (Gamma-Poisson mixture per unit)"
    has_exact = False

    @property
    def arm_sites(self) -> tuple[str, ...]:
        return ("mean", "concentration")

    def check_data(
        self, values: Any, arm: Any = None, weight: Any = None, *rest: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(M,)`` whole values >= 0, arm indices in ``[0, K)`` and positive weights, as
        float64 arrays."""
        if arm is None or weight is None or rest:
            raise ValueError("a negative-binomial test takes three arrays: values, arm, weight.")
        checked = []
        for label, given in (("values", values), ("arm", arm), ("weight", weight)):
            array = np.asarray(given)
            if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.number):
                raise ValueError(
                    f"{label} must be a non-empty 1-D numeric array, got shape {array.shape}."
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{label} must be finite.")
            checked.append(array.astype(np.float64))
        v, a, w = checked
        if not (v.shape == a.shape == w.shape):
            raise ValueError(
                f"values, arm and weight must have the same length, got {v.shape}, {a.shape}, "
                f"{w.shape}."
            )
        if np.any(v < 0) or not _whole(v):
            raise ValueError("values must be whole numbers >= 0.")
        if np.any(a < 0) or np.any(a >= len(self.arms)) or not _whole(a):
            raise ValueError(f"arm must hold arm indices 0..{len(self.arms) - 1}.")
        if np.any(w <= 0):
            raise ValueError("weight must be positive.")
        return v, a, w

    def summary_data(self, summary: MetricSummary) -> tuple[np.ndarray, ...]:
        """``(values, arm, weight)``, each ``(M,)``."""
        return summary.distinct_values, summary.distinct_arm, summary.distinct_weight


class NormalSpec(ABModelSpec):
    """A continuous metric, ``Normal(mean_k, sd_k)`` per unit with the Normal-Inverse-Gamma
    prior; observes ``(mean, sum_squares, units)``. Each arm mean's posterior is a Student-t."""

    family = "NormalABTest"
    metric = "continuous"
    likelihood = "Normal with unknown variance (Normal-Inverse-Gamma prior)"
    exact_description = "Normal-Inverse-Gamma per arm (Student-t marginal of the mean)"

    @property
    def arm_sites(self) -> tuple[str, ...]:
        return ("mean", "variance")

    def check_data(
        self, mean: Any, sum_squares: Any = None, units: Any = None, *rest: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(K,)`` means, sums of squares >= 0 and units >= 2, as float64 arrays."""
        if sum_squares is None or units is None or rest:
            raise ValueError("a continuous test takes three arrays: mean, sum_squares, units.")
        m, ss, n = check_arm_arrays(
            self.arms, ("mean", "sum_squares", "units"), (mean, sum_squares, units)
        )
        if np.any(ss < 0):
            raise ValueError(f"sum_squares must be >= 0, got {ss.tolist()}.")
        if np.any(n < 2) or not _whole(n):
            raise ValueError(f"units must be whole numbers >= 2, got {n.tolist()}.")
        return m, ss, n

    def summary_data(self, summary: MetricSummary) -> tuple[np.ndarray, ...]:
        """``(mean, sum_squares, units)``, each (K,)."""
        return summary.mean, summary.sum_squares, summary.units

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
        posterior = _nig_posterior(self.prior, summary.units, summary.mean, summary.sum_squares)
        mean, variance = _nig_draws(rng, posterior, size)
        return {"mean": mean, "variance": variance}


class RevenueSpec(ABModelSpec):
    """Revenue per unit, the delta log-normal model: ``pay_rate_k ~ Beta(a, b)``, payments
    log-normal with the Normal-Inverse-Gamma prior on the log scale; observes
    ``(payers, units, log_mean, log_sum_squares)``. Conjugate in each part; the product
    ``revenue_per_unit`` has no closed form, so summaries come from exact draws."""

    family = "RevenueABTest"
    metric = "revenue"
    decision_site = "revenue_per_unit"
    likelihood = "delta log-normal (Beta paying rate x log-normal payments)"
    exact_description = (
        "Beta paying rate x Normal-Inverse-Gamma log payments per arm; summaries from draws"
    )

    @property
    def arm_sites(self) -> tuple[str, ...]:
        return ("revenue_per_unit", "pay_rate", "log_mean", "log_variance")

    def check_data(
        self,
        payers: Any,
        units: Any = None,
        log_mean: Any = None,
        log_sum_squares: Any = None,
        *rest: Any,
    ) -> tuple[np.ndarray, ...]:
        """``(K,)`` payers (2 <= payers <= units), log-scale means and sums of squares >= 0,
        as float64 arrays."""
        if units is None or log_mean is None or log_sum_squares is None or rest:
            raise ValueError(
                "a revenue test takes four arrays: payers, units, log_mean, log_sum_squares."
            )
        p, n, m, ss = check_arm_arrays(
            self.arms,
            ("payers", "units", "log_mean", "log_sum_squares"),
            (payers, units, log_mean, log_sum_squares),
        )
        if np.any(p < 2) or np.any(p > n) or not _whole(p):
            raise ValueError(
                f"payers must be whole numbers with 2 <= payers <= units, got {p.tolist()}."
            )
        if np.any(ss < 0):
            raise ValueError(f"log_sum_squares must be >= 0, got {ss.tolist()}.")
        return p, n, m, ss

    def summary_data(self, summary: MetricSummary) -> tuple[np.ndarray, ...]:
        """``(payers, units, log_mean, log_sum_squares)``, each (K,)."""
        return summary.payers, summary.units, summary.mean, summary.sum_squares

    def exact_draws(
        self, summary: MetricSummary, rng: np.random.Generator, size: int
    ) -> dict[str, np.ndarray]:
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
