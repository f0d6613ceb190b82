"""The metric models beyond conversion: Pyro and NumPyro twins agree, the conjugate answers
match NUTS, and bad data are refused."""

import warnings

import jax
import numpy as np
import pytest
import torch
from numpyro.infer.util import log_density
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from bayesvae.backends.numpyro import nuts_model
from bayesvae.infer.mcmc import mcmc
from bayesvae.models import (
    GammaPoissonABTest,
    NegativeBinomialABTest,
    NormalABTest,
    RevenueABTest,
)
from bayesvae.models.ab_conjugate import (
    GammaPoissonSpec,
    NegativeBinomialSpec,
    NormalSpec,
    RevenueSpec,
    summarize_metric,
)

ARMS = ["A", "B"]
RNG = np.random.default_rng(0)
COUNTS = [RNG.poisson(3.0, 400), RNG.poisson(3.4, 500)]
OVERDISPERSED = [
    RNG.negative_binomial(0.5, 0.5 / 30.5, 2000),
    RNG.negative_binomial(0.5, 0.5 / 33.5, 2000),
]
CONTINUOUS = [RNG.normal(10.0, 2.0, 300), RNG.normal(10.4, 2.5, 300)]
REVENUE = [
    RNG.lognormal(1.0, 1.0, 2000) * (RNG.random(2000) < 0.1),
    RNG.lognormal(1.2, 1.0, 2000) * (RNG.random(2000) < 0.1),
]


def _case(kind):
    if kind == "poisson":
        summary = summarize_metric("count", ARMS, COUNTS)
        return GammaPoissonABTest(ARMS), (summary.total, summary.units), summary
    if kind == "negbin":
        summary = summarize_metric("count", ARMS, OVERDISPERSED)
        data = (summary.distinct_values, summary.distinct_arm, summary.distinct_weight)
        return NegativeBinomialABTest(ARMS), data, summary
    if kind == "normal":
        summary = summarize_metric("continuous", ARMS, CONTINUOUS)
        return NormalABTest(ARMS), (summary.mean, summary.sum_squares, summary.units), summary
    summary = summarize_metric("revenue", ARMS, REVENUE)
    data = (summary.payers, summary.units, summary.mean, summary.sum_squares)
    return RevenueABTest(ARMS), data, summary


@pytest.mark.parametrize("kind", ["poisson", "negbin", "normal", "revenue"])
def test_pyro_and_numpyro_twins_have_the_same_log_joint(kind):
    model, data, _ = _case(kind)
    tensors = model.check_data(*data)
    trace = poutine.trace(model.model).get_trace(*tensors)
    values = {
        name: site["value"].detach().numpy()
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    }
    pyro_log_joint = float(trace.log_prob_sum())
    with jax.enable_x64(True):
        numpyro_log_joint, _ = log_density(
            nuts_model(model), tuple(t.numpy() for t in tensors), {}, values
        )
    assert float(numpyro_log_joint) == pytest.approx(pyro_log_joint, rel=1e-9, abs=1e-6)


def test_summaries_are_the_sufficient_statistics():
    summary = summarize_metric("continuous", ARMS, CONTINUOUS)
    assert summary.units.tolist() == [300, 300]
    assert summary.mean[1] == pytest.approx(CONTINUOUS[1].mean())
    assert summary.sum_squares[0] == pytest.approx(
        ((CONTINUOUS[0] - CONTINUOUS[0].mean()) ** 2).sum()
    )
    counts = summarize_metric("count", ARMS, OVERDISPERSED)
    assert counts.distinct_weight.sum() == 4000
    assert (counts.distinct_values * counts.distinct_weight).sum() == sum(
        a.sum() for a in OVERDISPERSED
    )
    revenue = summarize_metric("revenue", ARMS, REVENUE)
    assert revenue.payers.tolist() == [int((r > 0).sum()) for r in REVENUE]


def test_gamma_poisson_exact_posterior_is_the_conjugate_one():
    model, _, summary = _case("poisson")
    marginals = model.exact_marginals(summary)
    for k in range(2):
        assert marginals[k].mean() == pytest.approx(
            (0.1 + COUNTS[k].sum()) / (0.1 + COUNTS[k].size)
        )
        assert marginals[k].var() == pytest.approx(
            (0.1 + COUNTS[k].sum()) / (0.1 + COUNTS[k].size) ** 2
        )


def test_normal_exact_marginal_matches_its_own_draws():
    model, _, summary = _case("normal")
    marginals = model.exact_marginals(summary)
    draws = model.exact_draws(summary, np.random.default_rng(1), 400_000)["mean"]
    for k in range(2):
        assert draws[:, k].mean() == pytest.approx(
            marginals[k].mean(), abs=4 * marginals[k].std() / 600
        )
        assert draws[:, k].std() == pytest.approx(marginals[k].std(), rel=0.01)


@pytest.mark.parametrize("kind", ["poisson", "normal", "revenue"])
def test_nuts_agrees_with_the_conjugate_posterior(kind):
    model, data, summary = _case(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mcmc(model, *data, num_samples=1500, num_warmup=500, num_chains=2, seed=0)
    draws = result.samples[model.decision_site].reshape(-1, 2)
    if kind == "revenue":
        exact = model.exact_draws(summary, np.random.default_rng(0), 200_000)["revenue_per_unit"]
        means, sds = exact.mean(0), exact.std(0)
    else:
        marginals = model.exact_marginals(summary)
        means = np.array([m.mean() for m in marginals])
        sds = np.array([m.std() for m in marginals])
    # 3000 correlated draws: the mean is within ~4 MC standard errors, the sd within 10 %
    assert np.all(np.abs(draws.mean(0) - means) < 4 * sds / np.sqrt(500))
    assert draws.std(0) == pytest.approx(sds, rel=0.1)


def test_negative_binomial_recovers_mean_and_overdispersion():
    model, data, summary = _case("negbin")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mcmc(model, *data, num_samples=800, num_warmup=400, num_chains=2, seed=0)
    mean = result.samples["mean"].reshape(-1, 2).mean(0)
    assert mean == pytest.approx(summary.total / summary.units, rel=0.02)
    concentration = result.samples["concentration"].reshape(-1, 2).mean(0)
    assert np.all((concentration > 0.4) & (concentration < 0.62))  # simulated with 0.5


@pytest.mark.parametrize(
    ("metric", "values", "words"),
    [
        ("count", [np.array([1, 2, -1]), np.array([1, 2])], ">= 0"),
        ("count", [np.array([1, 2.5]), np.array([1, 2])], "whole numbers"),
        ("continuous", [np.array([1.0, np.nan]), np.array([1.0, 2.0])], "NaN"),
        ("continuous", [np.array([1.0, 1.0]), np.array([1.0, 2.0])], "variance"),
        ("continuous", [np.array([1.0]), np.array([1.0, 2.0])], "at least two"),
        ("revenue", [np.array([0.0, 0.0, 5.0]), np.array([1.0, 2.0])], "paying unit"),
        ("conversion", [np.array([0, 2]), np.array([0, 1])], "0 or 1"),
        ("count", [np.array([]), np.array([1, 2])], "no units"),
    ],
)
def test_bad_values_are_refused_naming_the_arm(metric, values, words):
    with pytest.raises(ValueError, match=words):
        summarize_metric(metric, ARMS, values)


def test_bad_priors_and_data_are_refused():
    with pytest.raises(ValueError, match="takes 4 numbers"):
        NormalABTest(ARMS, prior=(0.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        GammaPoissonABTest(ARMS, prior=(0.0, 1.0))
    NormalABTest(ARMS, prior=(-5.0, 1.0, 1.0, 1.0))  # the location may be negative
    with pytest.raises(ValueError, match="units"):
        GammaPoissonABTest(ARMS).check_data([3, 4], [0, 2])
    with pytest.raises(ValueError, match="payers"):
        RevenueABTest(ARMS).check_data([5, 1], [10, 10], [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="arm indices"):
        NegativeBinomialABTest(ARMS).check_data([1, 2], [0, 2], [1, 1])
    assert isinstance(GammaPoissonABTest(ARMS).check_data([3, 4], [2, 2])[0], torch.Tensor)


SPECS = {
    GammaPoissonABTest: GammaPoissonSpec,
    NegativeBinomialABTest: NegativeBinomialSpec,
    NormalABTest: NormalSpec,
    RevenueABTest: RevenueSpec,
}


@pytest.mark.parametrize("kind", ["poisson", "negbin", "normal", "revenue"])
def test_a_spec_validates_the_data_its_family_takes_without_torch(kind):
    """The torch-free spec checks the data (NumPy out); the Pyro family hands the same arrays
    on as tensors of the same dtype, and both name the same NumPyro twin."""
    model, data, _ = _case(kind)
    spec = SPECS[type(model)](**model.spec_config)
    assert spec.family == model.family
    arrays, tensors = spec.check_data(*data), model.check_data(*data)
    assert all(isinstance(array, np.ndarray) for array in arrays)
    for array, tensor in zip(arrays, tensors, strict=True):
        assert str(tensor.dtype) == f"torch.{array.dtype}"
        np.testing.assert_array_equal(tensor.numpy(), array)
    assert nuts_model(spec).keywords == nuts_model(model).keywords
    assert spec.arviz_dims() == model.arviz_dims()


def test_specs_refuse_bad_data_themselves():
    with pytest.raises(ValueError, match="units"):
        GammaPoissonSpec(ARMS).check_data([3, 4], [0, 2])
    with pytest.raises(ValueError, match="sum_squares"):
        NormalSpec(ARMS).check_data([1.0, 2.0], [-1.0, 2.0], [5, 5])
    with pytest.raises(ValueError, match="payers"):
        RevenueSpec(ARMS).check_data([5, 11], [10, 10], [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="same length"):
        NegativeBinomialSpec(ARMS).check_data([1, 2], [0], [1, 1])
    with pytest.raises(TypeError, match="numbers"):
        GammaPoissonSpec(ARMS).check_data(["a", "b"], [2, 2])
