"""The run folder of a fitted VAE-family model, as ``bayesvae vae`` writes it: the model and its
history (:meth:`~bayesvae.infer.svi.FitResult.save`), figures (loss curves, reconstructions,
samples, the latent space) and, with ``report=True``, the diagnostics (the VAE checks, per-point
PSIS k̂, the ELBO <= log p(x) <= CUBO bounds, posterior draws) and the HTML and Markdown report.

    result = bayesvae.fit(vae, train, val=val, epochs=20)
    write_vae_run(result, "runs/digits", train, val, report=True)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from bayesvae.runs import RunWriter

__all__ = ["write_vae_run", "classifier_summary", "LABELLED_FAMILIES"]

#: families whose figures are drawn per class (their decoder takes a label)
LABELLED_FAMILIES = ("ConditionalVAE", "SemiSupervisedVAE")


def _no_stage(name: str) -> None:
    """The default progress callback: says nothing."""


def write_vae_run(
    result: Any,
    out: str | os.PathLike[str],
    train: Any,
    val: Any = None,
    *,
    report: bool = False,
    seed: int = 0,
    classifier: dict[str, Any] | None = None,
    overwrite: bool = True,
    stage: Callable[[str], None] = _no_stage,
) -> None:
    """Write the run folder ``out`` of a fitted VAE-family model.

    Args:
        result: what :func:`bayesvae.fit` returned for the model.
        out: the folder; written beside it and swapped in whole (see
            :class:`~bayesvae.runs.RunWriter`; ``overwrite=False`` refuses to replace a run).
        train, val: the :class:`~bayesvae.data.ImageData` it was fitted on and validated with
            (``x: (N, D)`` or images, ``y`` labels or ``None``); figures show ``val`` when given.
            A conditional model's figures read the labels ``y``.
        report: also write the diagnostics and build ``report.html`` / ``report.md``.
        seed: seeds the samples and the diagnostics' draws.
        classifier: a semi-supervised model's labels used and held-out accuracy
            (:func:`classifier_summary`), shown in the report.
        stage: called with the name of each diagnostics stage as it starts (a progress bar).
    """
    from bayesvae.data import ImageData
    from bayesvae.infer.svi import FitResult
    from bayesvae.models.vae import VAE

    if not (isinstance(result, FitResult) and isinstance(result.model, VAE)):
        held = f" holding a {type(result.model).__name__}" if isinstance(result, FitResult) else ""
        raise TypeError(
            "result must be what bayesvae.fit returned for a VAE-family model (VAE, "
            f"ConditionalVAE, ...), got a {type(result).__name__}{held}; a sentence VAE's run "
            "is written by bayesvae.fit_text_vae."
        )
    for name, data in (("train", train), ("val", val)):
        if data is not None and not isinstance(data, ImageData):
            raise TypeError(
                f"{name} must be a bayesvae.data.ImageData (its image_shape draws the figures), "
                f"got {type(data).__name__}."
            )
    with RunWriter(out, overwrite=overwrite) as run:
        _write(
            result, run, train, val, report=report, seed=seed, classifier=classifier, stage=stage
        )


def classifier_summary(model: Any, partial: Any, val: Any = None) -> dict[str, Any]:
    """A semi-supervised model's number of labels used (``partial >= 0``) and, with ``val``
    (an :class:`~bayesvae.data.ImageData` with labels), its classifier's accuracy there."""
    summary: dict[str, Any] = {"labelled": int((np.asarray(partial) >= 0).sum())}
    if val is not None:
        predicted = model.classify(val.x).numpy()
        summary["val_accuracy"] = float((predicted == np.asarray(val.y)).mean())
    return summary


def _write(
    result: Any,
    run: RunWriter,
    train: Any,
    val: Any,
    *,
    report: bool,
    seed: int,
    classifier: dict[str, Any] | None,
    stage: Callable[[str], None],
) -> None:
    import torch

    from bayesvae.report import plots

    result.save(run)
    model, shown = result.model, val if val is not None else train
    conditional = model.family == "ConditionalVAE"  # labels on every row, given to the decoder
    x_shown = torch.as_tensor(shown.x[:10])
    y_shown = torch.as_tensor(shown.y[:10]) if conditional else None
    plots.loss_curves(result.history, run.file("loss_curves.png"))
    plots.reconstructions(
        x_shown,
        model.reconstruct(x_shown, y_shown),
        train.image_shape,
        run.file("reconstructions.png"),
    )
    row_labels = None
    if model.family in LABELLED_FAMILIES:  # one row per class
        labels = np.repeat(np.arange(model.num_classes), 10)
        samples = model.sample(len(labels), labels, seed=seed)
        title = "samples (decoder means), one class per row"
        row_labels = [f"class {k}" for k in range(model.num_classes)]
    else:
        samples, title = model.sample(40, seed=seed), "samples (decoder means)"
    plots.image_grid(
        samples, train.image_shape, run.file("samples.png"), title=title, row_labels=row_labels
    )
    if shown.y is not None and model.continuous_latent:
        labels_shown = shown.y[:2000] if conditional else None
        loc, _ = model.encode(torch.as_tensor(shown.x[:2000]), labels_shown)
        plots.latent_scatter(loc, shown.y[:2000], run.file("latent.png"))
    _latent_figures(model, shown, train.image_shape, run)
    if report:
        from bayesvae.report import build

        data = (shown.x[:1000], shown.y[:1000]) if conditional else (shown.x[:1000],)
        _diagnostics(model, tuple(torch.as_tensor(d) for d in data), run, seed, stage, classifier)
        stage("report")
        build(run.reader())


def _latent_figures(model: Any, shown: Any, image_shape: tuple[int, ...], run: RunWriter) -> None:
    """The run folder's latent-space plots: interpolation, traversals, and (latent >= 2) the
    manifold grid; per class for a conditional model."""
    import torch

    from bayesvae.latent import TRAVERSAL_VALUES, interpolate, manifold_grid, traversals
    from bayesvae.report import plots

    if not model.continuous_latent:
        return
    first, second = 0, 1
    by_class = model.family in LABELLED_FAMILIES
    if shown.y is not None and not by_class:  # two different classes
        others = np.flatnonzero(np.asarray(shown.y) != shown.y[0])
        second = int(others[0]) if len(others) else 1
    y = int(shown.y[0]) if by_class else None
    x = torch.as_tensor(shown.x[[first, second]])
    images = interpolate(model, x[0], x[1], steps=10, method="spherical", y=y)
    endpoints = None
    if shown.y is not None:
        endpoints = (f"label {shown.y[first]}", f"label {shown.y[second]}")
    plots.interpolation(
        images,
        image_shape,
        run.file("interpolation.png"),
        title="spherical interpolation",
        endpoints=endpoints,
    )
    dims = list(range(min(model.latent_dim, 10)))
    traversed = traversals(model, x=x[0], dims=dims, y=y)
    plots.traversals(
        traversed,
        image_shape,
        run.file("traversals.png"),
        dims=dims,
        values=TRAVERSAL_VALUES,
    )
    if model.latent_dim >= 2:
        grid = manifold_grid(model, n=15, y=y)
        plots.manifold(grid, image_shape, run.file("manifold.png"), dims=(0, 1))


def _diagnostics(
    model: Any,
    data: tuple[Any, ...],
    run: RunWriter,
    seed: int,
    stage: Callable[[str], None],
    classifier: dict[str, Any] | None,
) -> None:
    """Write ``diagnostics.json`` (VAE checks, per-point PSIS k̂), ``posterior.nc`` and
    ``khat.png`` into ``run`` for the report; ``data``: ``(x,)`` or ``(x, y)`` for a conditional
    model."""
    from bayesvae.diagnostics import (
        PSISResult,
        Sandwich,
        importance_log_weights,
        svi_to_inference_data,
        vae_diagnostics,
    )
    from bayesvae.report import plots

    stage("VAE checks")
    with warnings.catch_warnings():  # collapse is reported in the report itself
        warnings.simplefilter("ignore", UserWarning)
        vae = vae_diagnostics(model, *data, num_samples=200, seed=seed)
    training_data = model.check_data(*data)
    shown = tuple(t[:300] for t in training_data)
    summary: dict[str, Any] = {"vae": {**vae, "num_points": int(len(data[0]))}}
    if model.guide_has_density:  # an implicit guide gives no importance weights
        stage("PSIS k-hat, ELBO / CUBO bounds")  # both from the same per-point weights
        log_weights = importance_log_weights(
            model, *shown, num_samples=500, local_plate=model.local_plate, seed=seed
        )
        psis = PSISResult.from_log_weights(log_weights)
        plots.khat_per_point(psis.khat_per_point, run.file("khat.png"))
        bounds = Sandwich.from_log_weights(log_weights, model.local_plate)
        summary["psis"] = {
            "verdict": psis.verdict,
            "num_samples": psis.num_samples,
            "khat": psis.khat,
            "khat_median": float(np.median(psis.khat_per_point)),
            "share_bad_points": psis.share_bad_points,
        }
        summary["bounds"] = bounds.summary()
    stage("posterior draws")
    idata = svi_to_inference_data(
        model, *(t[:100] for t in training_data), num_samples=100, seed=seed
    )
    run.write_netcdf("posterior.nc", idata)
    if classifier is not None:  # a semi-supervised model's labels and held-out accuracy
        summary["classifier"] = classifier
    run.write_json("diagnostics.json", summary)
