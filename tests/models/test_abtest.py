import numpy as np
import pyro
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesvae.backends.numpyro import nuts_model
from bayesvae.models import BetaBinomialABTest
from bayesvae.models.ab_conjugate import (
    beta_hdi,
    check_counts,
    draws_hdi,
    exact_expected_loss,
    exact_prob_best,
    exact_prob_greater,
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


@pytest.mark.parametrize(
    "prior, error",
    [((0, 1), ValueError), ((1, -2), ValueError), (("a", 1), TypeError), ((1,), TypeError)],
)
def test_bad_priors(prior, error):
    with pytest.raises(error, match="prior"):
        BetaBinomialABTest(["A", "B"], prior=prior)


@pytest.mark.parametrize("hierarchical", [False, True])
def test_model_and_guide_are_plain_pyro(hierarchical):
    model = BetaBinomialABTest(["A", "B", "C"], hierarchical=hierarchical)
    s, n = model.check_data([20, 25, 30], [100, 100, 100])
    guide = pyro.poutine.trace(model.guide).get_trace(s, n)
    trace = pyro.poutine.trace(pyro.poutine.replay(model.model, trace=guide)).get_trace(s, n)
    assert trace.nodes["rate"]["value"].shape == (3,)
    assert trace.nodes["obs"]["is_observed"]
    assert ("mean" in trace.nodes) == hierarchical
    svi = pyro.infer.SVI(
        model.model, model.guide, pyro.optim.Adam({"lr": 0.01}), pyro.infer.Trace_ELBO()
    )
    assert np.isfinite(svi.step(s, n))


def test_numpyro_twin_has_the_same_sites():
    import jax
    from numpyro import handlers

    model = BetaBinomialABTest(["A", "B"], hierarchical=True)
    twin = nuts_model(model)
    trace = handlers.trace(handlers.seed(twin, jax.random.PRNGKey(0))).get_trace(
        np.array([3.0, 4.0]), np.array([10.0, 10.0])
    )
    s, n = model.check_data([3, 4], [10, 10])
    pyro_trace = pyro.poutine.trace(model.model).get_trace(s, n)
    pyro_sites = {k for k, v in pyro_trace.nodes.items() if v["type"] == "sample"}
    twin_sites = {k for k, v in trace.items() if v["type"] == "sample"}
    assert {"mean", "concentration", "rate", "obs"} == twin_sites == pyro_sites - {"arms"}
    assert torch.equal(pyro_trace.nodes["obs"]["value"], s)
