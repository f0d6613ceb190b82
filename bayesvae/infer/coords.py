"""Named ArviZ dimensions: labels checked and put on every group of an ``InferenceData`` that has
the dim. Shared by SVI posteriors and MCMC; needs neither torch nor Pyro."""

from __future__ import annotations

from typing import Any

__all__ = ["check_coords", "label_dims", "present_dims"]


def check_coords(coords: Any) -> dict[str, list[Any]]:
    """``coords`` as ``{dim: labels}`` (``TypeError`` for anything else); ``None`` -> ``{}``."""
    if coords is None:
        return {}
    if not isinstance(coords, dict) or not all(isinstance(k, str) for k in coords):
        raise TypeError(
            "coords must be a dict of dim name -> labels, e.g. {'school': names}, got "
            f"{type(coords).__name__}."
        )
    labelled = {}
    for dim, labels in coords.items():
        if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
            raise TypeError(f"coords[{dim!r}] must be a sequence of labels, got {labels!r}.")
        labelled[dim] = list(labels.tolist() if hasattr(labels, "tolist") else labels)
    return labelled


def label_dims(idata: Any, coords: Any) -> Any:
    """Put the labels ``coords`` (``{dim: labels}``; a plate's name is its dim) on every group
    of ``idata`` that has the dim. ``ValueError`` for a dim no group has (the dims there are
    listed) or labels of the wrong length."""
    coords = check_coords(coords)
    if not coords:
        return idata
    sizes = _dim_sizes(idata)
    unknown = sorted(set(coords) - set(sizes))
    if unknown:
        named = sorted(d for d in sizes if d not in ("chain", "draw"))
        raise ValueError(f"coords name dims {unknown} that the posterior lacks; its dims: {named}.")
    for dim, labels in coords.items():
        if len(labels) != sizes[dim]:
            raise ValueError(
                f"coords[{dim!r}] has {len(labels)} labels; dim {dim!r} has {sizes[dim]}."
            )
    return idata.assign_coords(coords)


def _dim_sizes(idata: Any) -> dict[str, int]:
    """Every dim of every group of ``idata`` and its size."""
    sizes: dict[str, int] = {}
    for group in idata.groups():
        sizes.update(idata[group].sizes)
    return sizes


def present_dims(idata: Any, coords: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The entries of ``coords`` whose dim ``idata`` has, with a matching length."""
    sizes = _dim_sizes(idata)
    return {dim: labels for dim, labels in coords.items() if sizes.get(dim) == len(labels)}
