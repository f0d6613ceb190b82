"""The conditional VAE (Sohn et al. 2015): labels enter encoder and decoder.

Generative model: ``z ~ N(0, I)``, ``x | z, y ~ p(x | decoder(z, y))``.
Guide: ``q(z | x, y) = N(loc(x, y), diag(scale(x, y)^2))`` (then flows, with ``flows > 0``).
Labels are integers in ``[0, num_classes)`` or one-hot rows; both become one-hot context vectors
appended to the encoder's flattened input (after the convolutions for ``encoder="conv"``) and to
``z`` before the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bayesvae.data.validation import check_positive_int
from bayesvae.models.vae import VAE

__all__ = ["ConditionalVAE", "one_hot_labels"]


def one_hot_labels(name: str, y: Any, num_classes: int, n: int | None = None) -> torch.Tensor:
    """Labels ``y`` -> one-hot float tensor ``(N, num_classes)``.

    ``y``: integers ``(N,)`` in ``[0, num_classes)``, one-hot rows ``(N, num_classes)``, or a
    single integer (repeated ``n`` times). Raises ``ValueError``/``TypeError`` naming ``name``
    for other shapes, out-of-range or non-integer labels, and a length other than ``n``.
    """
    if isinstance(y, (int, np.integer)) and not isinstance(y, bool) and n is not None:
        y = np.full(n, int(y))
    array = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name} must hold integer labels, got dtype {array.dtype}.")
    if array.ndim == 2:
        if array.shape[1] != num_classes:
            raise ValueError(
                f"{name} given one-hot must have {num_classes} columns, got {array.shape[1]}."
            )
        if not (np.isin(array, (0, 1)).all() and (array.sum(1) == 1).all()):
            raise ValueError(f"{name} given as a 2-D array must be one-hot rows (0/1, one 1).")
        array = array.argmax(1)
    elif array.ndim != 1:
        raise ValueError(
            f"{name} must be integer labels (N,) or one-hot rows (N, {num_classes}), "
            f"got shape {array.shape}."
        )
    if array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if array.size and not np.all(np.equal(np.mod(array, 1), 0)):
        raise TypeError(f"{name} must hold whole-number class labels.")
    labels = array.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{name} labels must lie in [0, {num_classes - 1}], got values from "
            f"{labels.min()} to {labels.max()}."
        )
    if n is not None and len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} labels for {n} data rows; expected {n}.")
    return torch.nn.functional.one_hot(torch.from_numpy(labels), num_classes).float()


class ConditionalVAE(VAE):
    """Conditional VAE: a Pyro model/guide pair ``model(x, y)``, ``guide(x, y)``.

    Args:
        input_shape: shape of one data point (as :class:`~bayesvae.models.VAE`).
        num_classes: number of label values ``C``; labels lie in ``[0, C)``.
        **options: every other :class:`~bayesvae.models.VAE` option (latent_dim, hidden_dims,
            encoder, likelihood, beta, flows, ...).

    Training data are ``(x, y)``: ``bayesvae.fit(cvae, (x, y))``. Every query takes the labels:
    ``encode(x, y)``, ``decode(z, y)``, ``sample(n, y=3)`` (a chosen class),
    ``log_likelihood(x, y)`` (``log p(x | y)``).

    Example:
        >>> cvae = ConditionalVAE(64, num_classes=10, latent_dim=2, hidden_dims=(32,))
        >>> svi = pyro.infer.SVI(cvae.model, cvae.guide, pyro.optim.Adam({"lr": 1e-3}),
        ...                      pyro.infer.Trace_ELBO())
        >>> svi.step(x, y)  # x: (N, 64), y: (N,) integers
    """

    continuous_latent = True

    def __init__(
        self,
        input_shape: int | Sequence[int],
        *,
        num_classes: int,
        **options: Any,
    ) -> None:
        self.num_classes = check_positive_int("num_classes", num_classes)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        super().__init__(input_shape, **options)
        self.config["num_classes"] = self.num_classes

    def _build_networks(self, *args: Any, **kwargs: Any) -> None:
        super()._build_networks(*args, context_dim=self.num_classes, **kwargs)

    def model(
        self, x: torch.Tensor, y: torch.Tensor, *, num_data: int | None = None
    ) -> torch.Tensor:
        """``x: (B, *input_shape)``, ``y: (B, num_classes)`` one-hot (float); ``num_data`` as
        in :meth:`VAE.model`."""
        return self._model(x, y, num_data)

    def guide(
        self, x: torch.Tensor, y: torch.Tensor, *, num_data: int | None = None
    ) -> torch.Tensor:
        """``q(z | x, y)``; same arguments as :meth:`model`."""
        return self._guide(x, y, num_data)

    def check_data(self, x: Any, *rest: Any) -> tuple[torch.Tensor, ...]:
        """``(x, y)`` -> ``(x, one-hot y)``: ``x`` as for the VAE, ``y`` integer labels ``(N,)``
        in ``[0, num_classes)`` or one-hot rows, one per row of ``x``."""
        if len(rest) != 1:
            raise ValueError(
                f"ConditionalVAE needs data (x, y): images and their labels; got {1 + len(rest)} "
                "array(s)."
            )
        x = self._check_x("x", x)
        return x, one_hot_labels("y", rest[0], self.num_classes, x.shape[0])

    def _context(self, y: Any, n: int) -> torch.Tensor:
        if y is None:
            raise ValueError(
                "ConditionalVAE needs labels y: an integer class for all rows, or one label "
                f"per row in [0, {self.num_classes - 1}]."
            )
        return one_hot_labels("y", y, self.num_classes, n).to(self.device)
