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
        ({"hierarchical": True}, ValueError, "non-hierarchical"),
        ({"hdi_prob": 1.5}, ValueError, "hdi_prob"),
        ({"prior": (0, 1)}, ValueError, "prior"),
    ],
)
def test_bad_options(kwargs, error, words):
    with pytest.raises(error, match=words):
        abtest(COUNTS, **kwargs)


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
        (["--arm", "A=2/10", "--arm", "B=3/10", "--prior", "x"], "two numbers"),
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
