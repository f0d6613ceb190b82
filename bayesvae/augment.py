"""Generative data augmentation with a conditional VAE.

>>> augmented = augment(x, y, n_per_class=200, epochs=100, seed=0)
>>> x_big, y_big = augmented          # the originals first, then the generated rows
>>> augmented.synthetic               # (N_big,) bool: which rows were generated
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bayesvae.data.validation import as_float_tensor, check_positive_int
from bayesvae.models.cvae import ConditionalVAE, one_hot_labels

__all__ = ["augment", "AugmentedData", "generation_counts"]


@dataclass
class AugmentedData:
    """The enlarged labelled set.

    Attributes:
        x: ``(N + M, *input_shape)`` float32: the ``N`` originals, then ``M`` generated rows.
        y: ``(N + M,)`` int64 labels.
        synthetic: ``(N + M,)`` bool, true for generated rows.
        model: the fitted :class:`~bayesvae.models.ConditionalVAE` that generated them.
        history: its training history (``None`` when a fitted model was passed in).
    """

    x: np.ndarray
    y: np.ndarray
    synthetic: np.ndarray
    model: ConditionalVAE
    history: Any = None

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.x
        yield self.y

    @property
    def num_generated(self) -> int:
        return int(self.synthetic.sum())


def generation_counts(
    labels: np.ndarray, num_classes: int, *, n_per_class: int | None, balance: bool
) -> np.ndarray:
    """How many rows to generate per class ``(num_classes,)``: ``n_per_class`` each, or with
    ``balance`` enough to bring every class up to the largest one (both: balance first, then
    ``n_per_class`` more for every class)."""
    counts = np.bincount(labels, minlength=num_classes)
    extra = np.zeros(num_classes, dtype=np.int64)
    if balance:
        extra += counts.max() - counts
    if n_per_class is not None:
        extra += n_per_class
    return extra


def augment(
    x: Any,
    y: Any,
    *,
    n_per_class: int | None = None,
    balance: bool = False,
    num_classes: int | None = None,
    model: ConditionalVAE | None = None,
    latent_dim: int = 10,
    hidden_dims: Sequence[int] = (400,),
    likelihood: str = "bernoulli",
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 1e-3,
    sample_mean: bool = True,
    seed: int = 0,
    progress: bool = False,
    **fit_options: Any,
) -> AugmentedData:
    """Fit a conditional VAE on ``(x, y)`` and return the set enlarged with generated samples.

    Args:
        x: ``(N, *input_shape)`` training inputs (in [0, 1] for the Bernoulli likelihood).
        y: ``(N,)`` integer labels in ``[0, num_classes)`` (or one-hot rows).
        n_per_class: generate this many rows for every class.
        balance: generate rows for the smaller classes until each has as many as the largest.
        num_classes: the number of classes (default: ``max(y) + 1``).
        model: a fitted :class:`~bayesvae.models.ConditionalVAE` to generate from; training is
            then skipped and the architecture options are ignored.
        latent_dim, hidden_dims, likelihood: the CVAE built when ``model`` is ``None``.
        epochs, batch_size, lr, progress, **fit_options: passed to :func:`bayesvae.fit`.
        sample_mean: generated rows are the decoder's means (grey levels); ``False``: draws
            from the likelihood (binary images for Bernoulli).
        seed: seeds the CVAE's weights, its training and the generation.

    Returns:
        :class:`AugmentedData` (unpacks as ``x, y``).

    Raises:
        ValueError, TypeError: bad data or options (before any training).
    """
    from bayesvae.infer.svi import fit

    if n_per_class is None and not balance:
        raise ValueError("say how much to generate: n_per_class=N and/or balance=True.")
    if n_per_class is not None:
        n_per_class = check_positive_int("n_per_class", n_per_class)
    if model is not None and not isinstance(model, ConditionalVAE):
        raise TypeError(f"model must be a ConditionalVAE, got {type(model).__name__}.")
    raw_labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if num_classes is None:
        if model is not None:
            num_classes = model.num_classes
        elif raw_labels.ndim == 2:
            num_classes = raw_labels.shape[1]
        else:
            if raw_labels.size == 0 or not np.issubdtype(raw_labels.dtype, np.number):
                raise TypeError("y must be non-empty integer labels.")
            if np.nanmin(raw_labels) < 0:
                raise ValueError(
                    f"y labels must lie in [0, num_classes), got {np.nanmin(raw_labels)}."
                )
            num_classes = int(np.nanmax(raw_labels)) + 1
    num_classes = check_positive_int("num_classes", num_classes)
    x_tensor = as_float_tensor("x", x)
    if x_tensor.dim() < 2:
        raise ValueError(f"x must be (N, *input_shape), got shape {tuple(x_tensor.shape)}.")
    labels = one_hot_labels("y", y, num_classes, len(x_tensor)).argmax(1).numpy()
    history = None
    if model is None:
        model = ConditionalVAE(
            tuple(x_tensor.shape[1:]),
            num_classes=num_classes,
            latent_dim=latent_dim,
            hidden_dims=hidden_dims,
            likelihood=likelihood,
            seed=seed,
        )
        result = fit(
            model,
            (x_tensor, labels),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            progress=progress,
            **fit_options,
        )
        history = result.history
    elif model.num_classes != num_classes:
        raise ValueError(
            f"model has {model.num_classes} classes but num_classes={num_classes} was given."
        )
    else:
        x_tensor = model.check_data(x_tensor, labels)[0]
    counts = generation_counts(labels, num_classes, n_per_class=n_per_class, balance=balance)
    new_labels = np.repeat(np.arange(num_classes), counts)
    if len(new_labels):
        generated = model.sample(len(new_labels), new_labels, seed=seed, mean=sample_mean)
        generated_x = generated.cpu().numpy().astype(np.float32)
    else:
        generated_x = np.zeros((0, *x_tensor.shape[1:]), dtype=np.float32)
    return AugmentedData(
        x=np.concatenate([x_tensor.numpy().astype(np.float32), generated_x]),
        y=np.concatenate([labels, new_labels]).astype(np.int64),
        synthetic=np.concatenate([np.zeros(len(labels), bool), np.ones(len(new_labels), bool)]),
        model=model,
        history=history,
    )
