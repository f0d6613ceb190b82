"""The VAE run folder written from Python (bayesvae.write_vae_run), as `bayesvae vae` does."""

import json

import numpy as np
import pytest

import bayesvae
from bayesvae.data import ImageData
from bayesvae.vae_run import classifier_summary


@pytest.fixture(scope="module")
def split(digits):
    train = ImageData(x=digits.x[:1200], y=digits.y[:1200], image_shape=digits.image_shape)
    val = ImageData(x=digits.x[1200:1500], y=digits.y[1200:1500], image_shape=digits.image_shape)
    return train, val


def test_a_vae_run_holds_the_model_its_figures_and_report(split, tmp_path):
    train, val = split
    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(32,), seed=0)
    result = bayesvae.fit(vae, train, val=val.x, epochs=2, batch_size=128, progress=False)
    stages = []
    bayesvae.write_vae_run(result, tmp_path / "run", train, val, report=True, stage=stages.append)
    written = {p.name for p in (tmp_path / "run").iterdir()}
    figures = {"loss_curves.png", "reconstructions.png", "samples.png", "latent.png"}
    figures |= {"interpolation.png", "traversals.png", "manifold.png", "khat.png"}
    assert figures | {"diagnostics.json", "posterior.nc", "report.html", "report.md"} <= written
    assert stages == ["VAE checks", "PSIS k-hat, ELBO / CUBO bounds", "posterior draws", "report"]
    diagnostics = json.loads((tmp_path / "run" / "diagnostics.json").read_text())
    assert diagnostics["vae"]["num_points"] == 300 and "psis" in diagnostics
    loaded = bayesvae.load(tmp_path / "run")
    np.testing.assert_allclose(
        loaded.encode(val.x[:5])[0].numpy(), vae.encode(val.x[:5])[0].numpy(), rtol=1e-5
    )
    with pytest.raises(FileExistsError, match="already holds a run"):
        bayesvae.write_vae_run(result, tmp_path / "run", train, overwrite=False)


def test_a_semi_supervised_run_draws_a_row_per_class_and_reports_its_classifier(split, tmp_path):
    train, val = split
    partial = np.where(np.arange(len(train.y)) < 100, train.y, -1)
    m2 = bayesvae.SemiSupervisedVAE(64, num_classes=10, latent_dim=2, hidden_dims=(32,), seed=0)
    result = bayesvae.fit(m2, (train.x, partial), epochs=1, batch_size=128, progress=False)
    summary = classifier_summary(m2, partial, val)
    assert summary["labelled"] == 100 and 0.0 <= summary["val_accuracy"] <= 1.0
    bayesvae.write_vae_run(result, tmp_path / "m2", train, val, report=True, classifier=summary)
    diagnostics = json.loads((tmp_path / "m2" / "diagnostics.json").read_text())
    assert diagnostics["classifier"] == summary
    assert "report.html" in {p.name for p in (tmp_path / "m2").iterdir()}


def test_what_is_not_a_vae_fit_or_image_data_is_refused(split, tmp_path):
    train, val = split
    vae = bayesvae.VAE(64, latent_dim=2, hidden_dims=(8,), seed=0)
    result = bayesvae.fit(vae, train, epochs=1, progress=False)
    with pytest.raises(TypeError, match="result must be what bayesvae.fit returned"):
        bayesvae.write_vae_run(vae, tmp_path / "a", train)
    with pytest.raises(TypeError, match="train must be a bayesvae.data.ImageData"):
        bayesvae.write_vae_run(result, tmp_path / "b", train.x)
    with pytest.raises(TypeError, match="val must be a bayesvae.data.ImageData"):
        bayesvae.write_vae_run(result, tmp_path / "c", train, val.x)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
