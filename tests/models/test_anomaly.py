import warnings

import numpy as np
import pyro
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

import bayesvae
from bayesvae.anomaly import AnomalyMixture
from bayesvae.backends.numpyro import nuts_model
from bayesvae.infer.mcmc import ConvergenceWarning
from bayesvae.infer.svi import evaluate
from bayesvae.models.anomaly import AnomalyMixtureModel, relabel_components

TRUE_RATE = 50 / 1050


@pytest.fixture(scope="module")
def seed_case():
    """The seed's synthetic case: 1000 points N(0, I) in 2-D plus 50 from N(3, 2I)."""
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(1000, 2))
    anomalies = rng.normal(3.0, np.sqrt(2.0), size=(50, 2))
    X = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(1000), np.ones(50)].astype(int)
    return X, y


@pytest.fixture(scope="module")
def svi_fit(seed_case):
    X, _ = seed_case
    return AnomalyMixture(1, backend="pyro", seed=0).fit(X).model_  # Pyro's own loop


@pytest.fixture(scope="module")
def mcmc_fit(seed_case):
    X, _ = seed_case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short chains in a unit test
        estimator = AnomalyMixture(1, method="mcmc", num_warmup=300, num_samples=300, num_chains=2)
        return estimator.fit(X).model_


def test_svi_recovers_the_contamination_and_ranks_the_anomalies(seed_case, svi_fit):
    X, y = seed_case
    low, high = svi_fit.contamination_interval(0.9)
    assert low < TRUE_RATE < high
    assert low < svi_fit.contamination_ < high
    assert roc_auc_score(y, svi_fit.anomaly_proba(X)) >= 0.95
    assert roc_auc_score(y, -svi_fit.score_samples(X)) >= 0.95


def test_nuts_twin_agrees_with_svi(seed_case, svi_fit, mcmc_fit):
    X, y = seed_case
    auc_svi = roc_auc_score(y, -svi_fit.score_samples(X))
    auc_mcmc = roc_auc_score(y, -mcmc_fit.score_samples(X))
    assert abs(auc_svi - auc_mcmc) <= 0.02
    low_s, high_s = svi_fit.contamination_interval(0.9)
    low_m, high_m = mcmc_fit.contamination_interval(0.9)
    assert max(low_s, low_m) < min(high_s, high_m)  # the intervals overlap
    assert low_m < TRUE_RATE < high_m
    idata = mcmc_fit.to_inference_data()
    assert idata.posterior.sizes["chain"] == 2
    assert {"contamination", "loc", "scale"} <= set(idata.posterior.data_vars)


def test_predictions_are_consistent(seed_case, svi_fit):
    X, _ = seed_case
    proba = svi_fit.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    p_anomaly = svi_fit.anomaly_proba(X)
    np.testing.assert_allclose(p_anomaly, proba[:, -1])
    # score_samples = log P(normal) - log P(anomaly); decision < 0 exactly when P > threshold
    np.testing.assert_allclose(
        svi_fit.score_samples(X), np.log1p(-p_anomaly) - np.log(p_anomaly), rtol=1e-6, atol=1e-6
    )
    predicted = svi_fit.predict(X)
    assert set(np.unique(predicted)) <= {1, -1}
    np.testing.assert_array_equal(predicted == -1, p_anomaly > 0.5)
    np.testing.assert_array_equal(svi_fit.decision_function(X) < 0, predicted == -1)


def test_same_seed_same_scores(seed_case):
    X, _ = seed_case
    first = AnomalyMixture(1, epochs=30, seed=3).fit(X).score_samples(X)
    pyro.clear_param_store()
    second = AnomalyMixture(1, epochs=30, seed=3).fit(X).score_samples(X)
    np.testing.assert_array_equal(first, second)


def test_full_covariance_with_several_components():
    rng = np.random.default_rng(1)
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    X = np.vstack(
        [
            rng.multivariate_normal([-4, 0], cov, 400),
            rng.multivariate_normal([4, 0], cov, 400),
            rng.uniform(-10, 10, size=(20, 2)),
        ]
    )
    y = np.r_[np.zeros(800), np.ones(20)]
    model = AnomalyMixture(2, covariance="full", epochs=300, seed=0).fit(X).model_
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3)
    # the two clusters go to different components (ordered along the first principal axis)
    assignment = proba[:800, :2].argmax(1)
    assert {assignment[:400].mean().round(), assignment[400:].mean().round()} == {0.0, 1.0}
    assert roc_auc_score(y, model.anomaly_proba(X)) >= 0.95
    draws = model.posterior_draws()
    corr = draws["corr_chol"][0] @ draws["corr_chol"][0].transpose(-1, -2)
    assert corr[:, 0, 1].min() > 0.5  # the correlation was learnt


def test_a_users_own_svi_loop_with_trace_enum_elbo(seed_case):
    X, y = seed_case
    mixture = AnomalyMixtureModel(1, guide_type="map")
    (z,) = mixture.check_data(X)  # validates and standardizes; fixes the k-means start
    svi = pyro.infer.SVI(
        mixture.model,
        mixture.guide,
        pyro.optim.Adam({"lr": 0.02}),
        pyro.infer.TraceEnum_ELBO(max_plate_nesting=1),
    )
    losses = [svi.step(z) for _ in range(200)]
    assert losses[-1] < losses[0]
    assert roc_auc_score(y, mixture.anomaly_proba(X)) >= 0.95


def test_enumerated_elbo_is_the_marginal_likelihood(seed_case):
    """With a point-mass guide, evaluate()'s recon term (assignments summed out by
    TraceEnum_ELBO) equals the mean marginal log-likelihood computed directly."""
    X, _ = seed_case
    mixture = AnomalyMixture(1, guide_type="map", epochs=20).fit(X).model_
    (z,) = mixture.check_data(X)
    terms = evaluate(mixture, [(z,)], num_data=len(z))
    direct = mixture.log_likelihood(X).mean()
    assert terms["recon"] == pytest.approx(direct, rel=1e-4)


def test_numpyro_twin_has_the_same_density(seed_case, svi_fit):
    import jax.numpy as jnp
    from numpyro.handlers import seed, substitute

    X, _ = seed_case
    draws = svi_fit.posterior_draws()
    one = {k: v[0] for k, v in draws.items()}
    z = svi_fit.standardize(X)
    pyro_joint = svi_fit.joint_log_prob(one, z).double().numpy()
    twin = nuts_model(svi_fit)
    values = {k: jnp.asarray(v.numpy()) for k, v in one.items()}
    numpyro_joint = seed(substitute(twin, data=values), 0)(jnp.asarray(z.numpy()))
    np.testing.assert_allclose(np.asarray(numpyro_joint), pyro_joint, rtol=1e-4, atol=1e-3)


def test_nuts_on_the_mixture_runs_in_64_bit(mcmc_fit):
    """The summed log density of many rows needs float64 for NUTS's energy differences (the
    ``nuts_float64`` hook): the chains' draws come back in 64-bit."""
    assert mcmc_fit.nuts_float64
    posterior = mcmc_fit.result_.inference_data.posterior
    assert posterior["loc"].dtype == np.float64 and posterior["contamination"].dtype == np.float64


def test_numpyro_svi_agrees_with_pyro_svi(seed_case, svi_fit):
    """backend='numpyro' trains the same model and mean-field guide (assignments summed out
    instead of enumerated: the same objective) in one jitted scan per epoch; its parameters land
    in Pyro's param store, so the Pyro model's queries answer as after a Pyro fit."""
    X, y = seed_case
    fitted = AnomalyMixture(1, backend="numpyro", seed=0).fit(X)
    twin = fitted.model_
    # "auto": NumPyro only where its compile time pays (many steps), never for the MAP guide
    auto = AnomalyMixture().build_model()  # 300 epochs, batches of 2048
    assert auto.svi_backend(len(X)) == "pyro" and auto.svi_backend(50_000) == "numpyro"
    assert AnomalyMixture(guide_type="map").build_model().svi_backend(50_000) == "pyro"
    assert fitted.result_.settings["backend"] == "numpyro"
    assert len(fitted.result_.history) == 300
    store = pyro.get_param_store()
    assert f"{twin.pyro_name}.corr_chol" in store  # full covariance: the point estimate too
    low_n, high_n = twin.contamination_interval(0.9)
    low_p, high_p = svi_fit.contamination_interval(0.9)
    assert low_n < TRUE_RATE < high_n
    assert abs(twin.contamination_ - svi_fit.contamination_) < 0.25 * (high_p - low_p)
    for name in ("loc", "scale"):  # posterior means of the normal component
        np.testing.assert_allclose(
            twin.posterior_draws()[name].mean(0), svi_fit.posterior_draws()[name].mean(0), atol=0.05
        )
    auc = roc_auc_score(y, -twin.score_samples(X))
    assert abs(auc - roc_auc_score(y, -svi_fit.score_samples(X))) < 0.005


def test_the_svi_twin_scales_a_minibatch_to_the_data_set():
    """The NumPyro model's per-point factor on a minibatch of B rows counts N / B times, as
    Pyro's subsampled plate does; the priors count once."""
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp
    from numpyro.handlers import substitute
    from numpyro.infer.util import log_density

    from bayesvae.backends.numpyro.anomaly import anomaly_mixture_model

    x = jnp.asarray(np.random.default_rng(0).normal(size=(40, 2)), dtype=jnp.float32)
    values = {
        "contamination": jnp.asarray(0.1),
        "loc": jnp.zeros((1, 2)),
        "scale": jnp.ones((1, 2)),
    }
    options = {"n_components": 1, "covariance": "diag"}

    def density(batch, num_data):
        return log_density(anomaly_mixture_model, (batch, num_data), options, values)[0]

    def rows_term(batch):  # sum over the rows of log p(x_n | parameters)
        joint = substitute(anomaly_mixture_model, data=values)(batch, **options)
        return float(logsumexp(joint, axis=-1).sum())

    batch = x[:10]
    # the minibatch's rows count 40 / 10 = 4 times; the priors once
    assert float(density(batch, 40) - density(batch, None)) == pytest.approx(
        3 * rows_term(batch), rel=1e-5
    )
    assert float(density(x, 40)) == pytest.approx(float(density(x, None)), rel=1e-6)


@pytest.fixture(scope="module")
def heavy_tailed_case():
    """2,000 normal rows with Student-t (3 degrees of freedom) tails in 3-D, plus 40 anomalies
    around (6, -6, 6): normal data whose own tails reach well past 4 standard deviations."""
    rng = np.random.default_rng(1)
    normal = rng.standard_t(3, size=(2000, 3))
    anomalies = rng.normal([6.0, -6.0, 6.0], 1.0, size=(40, 3))
    X = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(2000), np.ones(40)].astype(int)
    return X, y


def test_auto_anomaly_scale_covers_the_training_range(heavy_tailed_case):
    X, y = heavy_tailed_case
    auto = AnomalyMixture(1, epochs=100, seed=0).fit(X).model_
    fixed = AnomalyMixture(1, epochs=100, anomaly_scale=4.0, seed=0).fit(X).model_
    z = (X - X.mean(0)) / X.std(0)
    expected = np.maximum((z.max(0) - z.min(0)) / 2, 4.0)
    np.testing.assert_allclose(auto.anomaly_scales.numpy(), expected, rtol=1e-5)
    assert expected.min() > 4.0  # the heavy tails widen every feature's component
    np.testing.assert_array_equal(fixed.anomaly_scales.numpy(), 4.0)
    true_rate = y.mean()
    # a 4-sd component is narrower than the normal tails and takes them as anomalies
    assert fixed.contamination_ > 2 * true_rate
    assert abs(auto.contamination_ - true_rate) < abs(fixed.contamination_ - true_rate)
    assert roc_auc_score(y, -auto.score_samples(X)) >= roc_auc_score(y, -fixed.score_samples(X))


def test_numpyro_twin_has_the_same_density_per_feature_scales(heavy_tailed_case):
    import jax.numpy as jnp
    from numpyro.handlers import seed, substitute

    X, _ = heavy_tailed_case
    mixture = AnomalyMixture(1, covariance="full", epochs=5, seed=0).fit(X).model_
    assert len(set(mixture.anomaly_scales.tolist())) == 3  # one scale per feature
    one = {k: v[0] for k, v in mixture.posterior_draws().items()}
    z = mixture.standardize(X)
    pyro_joint = mixture.joint_log_prob(one, z).double().numpy()
    values = {k: jnp.asarray(v.numpy()) for k, v in one.items()}
    numpyro_joint = seed(substitute(nuts_model(mixture), data=values), 0)(jnp.asarray(z.numpy()))
    np.testing.assert_allclose(np.asarray(numpyro_joint), pyro_joint, rtol=1e-4, atol=1e-3)


def test_a_model_saved_before_per_feature_scales_loads(svi_fit, seed_case, tmp_path):
    X, _ = seed_case
    restored = AnomalyMixtureModel(**{**svi_fit.config, "anomaly_scale": 4.0})
    state = {k: v for k, v in svi_fit.state_dict().items() if k != "anomaly_scales"}
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.anomaly_scales.numpy(), 4.0)
    assert np.isfinite(restored.score_samples(X)).all()


def test_relabelling_undoes_a_label_switch():
    loc = np.array([[[-2.0, 0.0], [2.0, 0.0]], [[2.0, 0.0], [-2.0, 0.0]]])  # (S=2, K=2, D=2)
    draws = {
        "loc": loc,
        "scale": np.array([[[1.0, 1.0], [3.0, 3.0]], [[3.0, 3.0], [1.0, 1.0]]]),
        "weights": np.array([[0.3, 0.7], [0.7, 0.3]]),
        "contamination": np.array([0.1, 0.1]),
    }
    fixed = relabel_components(draws, np.array([1.0, 0.0]))
    np.testing.assert_array_equal(fixed["loc"][0], fixed["loc"][1])
    np.testing.assert_array_equal(fixed["scale"][0], fixed["scale"][1])
    np.testing.assert_array_equal(fixed["weights"][0], fixed["weights"][1])


def test_scikit_learn_params_and_clone():
    model = AnomalyMixture(2, contamination=0.1, epochs=5)
    params = model.get_params()
    assert params["n_components"] == 2 and params["contamination"] == 0.1
    copy = clone(model)
    assert copy.get_params() == params and copy is not model
    model.set_params(n_components=3, covariance="full")
    assert model.n_components == 3 and model.get_params()["covariance"] == "full"
    with pytest.raises(ValueError, match="Invalid parameter 'bogus'"):
        model.set_params(bogus=1)
    model.set_params(contamination=0.7)  # scikit-learn's rule: checked by fit, before work
    with pytest.raises(ValueError, match="contamination"):
        model.fit(np.random.default_rng(0).normal(size=(50, 2)))
    assert not hasattr(model, "model_")


def test_save_and_load_give_identical_scores(seed_case, svi_fit, mcmc_fit, tmp_path):
    X, _ = seed_case
    for name, model in (("svi", svi_fit), ("mcmc", mcmc_fit)):
        folder = bayesvae.save(model, tmp_path / name)
        loaded = bayesvae.load(folder)
        np.testing.assert_allclose(loaded.score_samples(X), model.score_samples(X), rtol=1e-6)


def test_svi_inference_data_supports_loo(seed_case, svi_fit):
    import arviz as az

    X, _ = seed_case
    idata = svi_fit.to_inference_data(X[:200])
    assert idata.log_likelihood["obs"].shape == (1, 200, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # k-hat remarks on 200 draws
        assert np.isfinite(az.loo(idata).elpd_loo)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"n_components": 0}, ValueError, "n_components must be >= 1"),
        ({"n_components": 1.5}, TypeError, "n_components"),
        ({"contamination": 0.0}, ValueError, r"contamination must be a finite number in \(0, 0.5"),
        ({"contamination": 0.5}, ValueError, "contamination"),
        ({"covariance": "spherical"}, ValueError, "unknown covariance"),
        ({"method": "em"}, ValueError, "unknown method"),
        ({"backend": "stan"}, ValueError, "unknown backend"),
        ({"backend": "numpyro", "guide_type": "map"}, ValueError, "mean-field guide"),
        ({"threshold": 1.0}, ValueError, "threshold"),
        ({"anomaly_scale": -1.0}, ValueError, "anomaly_scale"),
        ({"anomaly_scale": "wide"}, ValueError, "anomaly_scale must be 'auto'"),
        ({"epochs": 0}, ValueError, "epochs"),
    ],
)
def test_bad_options_raise(options, error, match):
    with pytest.raises(error, match=match):
        AnomalyMixtureModel(**options)
    with pytest.raises(error, match=match):  # the estimator: at fit, before reading X
        AnomalyMixture(**options).fit(None)


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), ValueError, "NaN or infinite"),
        (np.array([[0.0, 1.0], [np.inf, 2.0], [1.0, 1.0]]), ValueError, "NaN or infinite"),
        (np.array([[0.0, 1.0]]), ValueError, "at least 2 row"),
        (
            np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]),
            ValueError,
            r"zero-variance column.*\[1\]",
        ),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "numeric"),
        (np.zeros(5), ValueError, "2-D"),
        (np.zeros((0, 3)), ValueError, "at least 2 row"),
    ],
)
def test_bad_data_raise_before_training(X, error, match):
    with pytest.raises(error, match=match):
        AnomalyMixtureModel(1).check_data(X)
    with pytest.raises((ValueError, TypeError)):  # scikit-learn's own wording first
        AnomalyMixture(1).fit(X)


def test_scoring_checks_the_model_and_the_data(seed_case, svi_fit):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        AnomalyMixture(1).predict(np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="not fitted"):
        AnomalyMixtureModel(1).predict(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="5 feature.*fitted on 2"):
        svi_fit.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        svi_fit.predict(np.array([[np.nan, 0.0]]))


def test_fit_loop_drives_the_mixture_directly(seed_case):
    X, _ = seed_case
    mixture = AnomalyMixtureModel(1)
    result = bayesvae.fit(mixture, X, epochs=20, batch_size=256, lr=0.02, progress=False)
    assert result.settings["elbo"] == "enum"  # the family's default objective
    assert np.isfinite(result.history["recon"]).all()
    assert result.history["train_elbo"].iloc[-1] > result.history["train_elbo"].iloc[0]
    assert np.isfinite(mixture.score_samples(X)).all()
