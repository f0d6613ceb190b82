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


def _labels(texts):
    return [t.get_text() for t in texts]


def test_image_figures_name_their_axes_rows_and_columns():
    import numpy as np

    from bayesvae.report import plots

    grid = torch.rand(5, 5, 64)
    figure = plots.manifold(grid, (1, 8, 8), dims=(0, 1))
    axis = figure.axes[0]
    assert axis.get_xlabel().startswith("z[0]") and axis.get_ylabel().startswith("z[1]")
    ticks = [float(t) for t in _labels(axis.get_xticklabels())]
    assert ticks == sorted(ticks) and ticks[0] < 0 < ticks[-1]  # z values, low to high
    image = axis.get_images()[0].get_array()
    assert image.shape[1] > 5 * 8  # a gap between the tiles
    values = np.linspace(-3, 3, 4)
    figure = plots.traversals(torch.rand(2, 4, 64), (1, 8, 8), dims=[3, 5], values=values)
    rows = [a.get_ylabel() for a in figure.axes[::4]]
    columns = [a.get_title() for a in figure.axes[:4]]
    assert rows == ["z[3]", "z[5]"] and columns == ["-3.0", "-1.0", "+1.0", "+3.0"]
    figure = plots.interpolation(torch.rand(6, 64), (1, 8, 8), endpoints=("label 1", "label 7"))
    titles = [a.get_title() for a in figure.axes]
    assert titles[0] == "label 1" and titles[-1] == "label 7" and set(titles[1:-1]) == {""}
    figure = plots.image_grid(torch.rand(20, 64), (1, 8, 8), columns=10, row_labels=["a", "b"])
    assert [figure.axes[0].get_ylabel(), figure.axes[10].get_ylabel()] == ["a", "b"]


def test_class_labels_get_a_legend_and_continuous_ones_a_colour_bar():
    from bayesvae.report import plots

    figure = plots.latent_scatter(torch.randn(60, 2), torch.arange(60) % 10)
    legend = figure.axes[0].get_legend()
    assert legend is not None and len(legend.get_texts()) == 10 and len(figure.axes) == 1
    figure = plots.latent_scatter(torch.randn(60, 2), torch.rand(60))
    assert figure.axes[0].get_legend() is None and len(figure.axes) == 2  # the colour bar


def test_loss_curves_use_integer_epochs_and_one_panel_without_terms():
    from bayesvae.report import plots

    short = pd.DataFrame({"epoch": [1, 2, 3], "train_elbo": [-50.0, -45.0, -44.0]})
    figure = plots.loss_curves(short)
    assert len(figure.axes) == 1  # no recon/kl columns (the NumPyro backend): one panel
    figure.canvas.draw()
    ticks = figure.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks)


def test_topic_words_show_probabilities():
    import numpy as np

    from bayesvae.report import plots

    weights = np.random.default_rng(0).normal(size=(3, 30)) * 3 - 5  # negative log-weights
    figure = plots.topic_top_words(weights, [f"w{i}" for i in range(30)], n=5)
    axis = figure.axes[0]
    widths = [bar.get_width() for bar in axis.patches]
    assert all(0 < w < 1 for w in widths) and axis.get_xlabel() == "P(word | topic)"
