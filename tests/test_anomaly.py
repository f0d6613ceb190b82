import json

import numpy as np
import pandas as pd
import pytest

import bayesvae
from bayesvae.anomaly import (
    AnomalyMixture,
    VAEAnomalyDetector,
    detect_anomalies,
    ranking_metrics,
)
from bayesvae.cli import main
from bayesvae.data import read_features


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(size=(300, 3)), rng.normal(4.0, 1.0, size=(15, 3))])
    y = np.r_[np.zeros(300), np.ones(15)].astype(int)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["kind"] = np.where(y == 1, "odd", "usual")  # a non-numeric column
    frame["label"] = y
    return frame


def test_cli_writes_one_score_per_row_in_order(table, tmp_path, capsys):
    csv = tmp_path / "data.csv"
    shuffled = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    shuffled.to_csv(csv, index=False)
    out = tmp_path / "run"
    code = main(
        [
            "anomaly",
            str(csv),
            "--columns",
            "a",
            "b",
            "c",
            "--label-column",
            "label",
            "--epochs",
            "150",
            "--json",
            "--out",
            str(out),
            "--report",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["row", "p_anomaly", "score", "flag"]
    assert scores["row"].tolist() == list(range(len(shuffled)))
    # in input order: the labelled anomalies carry the high probabilities
    assert summary["aucroc"] > 0.95 and 0 < summary["aucpr"] <= 1
    flagged = scores["flag"].to_numpy() == 1
    assert shuffled["label"].to_numpy()[flagged].mean() > 0.8
    for name in ("config.yaml", "model.pt", "result.json", "scores.png", "projection.png"):
        assert (out / name).exists(), name
    assert "Anomaly mixture" in (out / "report.md").read_text()
    loaded = bayesvae.load(out)
    np.testing.assert_allclose(
        loaded.anomaly_proba(shuffled[["a", "b", "c"]].to_numpy()), scores["p_anomaly"], rtol=1e-5
    )


def test_cli_reads_npz_and_npy(table, tmp_path, capsys):
    X = table[["a", "b", "c"]].to_numpy()
    np.savez(tmp_path / "data.npz", X=X, y=table["label"].to_numpy())
    np.save(tmp_path / "data.npy", np.column_stack([X, table["label"].to_numpy()]))
    code = main(["anomaly", str(tmp_path / "data.npz"), "--label-column", "y", "--epochs", "50"])
    assert code == 0 and "AUCROC" in capsys.readouterr().out
    code = main(
        ["anomaly", str(tmp_path / "data.npy"), "--label-column", "3", "--epochs", "50", "--json"]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["features"] == ["x0", "x1", "x2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--components", "0"], "n_components must be >= 1"),
        (["--contamination", "0.6"], "contamination must be a finite number in"),
        (["--label-column", "missing"], "label column 'missing' not found"),
        (["--label-column", "kind"], "label column must be binary"),
        ([], "must be numeric"),  # the text column 'kind' is among the features
    ],
)
def test_cli_bad_input_exits_2_with_one_line(table, tmp_path, capsys, args, message):
    csv = tmp_path / "data.csv"
    table.to_csv(csv, index=False)
    extra = [] if "--label-column" in args or not args else ["--columns", "a", "b"]
    code = main(["anomaly", str(csv), *extra, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_detect_anomalies_on_arrays_with_labels(table):
    X = table[["a", "b", "c"]].to_numpy()
    run = detect_anomalies(X, labels=table["label"], epochs=100, seed=1)
    assert len(run.scores) == len(X)
    assert run.metrics["aucroc"] > 0.95
    low, high = run.metrics["contamination_interval"]
    assert low < run.metrics["contamination_mean"] < high
    assert "AUCROC" in run.table()


def test_read_features_checks_its_input(table, tmp_path):
    csv = tmp_path / "t.csv"
    table.to_csv(csv, index=False)
    X, y, names = read_features(csv, columns=["a", "c"], label_column="label")
    assert X.shape == (len(table), 2) and names == ["a", "c"] and set(y) == {0, 1}
    with pytest.raises(ValueError, match="columns \\['z'\\] not found"):
        read_features(csv, columns=["z"])
    with pytest.raises(TypeError, match="'kind'"):
        read_features(csv, label_column="label")
    with pytest.raises(FileNotFoundError):
        read_features(tmp_path / "none.npz")
    np.savez(tmp_path / "noX.npz", features=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="no array 'X'"):
        read_features(tmp_path / "noX.npz")
    np.save(tmp_path / "a.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="out of range"):
        read_features(tmp_path / "a.npy", label_column=5)


def test_ranking_metrics_need_both_classes():
    assert ranking_metrics([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == {"aucroc": 1.0, "aucpr": 1.0}
    with pytest.raises(ValueError, match="one class"):
        ranking_metrics([0, 0], [0.1, 0.2])


def test_labels_only_for_arrays(table, tmp_path):
    with pytest.raises(ValueError, match="labels= is for array input"):
        detect_anomalies(table[["a", "b"]], labels=table["label"])


@pytest.mark.filterwarnings("ignore::bayesvae.infer.mcmc.ConvergenceWarning")
def test_cli_mcmc_writes_the_posterior(table, tmp_path, capsys):
    X = table[["a", "b", "c"]].to_numpy()
    np.savez(tmp_path / "data.npz", X=X, y=table["label"].to_numpy())
    out = tmp_path / "mcmc"
    args = ["anomaly", str(tmp_path / "data.npz"), "--label-column", "y", "--method", "mcmc"]
    args += ["--num-samples", "150", "--num-warmup", "150", "--chains", "2", "--json"]
    assert main([*args, "--out", str(out), "--report"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "mcmc" and summary["aucroc"] > 0.95
    import arviz as az

    idata = az.from_netcdf(out / "posterior.nc")
    assert idata.posterior.sizes["chain"] == 2
    assert idata.log_likelihood["obs"].shape == (2, 150, len(X))
    assert "MCMC diagnostics" in (out / "report.md").read_text()


# ------------------------------------------------------------------- VAE anomaly detector
@pytest.fixture(scope="module")
def manifold_with_outliers():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(600, 2)) @ rng.normal(size=(2, 8)) + 0.1 * rng.normal(size=(600, 8))
    outliers = rng.uniform(-6, 6, size=(30, 8))
    return np.vstack([normal, outliers]) + 3.0, np.r_[np.zeros(600), np.ones(30)]


@pytest.mark.parametrize("score", ["elbo", "iwae"])
def test_vae_detector_ranks_outliers_and_thresholds_at_the_contamination(
    manifold_with_outliers, score
):
    X, labels = manifold_with_outliers
    detector = VAEAnomalyDetector(latent_dim=2, epochs=25, scoring=score, contamination=0.05)
    flags = detector.fit(X).predict(X)
    assert ranking_metrics(labels, -detector.score_samples(X))["aucroc"] > 0.95
    assert (flags == -1).mean() == pytest.approx(0.05, abs=0.01)
    np.testing.assert_array_equal(detector.decision_function(X) < 0, flags == -1)
    assert set(np.unique(detector.fit_predict(X))) <= {-1, 1}


def test_vae_detector_score_is_the_full_elbo_with_the_kl(manifold_with_outliers):
    X, _ = manifold_with_outliers
    detector = VAEAnomalyDetector(latent_dim=2, epochs=5, num_samples=4, seed=3).fit(X)
    standardized = (X - detector.mean_) / detector.scale_
    expected = detector.model_.elbo(standardized, num_samples=4, seed=3, common_noise=True)
    expected = expected.numpy()
    np.testing.assert_allclose(detector.score_samples(X), expected, rtol=1e-5, atol=1e-4)
    loc, scale = detector.model_.encode(standardized)
    kl = (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(1).numpy()
    # the KL term is part of the score, and it is larger for the outliers (rows 600 on)
    assert kl[600:].mean() > 2 * kl[:600].mean() > 0


def test_vae_detector_follows_scikit_learn_conventions(manifold_with_outliers):
    from sklearn.base import clone

    X, _ = manifold_with_outliers
    detector = VAEAnomalyDetector(epochs=2, contamination=0.2)
    assert clone(detector).get_params() == detector.get_params()
    with pytest.raises(ValueError, match="not fitted"):
        detector.score_samples(X)
    detector.fit(X)
    with pytest.raises(ValueError, match="X has 5 features, but VAEAnomalyDetector is expecting 8"):
        detector.predict(X[:, :5])
    images = np.random.default_rng(0).random((50, 16)).round()
    bernoulli = VAEAnomalyDetector(likelihood="bernoulli", epochs=2, scoring="iwae").fit(images)
    assert bernoulli.score_samples(images).shape == (50,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(contamination=0.0), "contamination"),
        (dict(contamination=0.7), "contamination"),
        (dict(scoring="recon"), "scoring"),
        (dict(num_samples=0), "num_samples"),
        (dict(likelihood="poisson"), "likelihood"),
    ],
)
def test_vae_detector_refuses_bad_options(manifold_with_outliers, kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAEAnomalyDetector(epochs=1, **kwargs).fit(manifold_with_outliers[0])


def test_vae_detector_refuses_bad_data():
    with pytest.raises(ValueError, match="NaN"):
        VAEAnomalyDetector(epochs=1).fit(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        VAEAnomalyDetector(epochs=1, likelihood="bernoulli").fit(np.full((4, 3), 2.0))


def test_vae_detector_saves_and_loads_with_its_standardization(manifold_with_outliers, tmp_path):
    X, _ = manifold_with_outliers
    detector = VAEAnomalyDetector(latent_dim=2, epochs=3, hidden_dims=(16,), seed=1).fit(X)
    detector.save(tmp_path / "run")
    loaded = VAEAnomalyDetector.load(tmp_path / "run")
    assert loaded.get_params() == detector.get_params()
    np.testing.assert_allclose(loaded.score_samples(X), detector.score_samples(X), rtol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), detector.predict(X))
    with pytest.raises(ValueError, match="no VAEAnomalyDetector"):
        bayesvae.save(bayesvae.VAE(4), tmp_path / "plain")
        VAEAnomalyDetector.load(tmp_path / "plain")


def test_vae_anomaly_command_scores_every_row(manifold_with_outliers, tmp_path, capsys):
    X, labels = manifold_with_outliers
    np.savez(tmp_path / "table.npz", X=X, y=labels.astype(int))
    out = tmp_path / "run"
    args = ["vae-anomaly", str(tmp_path / "table.npz"), "--label-column", "y", "--epochs", "20"]
    assert main([*args, "--latent-dim", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["aucroc"] > 0.9 and summary["rows"] == len(X)
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == len(X) and scores["flag"].sum() == summary["flagged"]
    assert VAEAnomalyDetector.load(out).epochs == 20
    assert main(["vae-anomaly", str(tmp_path / "table.npz"), "--contamination", "0.9"]) == 2
    assert "contamination" in capsys.readouterr().err


def test_the_mixture_names_features_after_a_dataframes_columns():
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 2)), columns=["latency", "bytes"])
    model = AnomalyMixture(epochs=5, num_posterior_draws=5).fit(X)
    idata = model.to_inference_data(X)
    assert idata.posterior.coords["feature"].values.tolist() == ["latency", "bytes"]


# ----------------------------------------------------------------- the shape from the data
def _three_clusters(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    normal = np.vstack([rng.normal(c, 0.7, size=(250, 2)) for c in centres])
    anomalies = rng.uniform(-8, 14, size=(25, 2))
    return np.vstack([normal, anomalies]), np.r_[np.zeros(750), np.ones(25)]


def test_auto_covariance_follows_the_number_of_features():
    rng = np.random.default_rng(0)
    for features, expected in ((1, "diag"), (4, "full"), (15, "full"), (16, "diag")):
        X = rng.normal(size=(120, features))
        model = AnomalyMixture(epochs=5, num_posterior_draws=10).fit(X)
        assert model.covariance_ == expected, features
        assert model.model_.covariance == expected
        assert "covariance='auto'" in model.shape_["reason"]
    given = AnomalyMixture(covariance="diag", epochs=5, num_posterior_draws=10).fit(X[:, :4])
    assert given.covariance_ == "diag" and "was given" in given.shape_["reason"]


def test_auto_components_choose_k_by_held_out_density():
    X, y = _three_clusters()
    model = AnomalyMixture(n_components="auto", max_components=5, epochs=150, seed=0).fit(X)
    table = model.shape_["selection"]
    assert [row["n_components"] for row in table] == [1, 2, 3, 4, 5]
    densities = [row["heldout_log_density"] for row in table]
    assert densities[2] > densities[1] > densities[0]  # three clusters are seen as three
    assert model.n_components_ == 3 and model.model_.n_components == 3
    assert [row["chosen"] for row in table] == [False, False, True, False, False]
    assert ranking_metrics(y, model.anomaly_proba(X))["aucroc"] > 0.95
    fixed = AnomalyMixture(n_components=1, epochs=150, seed=0).fit(X)
    assert "selection" not in fixed.shape_ and fixed.n_components_ == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_components": "many"}, "n_components must be a positive integer or 'auto'"),
        ({"n_components": "auto", "max_components": 0}, "max_components"),
        ({"covariance": "spherical"}, "covariance"),
    ],
)
def test_bad_shape_options_fail_before_the_data_are_read(options, message):
    with pytest.raises(ValueError, match=message):
        AnomalyMixture(**options).fit("not read")


def test_cli_components_auto_states_the_choice(tmp_path, capsys):
    X, y = _three_clusters(1)
    path = tmp_path / "clusters.npz"
    np.savez(path, X=X, y=y)
    out = tmp_path / "run"
    args = ["anomaly", str(path), "--label-column", "y", "--components", "auto"]
    args += ["--max-components", "4", "--epochs", "150", "--out", str(out), "--report", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_components"] == 3 and summary["covariance"] == "full"
    assert "n_components='auto'" in summary["shape_reason"]
    assert len(summary["shape_selection"]) == 4
    assert "choice of K" in (out / "report.html").read_text()
    with pytest.raises(SystemExit) as stopped:  # argparse's own usage error
        main(["anomaly", str(path), "--components", "x"])
    assert stopped.value.code == 2
