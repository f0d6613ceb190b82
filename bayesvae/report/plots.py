"""PNG figures for runs. Each function draws, writes ``path`` atomically when given, and returns
the matplotlib ``Figure``."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from bayesvae.runs.files import atomic_write

__all__ = [
    "loss_curves",
    "image_grid",
    "reconstructions",
    "latent_scatter",
    "save_figure",
    "anomaly_scores",
    "anomaly_projection",
    "topic_top_words",
    "manifold",
    "interpolation",
    "traversals",
]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path | None) -> Any:
    """Write ``figure`` as PNG to ``path`` (atomically) and close it; return it."""
    if path is not None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
    _pyplot().close(figure)
    return figure


def _as_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def loss_curves(history: Any, path: str | Path | None = None) -> Any:
    """ELBO per data point by epoch (train, and validation when present) and, when the history
    has them, the KL and reconstruction terms in a second panel.

    ``history``: a DataFrame (or list of rows) as in ``FitResult.history``.
    """
    import pandas as pd

    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    x = "step" if "step" in frame else "epoch"  # a program's rows come every eval_every steps
    plt = _pyplot()
    terms = "kl" in frame and "recon" in frame
    figure, axes = plt.subplots(1, 2 if terms else 1, figsize=(10 if terms else 5.5, 3.5))
    left = axes[0] if terms else axes
    left.plot(frame[x], frame["train_elbo"], label="train (objective)")
    if "val_elbo" in frame:
        left.plot(frame[x], frame["val_elbo"], label="validation")
    left.set(xlabel=x, ylabel="ELBO per data point (nats)", title="ELBO")
    left.legend(loc="upper right")
    _integer_ticks(left)
    if terms:
        right = axes[1]
        right.plot(frame[x], frame["kl"], color="tab:red", label="KL")
        right.plot(frame[x], -frame["recon"], color="tab:green", label="-reconstruction")
        right.set(xlabel=x, ylabel="nats per data point", title="ELBO terms")
        right.legend(loc="upper right")
        _integer_ticks(right)
    figure.tight_layout()
    return save_figure(figure, path)


def _integer_ticks(axis: Any) -> None:
    """Epochs and steps are whole numbers: no fractional ticks on short runs."""
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def image_grid(
    images: Any,
    image_shape: tuple[int, ...],
    path: str | Path | None = None,
    *,
    columns: int = 10,
    title: str | None = None,
    row_labels: Any = None,
    column_labels: Any = None,
) -> Any:
    """Show ``images: (N, ...)`` reshaped to ``image_shape`` ``(C, H, W)`` in a grid, with a
    label left of each row and above each column when given."""
    images = _as_numpy(images).reshape(-1, *image_shape)
    rows = max(1, math.ceil(len(images) / columns))
    plt = _pyplot()
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(columns * 0.9 + (0.8 if row_labels is not None else 0), rows * 0.9 + 0.5),
        squeeze=False,
        layout="constrained",  # the title sits right above the images, whatever the rows
    )
    for index, axis in enumerate(axes.flat):
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_visible(False)
        if index < len(images):
            image = images[index]
            image = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
            axis.imshow(np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1)
    if row_labels is not None:
        for axis, label in zip(axes[:, 0], row_labels, strict=False):
            axis.set_ylabel(str(label), rotation=0, ha="right", va="center", fontsize=8)
    if column_labels is not None:
        for axis, label in zip(axes[0], column_labels, strict=False):
            axis.set_title(str(label), fontsize=8)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def reconstructions(
    originals: Any,
    reconstructed: Any,
    image_shape: tuple[int, ...],
    path: str | Path | None = None,
    *,
    n: int = 10,
) -> Any:
    """Originals (top row) above their reconstructions (bottom row)."""
    originals = _as_numpy(originals)[:n].reshape(-1, *image_shape)
    reconstructed = _as_numpy(reconstructed)[:n].reshape(-1, *image_shape)
    return image_grid(
        np.concatenate([originals, reconstructed]),
        image_shape,
        path,
        columns=len(originals),
        title="originals (top) and reconstructions",
    )


SCATTER_METHODS = ("auto", "pca", "tsne")


def latent_scatter(
    z: Any,
    labels: Any = None,
    path: str | Path | None = None,
    *,
    method: str = "auto",
    seed: int = 0,
) -> Any:
    """Latent means ``z: (N, latent_dim)`` coloured by ``labels``: the latent itself when it has
    at most 2 dimensions (``method="auto"``), else its first two principal components
    (``"pca"``) or a seeded t-SNE embedding (``"tsne"``, scikit-learn). Class labels (at most 20
    distinct whole numbers or strings) get a categorical palette and a legend; other labels a
    colour bar."""
    from bayesvae.data.validation import check_choice

    check_choice("method", method, SCATTER_METHODS)
    z = _as_numpy(z).astype(np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"z must be a non-empty (N, D) array, got shape {z.shape}.")
    if method == "auto" and z.shape[1] == 2:
        points, axis_names = z, ("z[0]", "z[1]")
    elif method == "auto" and z.shape[1] == 1:
        points, axis_names = np.column_stack([z[:, 0], np.zeros(len(z))]), ("z[0]", "")
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(z) - 1) / 3)))
        embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        points, axis_names = embedding.fit_transform(z), ("t-SNE 1", "t-SNE 2")
    else:
        from sklearn.decomposition import PCA

        components = PCA(n_components=min(2, z.shape[1]), random_state=seed).fit_transform(z)
        if components.shape[1] == 1:
            components = np.column_stack([components[:, 0], np.zeros(len(z))])
        points, axis_names = components, ("PC 1", "PC 2")
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    if labels is not None:
        values = _as_numpy(labels)
        classes = np.unique(values)
        categorical = len(classes) <= 20 and (
            values.dtype.kind in "iuUSOb" or bool(np.all(np.mod(values.astype(np.float64), 1) == 0))
        )
        if categorical:
            palette = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            for index, label in enumerate(classes):
                chosen = values == label
                axis.scatter(
                    points[chosen, 0],
                    points[chosen, 1],
                    s=6,
                    alpha=0.8,
                    color=palette(index),
                    label=str(label.item() if hasattr(label, "item") else label),
                )
            axis.legend(
                title="label", markerscale=2.5, fontsize=7, loc="upper right", frameon=False
            )
        else:
            scatter = axis.scatter(points[:, 0], points[:, 1], c=values, s=6, alpha=0.8)
            figure.colorbar(scatter, ax=axis, label="label")
    else:
        axis.scatter(points[:, 0], points[:, 1], s=6, alpha=0.8)
    axis.set(xlabel=axis_names[0], ylabel=axis_names[1], title="latent space (posterior means)")
    return save_figure(figure, path)


def _tile(images: np.ndarray, image_shape: tuple[int, ...], gap: int = 0) -> np.ndarray:
    """``(R, C, *image_shape)`` -> one ``(R*(H+gap), C*(W+gap))`` grey (or ``(.., 3)`` colour)
    image, tiles separated by ``gap`` white pixels."""
    rows, columns = images.shape[:2]
    c, h, w = image_shape if len(image_shape) == 3 else (1, *image_shape)
    tiles = images.reshape(rows, columns, c, h, w)
    if gap:
        tiles = np.pad(tiles, ((0, 0), (0, 0), (0, 0), (0, gap), (0, gap)), constant_values=1.0)
        h, w = h + gap, w + gap
    tiled = tiles.transpose(0, 3, 1, 4, 2).reshape(rows * h, columns * w, c)
    return tiled[..., 0] if c == 1 else tiled


def manifold(
    grid: Any,
    image_shape: tuple[int, ...],
    path: str | Path | None = None,
    *,
    dims: tuple[int, int] = (0, 1),
    title: str = "latent manifold (inverse normal CDF grid)",
) -> Any:
    """The 2-D manifold figure from :func:`bayesvae.latent.manifold_grid`'s ``(n, n, ...)``
    images, tiled with a gap between tiles; the axes name the latent dimensions ``dims`` and
    their ticks the z values (the standard normal's quantiles at the cell centres)."""
    from scipy.stats import norm

    images = _as_numpy(grid)
    n_rows, n_cols = images.shape[:2]
    gap = max(1, image_shape[-1] // 8)
    tiled = _tile(images.reshape(n_rows, n_cols, -1), image_shape, gap=gap)
    height, width = image_shape[-2] + gap, image_shape[-1] + gap
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 6.5))
    axis.imshow(np.clip(tiled, 0, 1), cmap="gray", vmin=0, vmax=1)
    values = norm.ppf((np.arange(max(n_rows, n_cols)) + 0.5) / max(n_rows, n_cols))
    every = max(1, n_cols // 5)
    x_index = np.arange(0, n_cols, every)
    y_index = np.arange(0, n_rows, every)
    axis.set_xticks(x_index * width + (width - gap) / 2, [f"{values[j]:.1f}" for j in x_index])
    axis.set_yticks(
        y_index * height + (height - gap) / 2, [f"{values[::-1][i]:.1f}" for i in y_index]
    )
    axis.set(
        title=title,
        xlabel=f"z[{dims[0]}] (standard normal quantiles)",
        ylabel=f"z[{dims[1]}] (standard normal quantiles)",
    )
    for spine in axis.spines.values():
        spine.set_visible(False)
    return save_figure(figure, path)


def interpolation(
    images: Any,
    image_shape: tuple[int, ...],
    path: str | Path | None = None,
    *,
    title: str = "latent interpolation",
    endpoints: tuple[Any, Any] | None = None,
) -> Any:
    """Decoded images along one latent path, ``(steps, ...)``
    (:func:`bayesvae.latent.interpolate`), in one row; ``endpoints`` labels the first and last
    image (e.g. the two inputs' classes)."""
    flat = _as_numpy(images).reshape(-1, *image_shape)
    labels = None
    if endpoints is not None:
        labels = [str(endpoints[0])] + [""] * (len(flat) - 2) + [str(endpoints[1])]
    return image_grid(flat, image_shape, path, columns=len(flat), title=title, column_labels=labels)


def traversals(
    images: Any,
    image_shape: tuple[int, ...],
    path: str | Path | None = None,
    *,
    dims: Any = None,
    values: Any = None,
    title: str = "latent traversals (one dimension per row)",
) -> Any:
    """The ``(dims, values, ...)`` images of :func:`bayesvae.latent.traversals` in a grid, each
    row labelled with its latent dimension (``dims``, default ``0..``) and each column with the
    value it takes (``values``, as passed to ``traversals``)."""
    images = _as_numpy(images)
    rows, columns = images.shape[:2]
    dims = list(range(rows)) if dims is None else list(dims)
    return image_grid(
        images.reshape(-1, *image_shape),
        image_shape,
        path,
        columns=columns,
        title=title,
        row_labels=[f"z[{d}]" for d in dims],
        column_labels=None if values is None else [f"{float(v):+.1f}" for v in values],
    )


_METRIC_LABELS = {
    "conversion": "conversion rate",
    "count": "mean count per unit",
    "continuous": "mean per unit",
    "revenue": "revenue per unit",
}


def ab_posteriors(result: Any, path: str | Path | None = None) -> Any:
    """Posterior density of each arm's value (the exact density where there is one, else a
    kernel density of the draws), with posterior means marked."""
    from scipy import stats

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    draws = np.asarray(result.draws)
    low, high = np.quantile(draws, [0.0005, 0.9995])
    grid = np.linspace(low, high, 400)
    for k, arm in enumerate(result.arms):
        if result.exact_marginals is not None:
            density = result.exact_marginals[k].pdf(grid)
        else:
            density = stats.gaussian_kde(draws[:, k])(grid)
        label = f"{arm} ({result.observed[k]})" if result.observed else arm
        line = axis.plot(grid, density, label=label)
        axis.axvline(result.posterior_mean[k], color=line[0].get_color(), lw=0.8, ls="--")
    axis.set(
        xlabel=_METRIC_LABELS.get(result.metric, result.metric),
        ylabel="posterior density",
        title=f"posterior of each arm's {_METRIC_LABELS.get(result.metric, 'value')} "
        f"({result.method})",
    )
    axis.legend(loc="upper right")
    return save_figure(figure, path)


def ab_shrinkage(result: Any, path: str | Path | None = None) -> Any:
    """Hierarchical shrinkage: each arm's flat posterior mean (independent priors) joined to its
    pooled posterior mean, the pooled arms drawn towards the population."""
    plt = _pyplot()
    rows = result.shrinkage
    figure, axis = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.6))
    for position, row in enumerate(rows):
        axis.annotate(
            "",
            xy=(row["pooled_mean"], position),
            xytext=(row["flat_mean"], position),
            arrowprops={"arrowstyle": "->", "color": "grey"},
        )
    positions = np.arange(len(rows))
    axis.scatter([r["flat_mean"] for r in rows], positions, label="flat (independent arms)")
    axis.scatter([r["pooled_mean"] for r in rows], positions, label="pooled (hierarchical)")
    axis.set_yticks(positions, [r["arm"] for r in rows])
    axis.set(xlabel="posterior mean rate", title="shrinkage of each arm towards the population")
    axis.legend(loc="upper right", fontsize="small")
    return save_figure(figure, path)


def ab_lift(result: Any, path: str | Path | None = None, *, rope: float | None = None) -> Any:
    """Distribution of the absolute lift of each arm over the control, with its HDI shaded and
    the region of practical equivalence (``rope``) marked."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    draws = np.asarray(result.draws)
    control = result.arms.index(result.control)
    for row in result.lift:
        k = result.arms.index(row["arm"])
        lift = draws[:, k] - draws[:, control]
        counts, edges, patches = axis.hist(
            lift, bins=120, density=True, alpha=0.45, label=f"{row['arm']} - {result.control}"
        )
        colour = patches[0].get_facecolor()
        low, high = row["absolute_hdi"]
        axis.axvspan(low, high, color=colour, alpha=0.12)
    axis.axvline(0.0, color="black", lw=0.8)
    if rope:
        axis.axvspan(-rope, rope, color="grey", alpha=0.2, label=f"ROPE ±{rope}")
    axis.set(
        xlabel=f"absolute lift in {_METRIC_LABELS.get(result.metric, 'value')}",
        ylabel="posterior density",
        title=f"lift over {result.control} ({result.hdi_prob:.0%} HDI shaded)",
    )
    axis.legend(loc="upper right")
    return save_figure(figure, path)


def ab_prob_best(result: Any, path: str | Path | None = None) -> Any:
    """P(each arm is best) as bars, with Monte Carlo error bars where there is Monte Carlo error."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    errors = 2 * np.asarray(result.prob_best_se)
    axis.bar(
        result.arms,
        result.prob_best,
        yerr=errors if errors.any() else None,
        color="tab:blue",
        capsize=4,
    )
    axis.set(ylim=(0, 1), ylabel="P(best)", title="probability each arm is best")
    for k, value in enumerate(result.prob_best):
        axis.text(k, min(value + 0.03, 0.95), f"{value:.3f}", ha="center")
    return save_figure(figure, path)


def gradient_norms(history: Any, path: str | Path | None = None) -> Any:
    """Mean gradient norm per epoch (log scale): spikes flag instability, a steady fall to tiny
    values an optimiser that has stopped moving."""
    import pandas as pd

    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    x = "step" if "step" in frame else "epoch"
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.2))
    axis.plot(frame[x], frame["grad_norm"], color="tab:purple")
    axis.set(xlabel=x, ylabel="gradient norm", yscale="log", title="gradient norm")
    _integer_ticks(axis)
    return save_figure(figure, path)


def khat_per_point(khat: Any, path: str | Path | None = None) -> Any:
    """Histogram of per-data-point Pareto k̂ with the 0.5 and 0.7 thresholds."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.2))
    axis.hist(_as_numpy(khat), bins=40, color="tab:gray")
    for threshold, colour in ((0.5, "tab:orange"), (0.7, "tab:red")):
        axis.axvline(threshold, color=colour, ls="--", label=f"k̂ = {threshold}")
    axis.set(xlabel="Pareto k̂", ylabel="data points", title="guide quality per data point")
    axis.legend(loc="upper right")
    return save_figure(figure, path)


def anomaly_scores(
    prob_anomaly: Any,
    path: str | Path | None = None,
    *,
    labels: Any = None,
    threshold: float = 0.5,
) -> Any:
    """Histogram of P(anomaly | x) ``(N,)`` (split by true label when ``labels`` are given), on a
    log count axis, with the decision threshold marked."""
    return _score_histogram(
        _as_numpy(prob_anomaly),
        np.linspace(0.0, 1.0, 41),
        path,
        labels=labels,
        threshold=threshold,
        threshold_label=f"threshold {threshold:g}",
        xlabel="P(anomaly | x)",
        ylabel="points",
        title="anomaly scores",
    )


def vae_anomaly_scores(
    anomaly_score: Any,
    path: str | Path | None = None,
    *,
    threshold: float,
    labels: Any = None,
) -> Any:
    """Histogram of a VAE's anomaly scores ``(N,)`` (negative ELBO or IWAE bound, nats; split by
    true label when ``labels`` are given) with the flagging threshold marked."""
    score = _as_numpy(anomaly_score).astype(np.float64)
    return _score_histogram(
        score,
        np.linspace(score.min(), score.max(), 41),
        path,
        labels=labels,
        threshold=threshold,
        threshold_label="threshold (flagged to the right)",
        xlabel="anomaly score (negative ELBO, nats)",
        ylabel="rows",
        title="VAE anomaly scores",
    )


def _score_histogram(
    values: np.ndarray,
    bins: np.ndarray,
    path: str | Path | None,
    *,
    labels: Any,
    threshold: float,
    threshold_label: str,
    xlabel: str,
    ylabel: str,
    title: str,
) -> Any:
    """One score histogram on a log count axis, split by 0/1 ``labels`` when given, with the
    threshold marked."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.2))
    if labels is None:
        axis.hist(values, bins=bins, color="tab:gray")
    else:
        labels = _as_numpy(labels).astype(bool)
        axis.hist(values[~labels], bins=bins, alpha=0.7, color="tab:blue", label="labelled normal")
        axis.hist(values[labels], bins=bins, alpha=0.7, color="tab:red", label="labelled anomaly")
    axis.axvline(threshold, color="black", ls="--", label=threshold_label)
    axis.set(xlabel=xlabel, ylabel=ylabel, yscale="log", title=title)
    axis.legend(loc="upper right")
    return save_figure(figure, path)


def anomaly_projection(
    features: Any,
    flagged: Any,
    path: str | Path | None = None,
    *,
    labels: Any = None,
) -> Any:
    """Scatter of ``features`` (N, D) in 2-D (the features themselves when D = 2, else the first
    two principal components), flagged points ringed in red, true anomalies (``labels``) as
    crosses."""
    plt = _pyplot()
    x = _as_numpy(features)
    if x.shape[1] > 2:
        from sklearn.decomposition import PCA

        x, names = PCA(2, random_state=0).fit_transform(x), ("PC 1", "PC 2")
    elif x.shape[1] == 1:
        x, names = np.column_stack([x[:, 0], np.zeros(len(x))]), ("feature 0", "")
    else:
        names = ("feature 0", "feature 1")
    flagged = _as_numpy(flagged).astype(bool)
    figure, axis = plt.subplots(figsize=(5.5, 5))
    if labels is None:
        axis.scatter(*x[~flagged].T, s=6, color="tab:blue", alpha=0.5, label="normal")
    else:
        truth = _as_numpy(labels).astype(bool)
        axis.scatter(*x[~truth].T, s=6, color="tab:blue", alpha=0.5, label="labelled normal")
        axis.scatter(*x[truth].T, s=18, marker="x", color="black", label="labelled anomaly")
    axis.scatter(
        *x[flagged].T, s=40, facecolors="none", edgecolors="tab:red", label="flagged anomaly"
    )
    axis.set(xlabel=names[0], ylabel=names[1], title="data with flagged anomalies")
    axis.legend(loc="upper right", fontsize="small")
    return save_figure(figure, path)


def topic_top_words(
    weights: Any,
    vocabulary: Any,
    path: str | Path | None = None,
    *,
    n: int = 10,
    max_topics: int = 20,
    npmi: Any = None,
) -> Any:
    """Bar charts of the ``n`` most probable words of each topic (the first ``max_topics``
    topics): ``P(word | topic) = softmax(weights_k)`` from the topic-word matrix ``weights``
    (K, V) of unnormalised log-weights (``ProdLDA.topic_word_weights()``)."""
    from scipy.special import softmax

    plt = _pyplot()
    weights = softmax(_as_numpy(weights).astype(np.float64), axis=1)
    shown = min(len(weights), max_topics)
    cols = min(5, shown)
    rows = math.ceil(shown / cols)
    figure, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.6 * rows), squeeze=False)
    for k, axis in enumerate(axes.flat):
        if k >= shown:
            axis.axis("off")
            continue
        order = np.argsort(-weights[k])[:n][::-1]
        axis.barh(range(len(order)), weights[k, order], color="tab:blue")
        axis.set_yticks(range(len(order)), [str(vocabulary[i]) for i in order], fontsize=7)
        title = f"topic {k}" + (f" (NPMI {float(npmi[k]):+.2f})" if npmi is not None else "")
        axis.set_title(title, fontsize=8)
        axis.set_xlabel("P(word | topic)", fontsize=7)
        axis.tick_params(axis="x", labelsize=6)
    figure.tight_layout()
    return save_figure(figure, path)


def mcmc_figures(idata: Any, folder: str | Path) -> None:
    """Write ``trace.png``, ``rank.png`` and ``energy.png`` for an MCMC ``InferenceData``.

    Traces and ranks show the variables whose every element varies: a Cholesky factor of
    correlations (fixed unit diagonal, zero upper triangle) is left out."""
    from functools import partial

    import arviz as az

    plt = _pyplot()
    folder = Path(folder)
    posterior = idata.posterior
    varying = [
        name
        for name in posterior.data_vars
        if bool((posterior[name].std(("chain", "draw")) > 0).all())
    ]
    drawers: list[tuple[str, Any]] = [
        ("trace", partial(az.plot_trace, var_names=varying)),
        ("rank", partial(az.plot_rank, var_names=varying)),
    ]
    if "energy" in idata.sample_stats:
        drawers.append(("energy", az.plot_energy))
    import warnings

    from matplotlib import MatplotlibDeprecationWarning

    for name, draw in drawers:
        with warnings.catch_warnings():  # ArviZ 0.23 calls an API matplotlib 3.11 deprecates
            warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
            axes = draw(idata)
        figure = np.asarray(axes).ravel()[0].get_figure()
        save_figure(figure, folder / f"{name}.png")
    plt.close("all")


def _is_counts(values: np.ndarray) -> bool:
    """Non-negative whole numbers (counts, 0/1 outcomes): drawn as bars, not densities."""
    return bool(values.size and np.all(values >= 0) and np.all(np.equal(np.mod(values, 1), 0)))


def posterior_predictive(idata: Any, path: str | Path | None = None, *, max_draws: int = 50) -> Any:
    """Posterior predictive check of each observed site: for continuous data the observed
    density against ``max_draws`` replicated densities; for counts (and 0/1 outcomes) a
    rootogram-style bar chart: observed frequency of each value against the replicated mean
    with its 90 % band."""
    plt = _pyplot()
    names = list(idata.observed_data.data_vars)
    figure, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.4), squeeze=False)
    rng = np.random.default_rng(0)
    for axis, name in zip(axes[0], names, strict=True):
        observed = np.asarray(idata.observed_data[name]).ravel()
        replicated = np.asarray(idata.posterior_predictive[name])
        replicated = replicated.reshape(-1, observed.size)
        if _is_counts(observed):
            top = int(max(observed.max(), np.quantile(replicated, 0.99)))
            values = np.arange(top + 1)
            freq = np.stack(
                [
                    np.bincount(r.astype(int).clip(0, top), minlength=top + 1)
                    for r in replicated[: max(200, max_draws)]
                ]
            )
            low, high = np.quantile(freq, [0.05, 0.95], axis=0)
            axis.bar(
                values,
                np.bincount(observed.astype(int), minlength=top + 1),
                color="0.7",
                label="observed",
            )
            axis.errorbar(
                values,
                freq.mean(0),
                yerr=[freq.mean(0) - low, high - freq.mean(0)],
                fmt="o",
                color="tab:blue",
                ms=3,
                label="replicated (mean, 90 %)",
            )
            axis.set(xlabel=name, ylabel="count of data points")
        else:
            grid = np.linspace(
                min(observed.min(), np.quantile(replicated, 0.005)),
                max(observed.max(), np.quantile(replicated, 0.995)),
                200,
            )
            picks = rng.choice(len(replicated), size=min(max_draws, len(replicated)), replace=False)
            for i, row in enumerate(picks):
                axis.plot(
                    grid,
                    _kde(replicated[row], grid),
                    color="tab:blue",
                    alpha=0.15,
                    lw=0.8,
                    label="replicated" if i == 0 else None,
                )
            axis.plot(grid, _kde(observed, grid), color="black", lw=2, label="observed")
            axis.set(xlabel=name, ylabel="density")
        axis.set_title(f"posterior predictive check: {name}")
        axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A Gaussian kernel density (Scott's bandwidth) of ``values`` on ``grid``."""
    from scipy.stats import gaussian_kde

    values = np.asarray(values, dtype=float)
    if values.size < 2 or np.ptp(values) == 0:
        return np.zeros_like(grid)
    return gaussian_kde(values)(grid)


def loo_khat(khat: Any, path: str | Path | None = None) -> Any:
    """PSIS-LOO Pareto k̂ of each data point, with the 0.7 threshold above which that point's
    leave-one-out estimate is unreliable."""
    plt = _pyplot()
    values = _as_numpy(khat).ravel()
    figure, axis = plt.subplots(figsize=(6.5, 3.2))
    bad = values > 0.7
    axis.scatter(np.flatnonzero(~bad), values[~bad], s=10, color="tab:blue", label="k̂ <= 0.7")
    axis.scatter(np.flatnonzero(bad), values[bad], s=14, color="tab:red", label="k̂ > 0.7")
    axis.axhline(0.7, color="tab:red", ls="--", lw=1)
    axis.set(xlabel="data point", ylabel="Pareto k̂", title="PSIS-LOO k̂ per data point")
    axis.legend(loc="upper right", fontsize=8)
    return save_figure(figure, path)


def marginals_overlay(
    approximate: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    path: str | Path | None = None,
    *,
    labels: tuple[str, str] = ("SVI guide", "NUTS"),
    max_panels: int = 12,
) -> Any:
    """Each scalar parameter's marginal density under the guide against NUTS (flat draws)."""
    plt = _pyplot()
    names = [n for n in reference if n in approximate][:max_panels]
    columns = min(4, len(names)) or 1
    rows = int(np.ceil(len(names) / columns)) or 1
    figure, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 2.6 * rows), squeeze=False)
    for axis, name in zip(axes.ravel(), names, strict=False):
        a, r = np.asarray(approximate[name]), np.asarray(reference[name])
        grid = np.linspace(min(a.min(), r.min()), max(a.max(), r.max()), 200)
        axis.plot(grid, _kde(r, grid), color="black", lw=1.6, label=labels[1])
        axis.plot(grid, _kde(a, grid), color="tab:orange", lw=1.6, ls="--", label=labels[0])
        axis.set_title(name, fontsize=9)
        axis.set_yticks([])
    for axis in axes.ravel()[len(names) :]:
        axis.axis("off")
    axes.ravel()[0].legend(loc="upper right", fontsize=7)
    figure.suptitle("marginal posteriors: guide against NUTS")
    figure.tight_layout()
    return save_figure(figure, path)
