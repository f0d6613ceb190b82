"""scikit-learn's own estimator checks on both anomaly detectors (clone, get/set_params,
pipelines, pickling, NotFittedError, input validation, n_features_in_, sample-order and subset
invariance of the scores, ...), with every check that cannot apply named with its reason."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesvae.anomaly import AnomalyMixture, VAEAnomalyDetector

#: the Bayesian mixture's ``contamination`` is the mean of a Beta prior on the anomaly rate,
#: not a quota: rows are flagged when P(anomaly | x) > threshold, so on three clean Gaussian
#: blobs (scikit-learn's data) it rightly flags none, where these checks demand some.
_PRIOR_NOT_QUOTA = (
    "contamination is a prior mean, not a quota: on clean blobs no row has "
    "P(anomaly | x) > 0.5, and the check demands flagged rows"
)
EXPECTED_FAILURES = {
    "AnomalyMixture": {
        "check_outliers_train": _PRIOR_NOT_QUOTA,
        "check_outliers_fit_predict": _PRIOR_NOT_QUOTA,
    },
    "VAEAnomalyDetector": {
        # the check compares at float64's 1e-7; the scores are float32 network outputs (returned
        # as float64, which scikit-learn requires), and a row's score can move in its last
        # float32 bit with the batch's row count (BLAS blocking). Subset invariance at float32
        # precision, with the same noise per row, is tested in tests/models/test_vae.py.
        "check_methods_subset_invariance": "float32 scores; invariant to float32 precision",
    },
}


def _expected_failures(estimator):
    return EXPECTED_FAILURES[type(estimator).__name__]


@parametrize_with_checks(
    [
        AnomalyMixture(epochs=5, num_posterior_draws=10),
        VAEAnomalyDetector(latent_dim=2, hidden_dims=(8,), epochs=2, num_samples=2),
    ],
    expected_failed_checks=_expected_failures,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "detector",
    [AnomalyMixture(epochs=20), VAEAnomalyDetector(latent_dim=2, hidden_dims=(8,), epochs=5)],
    ids=["mixture", "vae"],
)
def test_detectors_work_in_a_pipeline_and_refuse_use_before_fit(detector):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 3)), rng.normal(8.0, 1.0, size=(5, 3))])
    with pytest.raises(NotFittedError):
        detector.predict(X)
    pipeline = make_pipeline(StandardScaler(), detector).fit(X)
    labels = pipeline.predict(X)
    assert set(np.unique(labels)) <= {-1, 1} and (labels[-5:] == -1).all()
    with pytest.raises(ValueError, match="features"):
        pipeline[-1].predict(X[:, :2])  # scikit-learn's own n_features_in_ check


def test_vae_detector_scores_a_row_alike_in_any_batch_to_float32_precision():
    """The float32-precision form of scikit-learn's subset-invariance check (expected to fail at
    float64's 1e-7 above): each row's score is the same whichever rows it is scored with."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 4))
    detector = VAEAnomalyDetector(latent_dim=2, hidden_dims=(8,), epochs=2, num_samples=4).fit(X)
    whole = detector.decision_function(X)
    in_parts = np.concatenate([detector.decision_function(X[i : i + 7]) for i in range(0, 150, 7)])
    np.testing.assert_allclose(in_parts, whole, rtol=1e-5, atol=1e-5)
    assert np.ptp(whole) > 1e-2  # the rows' scores differ, so the comparison means something
