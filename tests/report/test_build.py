import re

import numpy as np
import pytest

from bayesvae.cli import main
from bayesvae.report import FAMILY_SECTIONS, build


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    assert (
        main(
            [
                "vae",
                "--epochs",
                "2",
                "--hidden",
                "16",
                "--out",
                str(out),
                "--no-progress",
                "--report",
            ]
        )
        == 0
    )
    return out


def test_vae_report_is_self_contained(vae_run):
    html = (vae_run / "report.html").read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "<link" not in html and "@import" not in html and "url(" not in html
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) >= 6 and all(s.startswith("data:image/png;base64,") for s in sources)
    for heading in ("Variational autoencoder", "Stochastic variational inference", "Configuration"):
        assert heading in html
    assert "active" in html and "k̂" in html
    assert "Bounds on log p(x) per data point (mean over 180 points)" in html  # val rows
    import arviz as az

    assert "log_likelihood" in az.from_netcdf(vae_run / "posterior.nc").groups()
    markdown = (vae_run / "report.md").read_text()
    assert "## Variational autoencoder" in markdown and "](loss_curves.png)" in markdown


def test_abtest_report_has_decision_and_mcmc_sections(tmp_path):
    out = tmp_path / "ab"
    assert (
        main(
            [
                "abtest",
                "--arm",
                "A=20/100",
                "--arm",
                "B=30/100",
                "--method",
                "mcmc",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    paths = build(out, title="checkout test")
    html = paths.html.read_text()
    assert "checkout test" in html and "A/B test" in html and "decision" in html
    assert "MCMC diagnostics" in html and "r_hat" in html
    assert (out / "trace.png").exists() and (out / "rank.png").exists()


def test_report_command(vae_run, capsys, tmp_path):
    assert main(["report", str(vae_run)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2  # a folder without config.yaml
    assert "not a bayesvae run folder" in capsys.readouterr().err


def test_abtest_report_needs_out(capsys):
    assert main(["abtest", "--arm", "A=2/10", "--arm", "B=3/10", "--report"]) == 2
    assert "--report needs --out" in capsys.readouterr().err


def test_every_existing_family_has_report_sections():
    from bayesvae.models import MODEL_REGISTRY

    library = {
        name for name, cls in MODEL_REGISTRY.items() if cls.__module__.startswith("bayesvae.")
    }
    assert library and library <= set(FAMILY_SECTIONS)


def test_a_run_records_its_versions_and_the_report_shows_them(tmp_path, digits):
    import yaml as _yaml

    import bayesvae
    from bayesvae.report import build as build_report

    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(8,), seed=0)
    run = bayesvae.fit(vae, digits.x[:64], epochs=1, progress=False).save(tmp_path / "run")
    config = _yaml.safe_load((run / "config.yaml").read_text())
    assert set(config["versions"]) == {
        "python",
        "torch",
        "pyro",
        "numpyro",
        "jax",
        "arviz",
        "bayesvae",
    }
    config["versions"]["torch"] = "1.0.0-recorded"  # the report shows the record, not now
    (run / "config.yaml").write_text(_yaml.safe_dump(config))
    with pytest.raises(ValueError, match="config.yaml is not the file this run saved"):
        build_report(run)  # a hand edit is caught by the manifest ...
    (run / "manifest.json").unlink()  # ... and accepted once the manifest is removed
    html = build_report(run).html.read_text()
    assert "versions at fit time" in html and "torch 1.0.0-recorded" in html
    assert str(tmp_path) not in html  # the folder's name, never its absolute path


@pytest.mark.parametrize(
    ("arms", "rope", "kind"),
    [
        (["A=200/1000", "B=300/1000"], None, "choose"),
        (["A=20/100", "B=22/100"], None, "collect"),
        (["A=5000/10000", "B=5010/10000"], "0.02", "equivalent"),
    ],
)
def test_a_decision_is_styled_by_what_it_means_and_the_page_uses_the_runs_hdi(
    tmp_path, arms, rope, kind
):
    out = tmp_path / "ab"
    args = ["abtest", *[f"--arm={arm}" for arm in arms], "--method", "mcmc", "--out", str(out)]
    args += ["--hdi-prob", "0.9", "--report", "--no-progress"]
    assert main(args + (["--rope", rope] if rope else [])) == 0
    html = (out / "report.html").read_text()
    assert f'class="decision decision-{kind}"' in html
    assert '<p class="ok">&#10003; decision' not in html  # never a pass/fail tick
    assert "90% HDI" in html and "hdi_3%" not in html and "hdi_5%" in html
    assert ("ROPE ±0.02 marked" in html) == (rope is not None)
    assert ("ROPE" in html.split("lift over the control")[1][:40]) == (rope is not None)
    assert html.count('class="lead"') >= 2  # the A/B and MCMC sections open in plain words


def test_numbers_are_formatted_by_magnitude():
    from bayesvae.report.build import format_number

    assert format_number(17188.0) == "17188" and format_number(17188.4) == "17188"
    assert format_number(0.00004) == "4e-05"  # an MCSE is not rounded away to 0.0
    assert format_number(0.5) == "0.5" and format_number(1.23456) == "1.2346"
    assert format_number("B") == "B" and format_number(3) == "3"


def test_vae_anomaly_runs_get_their_own_report_section(tmp_path):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 3)), rng.normal(6.0, 1.0, size=(8, 3))])
    np.savez(tmp_path / "points.npz", X=X, y=np.r_[np.zeros(200), np.ones(8)])
    out = tmp_path / "run"
    args = ["vae-anomaly", str(tmp_path / "points.npz"), "--label-column", "y", "--epochs", "5"]
    assert main([*args, "--out", str(out), "--report", "--no-progress"]) == 0
    markdown = (out / "report.md").read_text()
    assert "## VAE anomaly scores" in markdown and "AUCROC" in markdown
    assert "ten rows with the highest anomaly scores" in markdown
    assert (out / "scores.png").is_file()
    assert main([*args, "--report"]) == 2  # --report needs --out
