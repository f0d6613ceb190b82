"""The Beta-Binomial A/B test as Pyro: its model/guide pair, bad priors, and its NumPyro twin."""

import numpy as np
import pyro
import pytest
import torch

from bayesvae.backends.numpyro import nuts_model
from bayesvae.models import BetaBinomialABTest


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
