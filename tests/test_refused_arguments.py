"""Arguments that used to produce garbage silently are refused before any work (or, for two
identical arms, answered honestly)."""

import numpy as np
import pytest

import bayesvae
from bayesvae.anomaly import VAEAnomalyDetector
from bayesvae.cli import main


def test_a_negative_validation_fraction_is_refused(capsys, tmp_path):
    out = tmp_path / "o"
    assert main(["vae", "--data", "digits", "--val-fraction", "-0.1", "--out", str(out)]) == 2
    assert "--val-fraction -0.1" in capsys.readouterr().err
    assert not out.exists()  # refused before any work: no empty run folder left behind


def test_features_too_large_for_the_model_are_refused():
    X = np.random.default_rng(0).normal(size=(50, 2))
    X[:, 1] *= 1e200
    with pytest.raises(ValueError, match="as large as"):
        bayesvae.AnomalyMixture(epochs=1).fit(X)


def test_the_vae_detector_refuses_what_the_mixture_refuses():
    with pytest.raises(ValueError, match="1 sample"):  # scikit-learn's wording
        VAEAnomalyDetector(epochs=1).fit(np.ones((1, 3)))
    X = np.random.default_rng(0).normal(size=(40, 3))
    X[:, 2] = 5.0
    with pytest.raises(ValueError, match=r"zero-variance column\(s\) \[2\]"):
        VAEAnomalyDetector(epochs=1).fit(X)
    with pytest.raises(ValueError, match=r"zero-variance column\(s\) \[2\]"):
        bayesvae.AnomalyMixture(epochs=1).fit(X)


def test_two_identical_empty_arms_are_equivalent_not_a_choice():
    result = bayesvae.abtest({"A": (0, 1000), "B": (0, 1000)})
    assert result.decision.action == "equivalent" and result.decision.arm is None
    clear = bayesvae.abtest({"A": (100, 1000), "B": (200, 1000)})
    assert clear.decision.text == "choose B"
