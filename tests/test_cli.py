import json

import numpy as np
import pytest
import yaml

import bayesvae
from bayesvae.cli import main


def test_vae_command_writes_a_complete_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "vae",
            "--data",
            "digits",
            "--epochs",
            "2",
            "--latent-dim",
            "2",
            "--hidden",
            "32",
            "--out",
            str(out),
            "--no-progress",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 2 and summary["val_elbo"] < 0
    for name in (
        "config.yaml",
        "model.pt",
        "metrics.csv",
        "loss_curves.png",
        "reconstructions.png",
        "samples.png",
        "latent.png",
    ):
        assert (out / name).stat().st_size > 0, name
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["family"] == "VAE" and config["model"]["latent_dim"] == 2
    model = bayesvae.load(out)
    assert model.latent_dim == 2


def test_vae_resume_continues_a_stopped_run_to_more_epochs(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "run"
    common = ["vae", "--data", "digits", "--hidden", "16", "--out", str(out), "--no-progress"]
    assert main([*common, "--resume", "--epochs", "2"]) == 2  # nothing to resume yet
    assert "no checkpoint to resume from" in capsys.readouterr().err
    assert main([*common, "--epochs", "2", "--checkpoint-every", "2"]) == 0
    assert main([*common, "--epochs", "3", "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs"] == 3
    history = pd.read_csv(out / "metrics.csv")
    assert history["epoch"].tolist() == [1, 2, 3]  # the first two epochs were not rerun
    assert (out / "checkpoints" / "last.pt").is_file()  # kept across the run folder's swap
    bayesvae.load(out)


def test_vae_command_conv_encoder_and_npy_file(tmp_path):
    x = np.random.default_rng(0).random((60, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = main(
        [
            "vae",
            "--data",
            str(tmp_path / "x.npy"),
            "--epochs",
            "1",
            "--encoder",
            "conv",
            "--latent-dim",
            "3",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    assert code == 0
    assert not (tmp_path / "run" / "latent.png").exists()  # no labels, no scatter
    assert bayesvae.load(tmp_path / "run").config["encoder"] == "conv"


@pytest.mark.parametrize(
    "args, family, files",
    [
        (["--model", "cvae"], "ConditionalVAE", ["manifold.png", "interpolation.png"]),
        (["--conditional", "--flows", "1"], "ConditionalVAE", ["traversals.png"]),
        (["--model", "hvae", "--elbo", "iwae", "--particles", "3"], "HierarchicalVAE", []),
        (["--flows", "2", "--flow-type", "spline"], "VAE", ["manifold.png"]),
        (
            ["--model", "gumbel", "--num-variables", "3", "--categories", "4"],
            "GumbelSoftmaxVAE",
            [],
        ),
        (["--model", "mixture", "--components", "3"], "MixturePriorVAE", ["manifold.png"]),
        (["--model", "ssvae", "--labelled", "50"], "SemiSupervisedVAE", ["interpolation.png"]),
        (["--elbo", "renyi", "--alpha", "0.3", "--particles", "3"], "VAE", []),
        (["--model", "avb", "--noise-dim", "3"], "AdversarialVAE", ["manifold.png"]),
    ],
)
def test_vae_command_builds_every_vae_of_the_family(tmp_path, capsys, args, family, files):
    out = tmp_path / "run"
    common = ["vae", "--epochs", "2", "--hidden", "32", "--out", str(out), "--no-progress"]
    assert main([*common, "--json", *args]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == family
    for name in ["samples.png", "reconstructions.png", *files]:
        assert (out / name).stat().st_size > 0, name
    loaded = bayesvae.load(out)
    assert loaded.family == family
    if family == "HierarchicalVAE":
        import pandas as pd

        metrics = pd.read_csv(out / "metrics.csv")
        assert {"kl_z1", "kl_z2"} <= set(metrics.columns)
    if family == "GumbelSoftmaxVAE":
        assert not (out / "manifold.png").exists()  # no Gaussian latent to walk
    if family == "SemiSupervisedVAE":  # 5 labels per class; accuracy on the held-out labels
        assert summary["labelled"] == 50 and 0 <= summary["val_accuracy"] <= 1
    if "--alpha" in args:
        assert yaml.safe_load((out / "config.yaml").read_text())["fit"]["alpha"] == 0.3


@pytest.mark.parametrize(
    "args, words",
    [
        (["--data", "missing.npy"], "does not exist"),
        (["--flows", "-1"], "flows must be an integer >= 0"),
        (["--model", "hvae", "--flows", "1"], "--flows is for"),
        (["--model", "gumbel", "--temperature", "0"], "temperature must be a finite number > 0"),
        (["--elbo", "iwae", "--particles", "0"], "num_particles"),
        (["--model", "hvae", "--conditional"], "--conditional cannot"),
        (["--data", "mnist:/no/such/folder"], "does not exist"),
        (["--data", "imagenet"], "expected 'digits'"),
        (["--latent-dim", "0"], "latent_dim"),
        (["--batch-size", "0"], "batch_size"),
        (["--device", "tpu"], "device"),
        (["--labelled", "10"], "--labelled is for --model ssvae"),
        (["--noise-dim", "3"], "--noise-dim is for --model avb"),
        (["--model", "avb", "--flows", "1"], "--flows is for"),
        (["--model", "ssvae", "--labelled", "5000"], "num_labelled must be in [0, 1617]"),
        (["--model", "ssvae", "--classifier-weight", "-1"], "classifier_weight"),
        (["--elbo", "trace", "--alpha", "0.5"], "alpha is the order of elbo='renyi'"),
        (["--elbo", "cubo", "--particles", "4"], "fits a guide to a fixed model"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, words):
    code = main(["vae", "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and err.count("\n") == 1


def test_unknown_choice_is_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["vae", "--out", "x", "--likelihood", "poisson"])
    assert exit_info.value.code == 2


def test_version_help_defaults_and_log_levels(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"bayesvae {bayesvae.__version__}"
    for command in ("vae", "abtest", "anomaly", "vae-anomaly", "topics", "fit"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: 0)" in text, command  # --seed shows its default
        assert "-q, --quiet" in text and "(default: None)" not in text
    with pytest.raises(SystemExit) as exit_info:
        main(["abtest", "--arm", "A=1/10", "--arm", "B=2/10", "-v", "-q"])
    assert exit_info.value.code == 2 and "exclude each other" in capsys.readouterr().err


def test_vae_takes_the_loop_options_users_reach_for(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["vae", "--epochs", "3", "--hidden", "16", "--out", str(out), "--no-progress"]
    args += ["--lr-schedule", "cosine", "--clip-norm", "5", "--early-stopping", "1", "-q"]
    assert main(args) == 0
    fit = yaml.safe_load((out / "config.yaml").read_text())["fit"]
    assert (fit["lr_schedule"], fit["clip_norm"], fit["early_stopping"]) == ("cosine", 5.0, 1)
