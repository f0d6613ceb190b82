import pandas as pd
import torch

from bayesvae.report import image_grid, latent_scatter, loss_curves, reconstructions

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_each_plot_writes_a_png_and_returns_the_figure(tmp_path):
    history = pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_elbo": [-50.0, -40.0],
            "val_elbo": [-52.0, -41.0],
            "recon": [-45.0, -36.0],
            "kl": [7.0, 5.0],
        }
    )
    figures = {
        "curves.png": loss_curves(history, tmp_path / "curves.png"),
        "grid.png": image_grid(torch.rand(12, 64), (1, 8, 8), tmp_path / "grid.png"),
        "recon.png": reconstructions(
            torch.rand(5, 64), torch.rand(5, 64), (1, 8, 8), tmp_path / "recon.png"
        ),
        "scatter2.png": latent_scatter(
            torch.randn(50, 2), torch.arange(50) % 3, tmp_path / "scatter2.png"
        ),
        "scatter5.png": latent_scatter(torch.randn(50, 5), None, tmp_path / "scatter5.png"),
    }
    for name, figure in figures.items():
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
        assert figure.axes, name
    assert figures["scatter5.png"].axes[0].get_xlabel() == "PC 1"
    assert figures["scatter2.png"].axes[0].get_xlabel() == "z[0]"
    assert len(figures["recon.png"].axes) == 10


def test_ab_plots(tmp_path):
    from bayesvae.abtest import abtest
    from bayesvae.report import ab_lift, ab_posteriors, ab_prob_best

    for method in ("exact", "svi"):
        result = abtest(
            {"A": (20, 100), "B": (30, 100), "C": (25, 100)},
            method=method,
            svi_steps=300,
            num_draws=5000,
        )
        for name, draw in (("post", ab_posteriors), ("prob", ab_prob_best)):
            figure = draw(result, tmp_path / f"{name}-{method}.png")
            assert (tmp_path / f"{name}-{method}.png").read_bytes()[:8] == PNG_MAGIC
            assert figure.axes
        figure = ab_lift(result, tmp_path / f"lift-{method}.png", rope=0.02)
        assert len(figure.axes[0].get_legend().get_texts()) == 3  # two arms and the ROPE
