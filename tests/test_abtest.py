import json
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayesvae.abtest import abtest, abtest_from_rows
from bayesvae.cli import main
from bayesvae.infer.mcmc import ConvergenceWarning, mcmc
from bayesvae.models import BetaBinomialABTest

COUNTS = {"A": (200, 1000), "B": (220, 1000)}
EXACT = 0.863657


def test_exact_answer_has_no_monte_carlo_error():
    result = abtest(COUNTS)
    lift = result.lift[0]
    assert lift["arm"] == "B" and lift["prob_better"] == pytest.approx(EXACT, abs=1e-6)
    assert lift["prob_better_se"] == 0.0 and result.prob_best_se.tolist() == [0.0, 0.0]
    assert result.prob_best[1] == pytest.approx(EXACT, abs=1e-6)
    assert result.posterior_mean == pytest.approx([201 / 1002, 221 / 1002])
    assert result.hdi[0, 0] < 201 / 1002 < result.hdi[0, 1]
    assert lift["absolute_mean"] == pytest.approx(20 / 1002)
    assert lift["relative_hdi"][0] < 0 < lift["relative_hdi"][1]


@pytest.mark.parametrize("method", ["mcmc", "svi"])
def test_mcmc_and_svi_agree_with_the_exact_answer(method):
    result = abtest(COUNTS, method=method, seed=0)
    lift = result.lift[0]
    se = lift["prob_better_se"]
    assert 0 < se < 0.005
    assert abs(lift["prob_better"] - EXACT) < 0.01
    assert abs(lift["prob_better"] - EXACT) < 3 * se
    idata = result.to_inference_data()
    assert {"posterior", "observed_data", "log_likelihood"} <= set(idata.groups())
    assert list(idata.posterior["rate"].coords["arm"].values) == ["A", "B"]
    # two observations (arms), each highly influential: ArviZ rightly warns about k-hat
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert np.isfinite(az.loo(idata).elpd_loo)


def test_mcmc_records_sample_stats_and_several_chains():
    result = abtest(COUNTS, method="mcmc", num_samples=1000, num_chains=2)
    idata = result.to_inference_data()
    assert idata.posterior.sizes["chain"] == 2 and "sample_stats" in idata.groups()
    assert result.diagnostics["max_rhat"] < 1.01 and result.diagnostics["divergences"] == 0
    assert "r_hat" in az.summary(idata).columns


def test_prob_best_over_four_arms_sums_to_one_for_every_method():
    counts = {"A": (20, 100), "B": (25, 100), "C": (30, 100), "D": (22, 100)}
    for method in ("exact", "mcmc", "svi"):
        result = abtest(counts, method=method, num_samples=1000, svi_steps=600)
        assert result.prob_best.sum() == pytest.approx(1.0, abs=1e-9)
        assert int(np.argmax(result.prob_best)) == 2
        assert np.argmin(result.expected_loss) == 2


def test_pyro_and_numpyro_nuts_agree():
    model = BetaBinomialABTest(["A", "B"])
    data = ([200, 220], [1000, 1000])
    fast = mcmc(model, *data, backend="numpyro", num_samples=2000, num_chains=2, seed=1)
    slow = mcmc(model, *data, backend="pyro", num_samples=600, num_warmup=300, num_chains=2, seed=1)
    for result in (fast, slow):
        assert result.samples["rate"].shape[:2] == (2, result.num_samples)
    # unrounded means and Monte Carlo standard errors (az.summary rounds them)
    summary_fast, summary_slow = fast.summary(round_to="none"), slow.summary(round_to="none")
    se = np.hypot(summary_fast["mcse_mean"], summary_slow["mcse_mean"])
    assert (abs(summary_fast["mean"] - summary_slow["mean"]) < 4 * se).all()


def test_poor_mixing_warns():
    model = BetaBinomialABTest(["A", "B"])
    with pytest.warns(ConvergenceWarning) as caught:
        result = mcmc(model, [200, 220], [1000, 1000], num_samples=30, num_warmup=20, num_chains=2)
    assert any("ESS below 400" in str(w.message) for w in caught)
    assert result.problems == [str(w.message) for w in caught]


def test_hierarchical_model_pools_extreme_arms():
    counts = {f"v{k}": (s, 50) for k, s in enumerate([2, 5, 6, 7, 8, 15])}
    pooled = abtest(counts, hierarchical=True, method="mcmc", num_samples=1500)
    separate = abtest(counts)
    # partial pooling pulls the extreme arms towards the middle
    assert pooled.posterior_mean[0] > separate.posterior_mean[0]
    assert pooled.posterior_mean[-1] < separate.posterior_mean[-1]
    assert "mean" in pooled.to_inference_data().posterior
    svi = abtest(counts, hierarchical=True, method="svi", svi_steps=800)
    assert np.all(np.abs(svi.posterior_mean - pooled.posterior_mean) < 0.03)


def test_decisions():
    assert abtest(COUNTS).decision.text == "keep collecting"
    clear = abtest({"A": (100, 1000), "B": (200, 1000)}).decision
    assert clear.text == "choose B" and clear.arm == "B" and clear.expected_loss < 0.001
    same = abtest({"A": (20000, 100000), "B": (20010, 100000)}, rope=0.01).decision
    assert same.text == "equivalent" and "ROPE" in same.reason


def test_predictive_for_the_next_users():
    table = abtest(COUNTS).predictive(500)
    assert list(table["arm"]) == ["A", "B"]
    assert table["mean"].to_numpy() == pytest.approx([500 * 201 / 1002, 500 * 221 / 1002], rel=0.01)
    assert (table["low"] < table["mean"]).all() and (table["mean"] < table["high"]).all()


def test_rows_are_aggregated_per_arm(tmp_path):
    rows = pd.DataFrame(
        {"version": ["A"] * 10 + ["B"] * 5, "converted": [1, 0] * 5 + [1, 1, 0, 1, 0]}
    )
    result = abtest_from_rows(rows, group="version", outcome="converted")
    assert result.successes.tolist() == [5, 3] and result.trials.tolist() == [10, 5]
    as_bools = rows.assign(converted=rows["converted"].astype(bool))
    assert abtest_from_rows(as_bools, group="version", outcome="converted").successes.tolist() == [
        5,
        3,
    ]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    again = abtest_from_rows(tmp_path / "rows.csv", group="version", outcome="converted")
    assert again.lift[0]["prob_better"] == pytest.approx(result.lift[0]["prob_better"])


@pytest.mark.parametrize(
    "frame, kwargs, words",
    [
        (pd.DataFrame({"g": ["A", "B"], "y": [0, 2]}), {}, "only 0 and 1"),
        (pd.DataFrame({"g": ["A", "B"], "y": ["yes", "no"]}), {}, "only 0 and 1"),
        (pd.DataFrame({"g": ["A", "B"], "y": [0, 1]}), {"group": "arm"}, "group column 'arm'"),
        (pd.DataFrame({"g": ["A", "B"], "y": [0, 1]}), {"outcome": "z"}, "outcome column 'z'"),
        (pd.DataFrame({"g": ["A", "A"], "y": [0, 1]}), {}, "at least two arms"),
        (pd.DataFrame({"g": [], "y": []}), {}, "no rows"),
    ],
)
def test_bad_rows(frame, kwargs, words):
    options = {"group": "g", "outcome": "y", **kwargs}
    with pytest.raises(ValueError, match=words):
        abtest_from_rows(frame, **options)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"method": "bootstrap"}, ValueError, "method"),
        ({"control": "Z"}, ValueError, "control arm 'Z'"),
        ({"rope": -0.1}, ValueError, "rope"),
        ({"rope": 0.0}, ValueError, "rope must be a finite number > 0"),
        ({"rope": "0.1"}, ValueError, "rope"),
        ({"loss_threshold": float("nan")}, ValueError, "loss_threshold"),
        ({"hdi_prob": "0.9"}, ValueError, "hdi_prob"),
        ({"hierarchical": True}, ValueError, "non-hierarchical"),
        ({"hdi_prob": 1.5}, ValueError, "hdi_prob"),
        ({"prior": (0, 1)}, ValueError, "prior"),
    ],
)
def test_bad_options(kwargs, error, words):
    with pytest.raises(error, match=words):
        abtest(COUNTS, **kwargs)


def test_numpy_scalars_are_options_like_python_numbers():
    """A NumPy float32 option (e.g. read from an array) is a number like any other."""
    plain = abtest(COUNTS, rope=0.01, hdi_prob=0.9, loss_threshold=0.001)
    numpy = abtest(
        COUNTS, rope=np.float32(0.01), hdi_prob=np.float32(0.9), loss_threshold=np.float16(0.001)
    )
    assert numpy.decision.rope == pytest.approx(plain.decision.rope)
    assert numpy.hdi_prob == pytest.approx(plain.hdi_prob)
    assert numpy.decision.text == plain.decision.text
    assert numpy.decision.loss_threshold == pytest.approx(plain.decision.loss_threshold, rel=1e-3)


def test_counts_forms():
    by_arrays = abtest(arms=["A", "B"], successes=[200, 220], trials=[1000, 1000])
    assert by_arrays.lift[0]["prob_better"] == pytest.approx(EXACT, abs=1e-6)
    with pytest.raises(TypeError, match="either counts"):
        abtest(COUNTS, successes=[1, 2])
    with pytest.raises(TypeError, match=r"\(successes, trials\)"):
        abtest({"A": 5, "B": (1, 2)})


# ---------------------------------------------------------------------------------- the CLI
def test_cli_json_holds_the_numbers(capsys):
    code = main(["abtest", "--arm", "A=200/1000", "--arm", "B=220/1000", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lift"][0]["prob_better"] == pytest.approx(EXACT, abs=1e-6)
    assert out["arms"][1]["prob_best"] == pytest.approx(EXACT, abs=1e-6)
    assert out["decision"]["text"] == "keep collecting"
    assert {"posterior_mean", "hdi", "expected_loss"} <= set(out["arms"][0])


def test_cli_csv_and_output_folder(tmp_path, capsys):
    rows = pd.DataFrame({"version": ["A", "B"] * 50, "converted": [0, 1, 0, 0] * 25})
    rows.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "ab"
    code = main(
        [
            "abtest",
            str(tmp_path / "rows.csv"),
            "--group",
            "version",
            "--outcome",
            "converted",
            "--method",
            "mcmc",
            "--rope",
            "0.05",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert "lift over A" in capsys.readouterr().out
    for name in (
        "result.json",
        "summary.txt",
        "posteriors.png",
        "lift.png",
        "prob_best.png",
        "posterior.nc",
    ):
        assert (out / name).stat().st_size > 0, name
    assert "posterior" in az.from_netcdf(out / "posterior.nc").groups()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--arm", "A=200/100", "--arm", "B=1/10"], "more successes"),
        (["--arm", "A=2/10"], "at least two arms"),
        (["--arm", "A=2/10", "--arm", "A=3/10"], "unique"),
        (["--arm", "A=-2/10", "--arm", "B=3/10"], "non-negative"),
        (["--arm", "A=2.5/10", "--arm", "B=3/10"], "whole numbers"),
        (["--arm", "A=2/0", "--arm", "B=3/10"], "zero trials"),
        (["--arm", "A:2/10", "--arm", "B=3/10"], "NAME=SUCCESSES/TRIALS"),
        (["--arm", "A=2/10", "--arm", "B=3/10", "--prior", "0,1"], "prior"),
        (["--arm", "A=2/10", "--arm", "B=3/10", "--prior", "x"], "comma-separated numbers"),
        (["--arm", "A=2/10", "--arm", "B=3/10", "--prior", "1,2,3"], "two numbers"),
        (["--arm", "A=2/10", "--arm", "B=3/10", "--control", "C"], "control arm"),
        (["missing.csv", "--group", "g", "--outcome", "y"], "does not exist"),
        (["{empty}", "--group", "g", "--outcome", "y"], "empty"),
        (["{rows}", "--group", "g", "--outcome", "nope"], "outcome column"),
        (["{rows}"], "--group and --outcome"),
        ([], "at least two"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, args, words):
    (tmp_path / "empty.csv").write_text("")
    pd.DataFrame({"g": ["A", "B"], "y": [0, 1]}).to_csv(tmp_path / "rows.csv", index=False)
    args = [a.format(empty=tmp_path / "empty.csv", rows=tmp_path / "rows.csv") for a in args]
    code = main(["abtest", *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1


def test_exact_result_converts_to_inference_data_too():
    idata = abtest(COUNTS, num_draws=4000).to_inference_data()
    assert {"posterior", "observed_data", "log_likelihood"} <= set(idata.groups())
    assert idata.posterior["rate"].shape == (1, 4000, 2)
    assert float(idata.posterior["rate"].mean(("chain", "draw"))[1]) == pytest.approx(
        221 / 1002, abs=0.002
    )


# ------------------------------------------------------------- metrics beyond conversion
from bayesvae.abtest import abtest_metrics, abtest_samples  # noqa: E402

_RNG = np.random.default_rng(7)
METRIC_SAMPLES = {
    "count": {"A": _RNG.poisson(3.0, 600), "B": _RNG.poisson(3.3, 600)},
    "continuous": {"A": _RNG.normal(10.0, 2.0, 400), "B": _RNG.normal(10.3, 2.0, 400)},
    "revenue": {
        "A": _RNG.lognormal(1.0, 1.0, 3000) * (_RNG.random(3000) < 0.1),
        "B": _RNG.lognormal(1.1, 1.0, 3000) * (_RNG.random(3000) < 0.1),
    },
}


@pytest.mark.parametrize("metric", ["count", "continuous", "revenue"])
def test_each_metric_agrees_across_exact_mcmc_and_svi(metric):
    samples = METRIC_SAMPLES[metric]
    exact = abtest_samples(samples, metric=metric)
    assert exact.metric == metric and exact.units.tolist() == [len(v) for v in samples.values()]
    means = [float(np.mean(v)) for v in samples.values()]
    assert exact.posterior_mean == pytest.approx(means, rel=0.05)
    reference = exact.lift[0]["prob_better"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sampled = abtest_samples(samples, metric=metric, method="mcmc", num_samples=1500)
        fitted = abtest_samples(samples, metric=metric, method="svi", svi_steps=1500)
    for other in (sampled, fitted):
        lift = other.lift[0]
        assert abs(lift["prob_better"] - reference) < max(4 * lift["prob_better_se"], 0.02)
        assert other.posterior_mean == pytest.approx(exact.posterior_mean, rel=0.01)
    if metric != "revenue":  # quadrature: no Monte Carlo error
        assert exact.lift[0]["prob_better_se"] == 0.0


def test_exact_count_answer_is_the_gamma_quadrature():
    from scipy import integrate, stats

    samples = METRIC_SAMPLES["count"]
    result = abtest_samples(samples, metric="count")
    a = stats.gamma(0.1 + samples["A"].sum(), scale=1 / (0.1 + 600))
    b = stats.gamma(0.1 + samples["B"].sum(), scale=1 / (0.1 + 600))
    expected, _ = integrate.quad(lambda x: b.pdf(x) * a.cdf(x), 2.0, 4.5, epsabs=1e-12)
    assert result.lift[0]["prob_better"] == pytest.approx(expected, abs=1e-8)
    assert result.decision.loss_threshold == pytest.approx(0.01 * a.mean())


def test_overdispersed_counts_are_flagged_and_the_negative_binomial_is_wider():
    rng = np.random.default_rng(3)
    samples = {
        "A": rng.negative_binomial(0.5, 0.5 / 40.5, 3000),
        "B": rng.negative_binomial(0.5, 0.5 / 42.5, 3000),
    }
    poisson = abtest_samples(samples, metric="count")
    assert [c.name for c in poisson.failed_checks] == ["dispersion"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        negbin = abtest_samples(
            samples,
            metric="count",
            count_likelihood="negative-binomial",
            method="mcmc",
            num_samples=1000,
        )
    width = lambda r: np.diff(r.hdi, axis=1).ravel()  # noqa: E731
    assert np.all(width(negbin) > 5 * width(poisson))  # variance/mean is about 80 here
    assert "negative binomial" in negbin.likelihood
    with pytest.raises(ValueError, match="no closed-form posterior"):
        abtest_samples(samples, metric="count", count_likelihood="negative-binomial")


def test_winsorize_removes_the_pull_of_one_extreme_unit():
    rng = np.random.default_rng(4)
    samples = {"A": rng.poisson(50, 4000).astype(float), "B": rng.poisson(50, 4000).astype(float)}
    samples["A"][0] = 49_854.0
    raw = abtest_samples(samples, metric="count")
    assert "extreme units" in [c.name for c in raw.failed_checks]
    assert raw.prob_best[0] > 0.99  # one unit makes A look better
    capped = abtest_samples(samples, metric="count", winsorize=0.999)
    assert 0.05 < capped.prob_best[0] < 0.95
    assert any(c.name == "winsorize" for c in capped.checks)
    with pytest.raises(ValueError, match="winsorize"):
        abtest_samples(samples, metric="count", winsorize=0.2)


def _retention_like(tmp_path, *, imbalance=0.5, duplicates=0, inconsistent=0):
    rng = np.random.default_rng(5)
    n = 8000
    version = np.where(rng.random(n) < imbalance, "gate_30", "gate_40")
    rounds = rng.negative_binomial(0.6, 0.6 / 50.6, n)
    frame = pd.DataFrame(
        {
            "userid": np.arange(n),
            "version": version,
            "sum_gamerounds": rounds,
            "retention_7": rng.random(n) < 0.19,
            "page": np.where(version == "gate_30", "old", "new"),
            "revenue": rng.lognormal(1, 1, n) * (rng.random(n) < 0.05),
        }
    )
    frame.loc[: duplicates - 1, "userid"] = frame.loc[
        duplicates : 2 * duplicates - 1, "userid"
    ].to_numpy()
    frame.loc[: inconsistent - 1, "page"] = "other"
    path = tmp_path / "retention.csv"
    frame.to_csv(path, index=False)
    return path


def test_rows_are_checked_before_they_are_analysed(tmp_path):
    clean = _retention_like(tmp_path)
    result = abtest_from_rows(
        clean, group="version", outcome="retention_7", unit="userid", check_column="page"
    )
    assert [c.name for c in result.checks] == [
        "sample ratio",
        "duplicate units",
        "assignment consistency",
    ]
    assert result.failed_checks == []
    skewed = _retention_like(tmp_path, imbalance=0.53, duplicates=40, inconsistent=25)
    result = abtest_from_rows(
        skewed, group="version", outcome="retention_7", unit="userid", check_column="page"
    )
    failed = {c.name: c for c in result.failed_checks}
    assert set(failed) == {"sample ratio", "duplicate units", "assignment consistency"}
    assert failed["assignment consistency"].details["inconsistent_rows"] == 25
    assert failed["duplicate units"].details["extra_rows"] == 40
    assert "data checks:" in result.table() and "FAIL" in result.table()
    deduped = abtest_from_rows(
        skewed, group="version", outcome="retention_7", unit="userid", dedupe="first"
    )
    assert int(deduped.units.sum()) == 8000 - 40
    assert (
        abtest_from_rows(
            skewed,
            group="version",
            outcome="retention_7",
            allocation={"gate_30": 53, "gate_40": 47},
        )
        .checks[0]
        .passed
    )


def test_many_metrics_share_one_set_of_checks(tmp_path):
    path = _retention_like(tmp_path)
    suite = abtest_metrics(
        path,
        group="version",
        metrics={"retention_7": "conversion", "sum_gamerounds": "count", "revenue": "revenue"},
        unit="userid",
        winsorize=0.999,
    )
    assert list(suite.results) == ["retention_7", "sum_gamerounds", "revenue"]
    assert suite.primary.metric == "conversion"
    assert [c.name for c in suite.checks] == ["sample ratio", "duplicate units"]
    assert "winsorize" in [c.name for c in suite["sum_gamerounds"].checks]
    summary = suite.to_dict()
    assert [r["metric"] for r in summary["results"]] == ["conversion", "count", "revenue"]
    json.dumps(summary)
    assert suite.table().count("Bayesian A/B test of") == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"metric": "ratio"}, ValueError, "metric"),
        ({"metric": "count", "hierarchical": True}, ValueError, "hierarchical"),
        ({"metric": "continuous", "prior": (1, 1)}, ValueError, "takes 4 numbers"),
        ({"metric": "count", "count_likelihood": "zip"}, ValueError, "count_likelihood"),
        ({"metric": "conversion", "winsorize": 0.99}, ValueError, "winsorize"),
    ],
)
def test_bad_metric_options(kwargs, error, words):
    with pytest.raises(error, match=words):
        abtest_samples({"A": [0, 1, 1], "B": [1, 0, 0]}, **kwargs)


def test_bad_row_checks(tmp_path):
    path = _retention_like(tmp_path)
    with pytest.raises(ValueError, match="dedupe needs unit"):
        abtest_from_rows(path, group="version", outcome="retention_7", dedupe="first")
    with pytest.raises(ValueError, match="allocation"):
        abtest_from_rows(path, group="version", outcome="retention_7", allocation=[1, 2, 3])
    with pytest.raises(ValueError, match="check column"):
        abtest_from_rows(path, group="version", outcome="retention_7", check_column="nope")


def test_cli_metrics_checks_and_report(tmp_path, capsys):
    path = _retention_like(tmp_path, imbalance=0.53, duplicates=10)
    out = tmp_path / "run"
    code = main(
        [
            "abtest",
            str(path),
            "--group",
            "version",
            "--outcome",
            "retention_7",
            "--outcome",
            "sum_gamerounds",
            "--metric",
            "conversion",
            "--metric",
            "count",
            "--unit",
            "userid",
            "--allocation",
            "50,50",
            "--winsorize",
            "0.999",
            "--out",
            str(out),
            "--report",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert {c["name"]: c["passed"] for c in summary["checks"]} == {
        "sample ratio": False,
        "duplicate units": False,
    }
    assert [r["outcome"] for r in summary["results"]] == ["retention_7", "sum_gamerounds"]
    html = (out / "report.html").read_text()
    assert "sample-ratio mismatch" in html and "A/B test: sum_gamerounds (count)" in html
    count_section = html[html.index("A/B test: sum_gamerounds (count)") :]
    # a failed check of the metric is shown before its decision
    assert count_section.index("overdispersed counts") < count_section.index("Decision:")
    assert (out / "posteriors_1.png").is_file()
    assert (
        main(
            [
                "abtest",
                str(path),
                "--group",
                "version",
                "--outcome",
                "revenue",
                "--metric",
                "revenue",
            ]
        )
        == 0
    )
    assert "delta log-normal" in capsys.readouterr().out


def test_cli_hierarchical_report_shows_shrinkage(tmp_path, capsys):
    out = tmp_path / "pooled"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        code = main(
            [
                "abtest",
                "--arm",
                "A=10/100",
                "--arm",
                "B=20/100",
                "--arm",
                "C=15/100",
                "--hierarchical",
                "--method",
                "mcmc",
                "--out",
                str(out),
                "--report",
            ]
        )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    rows = {row["arm"]: row for row in result["shrinkage"]}
    # the extreme arms are drawn towards the others (C, at the centre, stays near it)
    assert rows["A"]["observed"] < rows["A"]["pooled_mean"] < 0.15
    assert 0.15 < rows["B"]["pooled_mean"] < rows["B"]["observed"]
    for row in rows.values():
        assert row["shift"] == pytest.approx(row["pooled_mean"] - row["flat_mean"])
    assert "shrinkage" in (out / "report.md").read_text()
    assert (out / "shrinkage.png").is_file()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--arm", "A=1/10", "--arm", "B=2/10", "--unit", "user"], "need a CSV file"),
        (["--arm", "A=1/10", "--arm", "B=2/10", "--metric", "count"], "need a CSV file"),
        (["--allocation", "a,b"], "--allocation"),
        (["--prior", "x"], "--prior"),
    ],
)
def test_cli_bad_metric_input_exits_2(tmp_path, capsys, args, words):
    if "--arm" not in args:
        args = [
            str(_retention_like(tmp_path)),
            "--group",
            "version",
            "--outcome",
            "retention_7",
            *args,
        ]
    assert main(["abtest", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_a_result_saves_the_run_folder_the_cli_writes(tmp_path):
    """``ABTestResult.save`` (Python) writes what ``bayesvae abtest --out`` writes: the report
    builds from it, and config.yaml names the model's family, its prior and the analysis."""
    import yaml

    from bayesvae.abtest import abtest, abtest_metrics
    from bayesvae.report import build

    result = abtest({"<b>A</b>": (12, 100), "B": (20, 100)}, prior=(2.0, 3.0), rope=0.01, seed=1)
    folder = result.save(tmp_path / "ab")
    for name in ("result.json", "summary.txt", "posteriors.png", "lift.png", "prob_best.png"):
        assert (folder / name).stat().st_size > 0, name
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["family"] == "BetaBinomialABTest"
    assert config["model"]["arms"] == ["<b>A</b>", "B"]
    assert config["model"]["prior"] == [2.0, 3.0] and config["model"]["hierarchical"] is False
    assert config["analysis"]["method"] == "exact" and config["analysis"]["rope"] == 0.01
    assert config["analysis"]["metric"] == "conversion" and config["analysis"]["outcome"] is None
    assert "metric" not in result.analysis  # the options only: the metric is result.metric
    assert json.loads((folder / "result.json").read_text()) == json.loads(
        json.dumps(result.to_dict())
    )
    html = build(folder).html.read_text()
    assert "&lt;b&gt;A&lt;/b&gt;" in html and "<b>A</b>" not in html

    frame = pd.DataFrame(
        {
            "version": ["A", "B"] * 100,
            "converted": [0, 1, 0, 0] * 50,
            "rounds": np.random.default_rng(0).poisson(5.0, size=200),
        }
    )
    suite = abtest_metrics(
        frame, group="version", metrics={"converted": "conversion", "rounds": "count"}, seed=0
    )
    folder = suite.save(tmp_path / "suite")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["model"]["metrics"] == ["conversion", "count"]
    assert config["analysis"]["outcomes"] == ["converted", "rounds"]
    assert config["analysis"]["metric"] == "conversion"
    assert config["analysis"]["outcome"] == "converted"
    assert config["analysis"]["group"] == "version"
    assert (folder / "posteriors_0.png").is_file() and (folder / "posteriors_1.png").is_file()
    assert len(json.loads((folder / "result.json").read_text())["results"]) == 2
