"""The torch-free half of the A/B families: exact probabilities and losses against closed forms
and Monte Carlo, HDIs, count validation, and each spec's conjugate posterior."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesvae.models.ab_conjugate import (
    BetaBinomialSpec,
    GammaPoissonSpec,
    NegativeBinomialSpec,
    RevenueSpec,
    beta_hdi,
    check_counts,
    draws_hdi,
    exact_expected_loss,
    exact_prob_best,
    exact_prob_greater,
    summarize_metric,
)

EXACT_P_B_GT_A = 0.863657  # 200/1000 vs 220/1000, Beta(1, 1) priors (the figure)


def test_exact_probability_matches_the_closed_form_sum():
    from scipy.special import betaln

    alpha, beta = np.array([201.0, 221.0]), np.array([801.0, 781.0])
    p = exact_prob_greater(alpha, beta, 1, 0)
    assert p == pytest.approx(EXACT_P_B_GT_A, abs=1e-6)
    # Evan Miller's closed form for integer parameters
    miller = sum(
        np.exp(
            betaln(alpha[0] + i, beta[0] + beta[1])
            - np.log(beta[1] + i)
            - betaln(1 + i, beta[1])
            - betaln(alpha[0], beta[0])
        )
        for i in range(int(alpha[1]))
    )
    assert p == pytest.approx(miller, abs=1e-9)
    assert exact_prob_best(alpha, beta) == pytest.approx([1 - p, p], abs=1e-9)


def test_quadrature_keeps_every_piece_of_a_far_ahead_arm():
    """Arm 0's rate (about 0.996) lies far above the others' (0.25-0.56): it is best with
    probability 1 - O(1e-300). Point-by-point adaptive quadrature returned 0.999999 here (it
    lost a 1e-6 piece of the bulk); the pieces integrated together keep it."""
    alpha = np.array([95859.0, 18494.0, 35350.0, 12158.0])
    beta = np.array([341.0, 56333.0, 27490.0, 73914.0])
    prob_best = exact_prob_best(alpha, beta)
    assert prob_best[0] == pytest.approx(1.0, abs=1e-12)
    assert prob_best.sum() == pytest.approx(1.0, abs=1e-12)


def test_exact_expected_loss_matches_monte_carlo():
    alpha, beta = np.array([21.0, 26.0, 31.0]), np.array([81.0, 76.0, 71.0])
    draws = np.random.default_rng(0).beta(alpha, beta, size=(400_000, 3))
    monte_carlo = (draws.max(1, keepdims=True) - draws).mean(0)
    np.testing.assert_allclose(exact_expected_loss(alpha, beta), monte_carlo, atol=3e-4)
    assert exact_prob_best(alpha, beta).sum() == pytest.approx(1.0, abs=1e-9)


counts = st.integers(min_value=1, max_value=3000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)


@settings(max_examples=40, deadline=None)
@given(a=counts, b=counts)
def test_exact_prob_greater_is_a_probability_and_complementary(a, b):
    alpha = np.array([1.0 + a[0], 1.0 + b[0]])
    beta = np.array([1.0 + a[1] - a[0], 1.0 + b[1] - b[0]])
    p_b = exact_prob_greater(alpha, beta, 1, 0)
    p_a = exact_prob_greater(alpha, beta, 0, 1)
    assert 0.0 <= p_b <= 1.0
    assert p_a + p_b == pytest.approx(1.0, abs=1e-6)  # continuous: ties have probability 0


@settings(max_examples=30, deadline=None)
@given(a=counts, b=counts)
def test_more_successes_for_b_raise_p_b_beats_a(a, b):
    if b[0] == b[1]:
        b = (b[0] - 1, b[1])
    alpha = np.array([1.0 + a[0], 1.0 + b[0]])
    beta = np.array([1.0 + a[1] - a[0], 1.0 + b[1] - b[0]])
    better = np.array([alpha[0], alpha[1] + 1]), np.array([beta[0], beta[1] - 1])
    assert exact_prob_greater(*better, 1, 0) >= exact_prob_greater(alpha, beta, 1, 0) - 1e-9


def test_hdi_helpers():
    low, high = beta_hdi(201, 801, 0.95)
    from scipy import stats

    assert stats.beta.cdf(high, 201, 801) - stats.beta.cdf(low, 201, 801) == pytest.approx(0.95)
    draws = np.random.default_rng(1).beta(201, 801, size=200_000)
    assert draws_hdi(draws, 0.95) == pytest.approx((low, high), abs=5e-4)
    skewed = beta_hdi(1.5, 30.0, 0.9)
    assert stats.beta.pdf(skewed[0], 1.5, 30) == pytest.approx(
        stats.beta.pdf(skewed[1], 1.5, 30), rel=1e-3
    )


@pytest.mark.parametrize(
    "names, successes, trials, error, words",
    [
        (["A", "B"], [200, 1200], [1000, 1000], ValueError, "more successes"),
        (["A", "B"], [-1, 3], [10, 10], ValueError, "non-negative"),
        (["A", "B"], [1.5, 3], [10, 10], ValueError, "whole numbers"),
        (["A", "B"], [1, 3], [0, 10], ValueError, "zero trials"),
        (["A"], [1], [10], ValueError, "at least two arms"),
        (["A", "A"], [1, 2], [10, 10], ValueError, "unique"),
        (["A", "B"], [1, 2, 3], [10, 10, 10], ValueError, "one entry per arm"),
        (["A", "B"], ["x", "y"], [10, 10], TypeError, "numbers"),
        (["A", "B"], [np.nan, 2], [10, 10], ValueError, "finite"),
    ],
)
def test_bad_counts_raise_naming_the_problem(names, successes, trials, error, words):
    with pytest.raises(error, match=words):
        check_counts(names, successes, trials)


def test_specs_give_the_conjugate_posterior():
    summary = summarize_metric("conversion", ["A", "B"], [np.r_[np.ones(20), np.zeros(80)]] * 2)
    spec = BetaBinomialSpec(["A", "B"], prior=(2.0, 3.0))
    posterior = spec.exact_posterior(summary, np.random.default_rng(0), 1000)
    np.testing.assert_array_equal(posterior.parameters["alpha"], [22.0, 22.0])
    np.testing.assert_array_equal(posterior.parameters["beta"], [83.0, 83.0])
    assert posterior.draws.shape == (1000, 2) and posterior.sites["rate"] is posterior.draws
    assert posterior.marginals[0].mean() == pytest.approx(22 / 105)
    counts = summarize_metric("count", ["A", "B"], [np.array([1, 2, 3]), np.array([0, 4])])
    rate = GammaPoissonSpec(["A", "B"]).exact_marginals(counts)
    assert rate[0].mean() == pytest.approx((0.1 + 6) / (0.1 + 3))


def test_specs_without_a_closed_form_refuse_exact_answers():
    counts = summarize_metric("count", ["A", "B"], [np.array([1, 2, 3]), np.array([0, 4])])
    with pytest.raises(ValueError, match="no closed-form posterior"):
        NegativeBinomialSpec(["A", "B"]).exact_posterior(counts, np.random.default_rng(0), 10)
    hierarchical = BetaBinomialSpec(["A", "B"], hierarchical=True)
    assert not hierarchical.has_exact
    with pytest.raises(ValueError, match="no closed-form posterior"):
        hierarchical.exact_parameters(counts)
    revenue = summarize_metric("revenue", ["A", "B"], [np.array([0, 1.0, 3.0])] * 2)
    draws_only = RevenueSpec(["A", "B"]).exact_posterior(revenue, np.random.default_rng(0), 10)
    assert draws_only.marginals is None and draws_only.draws.shape == (10, 2)


@pytest.mark.parametrize(
    "prior, error",
    [((0, 1), ValueError), ((1, -2), ValueError), (("a", 1), TypeError), ((1,), TypeError)],
)
def test_bad_priors(prior, error):
    with pytest.raises(error, match="prior"):
        BetaBinomialSpec(["A", "B"], prior=prior)


def test_a_piece_tanh_sinh_does_not_converge_goes_to_adaptive_quadrature(monkeypatch):
    """Where a piece of the integral reports no convergence, it is integrated again by
    ``quad``: the answer is the same."""
    from scipy import integrate

    alpha, beta = np.array([201.0, 221.0]), np.array([801.0, 781.0])
    tanhsinh = integrate.tanhsinh

    def unconverged(*args, **kwargs):
        result = tanhsinh(*args, **kwargs)
        result.success = np.zeros_like(result.success)
        result.integral = np.full_like(result.integral, np.nan)
        return result

    monkeypatch.setattr(integrate, "tanhsinh", unconverged)
    assert exact_prob_greater(alpha, beta, 1, 0) == pytest.approx(EXACT_P_B_GT_A, abs=1e-6)
