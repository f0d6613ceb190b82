"""Latent-space tools for the Gaussian-latent VAEs (:class:`~bayesvae.models.VAE`,
:class:`~bayesvae.models.ConditionalVAE`, :class:`~bayesvae.models.HierarchicalVAE`, whose
``encode``/``decode`` act on its lower layer ``z1``, :class:`~bayesvae.models.MixturePriorVAE`).

Each function returns tensors of decoded images; the matching figures (PNG files, the figure
returned too) are in :mod:`bayesvae.report.plots`: ``interpolation``, ``manifold``,
``traversals`` and ``latent_scatter`` (the latent when 2-D, else PCA or t-SNE). Per-dimension
KL and the count of active units are in :mod:`bayesvae.diagnostics` (``kl_per_dimension``,
``active_units``, ``vae_diagnostics``, which warns on posterior collapse).

>>> images = interpolate(vae, x[0], x[1], steps=8, method="spherical")   # (8, *input_shape)
>>> grid = manifold_grid(vae, n=15)                                       # (15, 15, *input_shape)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bayesvae.data.validation import as_float_tensor, check_choice, check_positive_int

__all__ = ["interpolate", "slerp", "manifold_grid", "traversals", "INTERPOLATIONS"]

INTERPOLATIONS = ("linear", "spherical")
#: default values of a traversed dimension: -3 to 3 prior standard deviations
TRAVERSAL_VALUES = tuple(float(v) for v in np.linspace(-3, 3, 9))


def _check_continuous(model: Any) -> None:
    if not model.continuous_latent:
        raise TypeError(
            f"the latent-space tools need a VAE with a Gaussian latent; {type(model).__name__} "
            "has none (a discrete-latent model is explored with encode/decode of one-hot codes)."
        )


def slerp(start: torch.Tensor, end: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between ``start`` and ``end`` ``(D,)`` at ``weights`` ``(T,)`` in
    [0, 1]: ``(T, D)``. Falls back to linear when the two are (anti)parallel."""
    cos = torch.dot(start, end) / (start.norm() * end.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(torch.sin(omega).abs()) < 1e-6:
        return torch.lerp(start, end, weights[:, None])
    sin = torch.sin(omega)
    return (
        torch.sin((1 - weights)[:, None] * omega) / sin * start
        + torch.sin(weights[:, None] * omega) / sin * end
    )


def interpolate(
    model: Any,
    x_start: Any,
    x_end: Any,
    *,
    steps: int = 10,
    method: str = "linear",
    y: Any = None,
) -> torch.Tensor:
    """Decode ``steps`` points on the path between the posterior means of two inputs.

    Args:
        model: a Gaussian-latent VAE.
        x_start, x_end: one input each, of shape ``input_shape`` (or ``(1, *input_shape)``).
        steps: points on the path, ends included (>= 2).
        method: ``"linear"`` or ``"spherical"`` (slerp, which keeps the norm typical of a
            Gaussian latent between the ends).
        y: for a conditional model, the class both ends are encoded and decoded with.

    Returns:
        ``(steps, *input_shape)`` decoder means; the first row reconstructs ``x_start``.
    """
    _check_continuous(model)
    check_choice("method", method, INTERPOLATIONS)
    steps = check_positive_int("steps", steps)
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the two ends), got {steps}.")
    start = as_float_tensor("x_start", x_start)
    end = as_float_tensor("x_end", x_end)
    if start.shape != end.shape:
        raise ValueError(
            f"x_start and x_end must have the same shape, got {tuple(start.shape)} and "
            f"{tuple(end.shape)}."
        )
    shape = tuple(model.input_shape)
    if tuple(start.shape) == shape:
        start, end = start[None], end[None]
    elif tuple(start.shape) != (1, *shape):
        raise ValueError(
            f"x_start and x_end must each be one input of shape {shape}, got {tuple(start.shape)}."
        )
    loc, _ = model.encode(torch.cat([start, end]), None if y is None else [y, y])
    weights = torch.linspace(0.0, 1.0, steps, device=loc.device)
    if method == "linear":
        path = torch.lerp(loc[0], loc[1], weights[:, None])
    else:
        path = slerp(loc[0], loc[1], weights)
    return model.decode(path, None if y is None else [y] * steps)


def manifold_grid(
    model: Any,
    *,
    n: int = 20,
    dims: Sequence[int] = (0, 1),
    y: Any = None,
) -> torch.Tensor:
    """The classic 2-D manifold figure's images: a regular ``n x n`` grid on the unit square,
    cell centres ``(i + 0.5) / n``, pushed through the standard normal's inverse CDF into latent
    dimensions ``dims`` (the others held at 0) and decoded.

    Returns:
        ``(n, n, *input_shape)``: row ``i`` has ``z[dims[1]]`` from high to low (top to bottom
        of the figure), column ``j`` has ``z[dims[0]]`` from low to high.
    """
    _check_continuous(model)
    n = check_positive_int("n", n)
    dims = tuple(int(d) for d in dims)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ValueError(f"dims must name two different latent dimensions, got {dims}.")
    if not all(0 <= d < model.latent_dim for d in dims):
        raise ValueError(
            f"dims must lie in [0, {model.latent_dim - 1}] (latent_dim={model.latent_dim}), "
            f"got {dims}."
        )
    cells = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    values = torch.distributions.Normal(0.0, 1.0).icdf(cells)
    rows, columns = torch.meshgrid(values.flip(0), values, indexing="ij")
    z = torch.zeros(n * n, model.latent_dim)
    z[:, dims[0]] = columns.reshape(-1)
    z[:, dims[1]] = rows.reshape(-1)
    images = model.decode(z, None if y is None else [y] * (n * n))
    return images.reshape(n, n, *model.input_shape)


def traversals(
    model: Any,
    *,
    x: Any = None,
    dims: Sequence[int] | None = None,
    values: Sequence[float] | torch.Tensor = TRAVERSAL_VALUES,
    y: Any = None,
) -> torch.Tensor:
    """Vary one latent dimension at a time around a point and decode.

    Args:
        x: the input whose posterior mean is the centre (shape ``input_shape``); ``None``: the
            prior mean 0.
        dims: the dimensions to traverse (default: all).
        values: the values each dimension takes (the others stay at the centre).
        y: the class, for a conditional model.

    Returns:
        ``(len(dims), len(values), *input_shape)``.
    """
    _check_continuous(model)
    dims = list(range(model.latent_dim)) if dims is None else [int(d) for d in dims]
    if not dims or not all(0 <= d < model.latent_dim for d in dims):
        raise ValueError(
            f"dims must be latent dimensions in [0, {model.latent_dim - 1}], got {dims}."
        )
    grid = as_float_tensor("values", values)
    if grid.dim() != 1 or grid.numel() == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {tuple(grid.shape)}.")
    if x is None:
        centre = torch.zeros(model.latent_dim)
    else:
        x = as_float_tensor("x", x)
        if tuple(x.shape) != tuple(model.input_shape):
            raise ValueError(
                f"x must be one input of shape {tuple(model.input_shape)}, got {tuple(x.shape)}."
            )
        centre = model.encode(x[None], None if y is None else [y])[0][0].cpu()
    z = centre.repeat(len(dims), len(grid), 1)
    for row, dim in enumerate(dims):
        z[row, :, dim] = grid
    count = len(dims) * len(grid)
    images = model.decode(z.reshape(count, -1), None if y is None else [y] * count)
    return images.reshape(len(dims), len(grid), *model.input_shape)
