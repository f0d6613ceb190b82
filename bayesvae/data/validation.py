"""Input checks shared by every family: each raises a ``ValueError``/``TypeError`` naming the
argument, what was expected and what came. torch is imported by the checks that make tensors
only, so the torch-free paths (the exact A/B test) can use the rest."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "as_float_tensor",
    "check_finite",
    "check_unit_interval",
    "check_positive_int",
    "check_non_negative_int",
    "check_number",
    "check_positive_number",
    "check_non_negative_number",
    "check_probability",
    "check_choice",
    "check_bow",
    "load_numpy",
]


def as_float_tensor(
    name: str, value: Any, *, dtype: torch.dtype | str | None = "float32"
) -> torch.Tensor:
    """Convert an array-like (a numpy array, a tensor, a list, a pandas DataFrame or Series) to
    a float tensor of ``dtype`` (a torch dtype or its name; ``None`` keeps a floating input's
    dtype); refuse empty, non-numeric or non-finite input."""
    import torch

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if hasattr(value, "columns") and hasattr(value, "to_numpy"):  # a pandas DataFrame
        text = [str(c) for c, kind in value.dtypes.items() if kind.kind not in "iufb"]
        if text:
            raise TypeError(f"{name} must be numeric; its column(s) {text} are not.")
        value = value.to_numpy()
    elif hasattr(value, "to_numpy") and hasattr(value, "index"):  # a pandas Series
        value = value.to_numpy()
    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
        array = np.asarray(value)
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
        ):
            raise TypeError(f"{name} must be numeric, got an array of dtype {array.dtype}.")
        if not array.flags.writeable:  # e.g. a memory map or a loaded archive: torch needs a copy
            array = array.copy()
        tensor = torch.as_tensor(array)
    else:
        raise TypeError(
            f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}."
        )
    if tensor.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {tensor.dtype}.")
    if tensor.numel() == 0:
        raise ValueError(
            f"{name} is empty (shape {tuple(tensor.shape)}); expected at least one row."
        )
    if not tensor.is_floating_point():
        tensor = tensor.to(dtype)
    elif tensor.dtype != dtype and dtype is not None:
        tensor = tensor.to(dtype)
    check_finite(name, tensor)
    return tensor


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Raise if ``tensor`` holds NaN or infinite values."""
    import torch

    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); clean or impute them first."
        )


def check_unit_interval(name: str, tensor: torch.Tensor, why: str) -> None:
    """Raise unless every value lies in [0, 1]."""
    low, high = float(tensor.min()), float(tensor.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1] for {why}, got values in [{low:g}, {high:g}]; "
            "scale the data (e.g. divide pixels by 255) or use likelihood='gaussian'."
        )


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as int, raising unless it is a positive integer (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {value!r}.")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}.")
    return int(value)


def check_non_negative_int(name: str, value: Any) -> int:
    """Return ``value`` as int, raising unless it is an integer >= 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}.")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value}.")
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as float, raising ``ValueError`` naming ``name`` unless it is a finite
    Python or NumPy real number (bools refused) between ``low`` and ``high`` (``None``: that side
    unbounded; ``low_open``/``high_open``: that end excluded)."""
    inside = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
        and (low is None or (value > low if low_open else value >= low))
        and (high is None or (value < high if high_open else value <= high))
    )
    if not inside:
        if low is not None and high is not None:
            span = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            span = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            span = f" {'<' if high_open else '<='} {high:g}"
        else:
            span = ""
        raise ValueError(f"{name} must be a finite number{span}, got {value!r}.")
    return float(value)


def check_non_negative_number(name: str, value: Any) -> float:
    """Return ``value`` as float, raising ``ValueError`` unless it is a finite real number >= 0
    (bools refused)."""
    return check_number(name, value, low=0)


def check_positive_number(name: str, value: Any) -> float:
    """Return ``value`` as float, raising ``ValueError`` unless it is a finite real number > 0
    (bools refused)."""
    return check_number(name, value, low=0, low_open=True)


def check_probability(name: str, value: Any) -> float:
    """Return ``value`` as float, raising ``ValueError`` unless it is a finite real number in
    ``(0, 1)`` (bools refused)."""
    return check_number(name, value, low=0, high=1, low_open=True, high_open=True)


def check_choice(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; expected one of {options}.")
    return value


def check_bow(name: str, bow: Any, vocab_size: int | None = None) -> torch.Tensor:
    """A bag-of-words matrix ``(N, V)`` (dense or scipy sparse) as a float32 tensor of
    non-negative whole counts; refuse empty input, a wrong vocabulary size, negative or
    fractional counts and NaN."""
    import torch

    if hasattr(bow, "toarray"):  # scipy.sparse
        bow = bow.toarray()
    if isinstance(bow, torch.Tensor):
        array = bow.detach().cpu().numpy()
    else:
        array = np.asarray(bow)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise TypeError(f"{name} must hold numeric word counts, got dtype {array.dtype}.")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (documents, vocabulary), got shape {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no documents.")
    if vocab_size is not None and array.shape[1] != vocab_size:
        raise ValueError(
            f"{name} has a vocabulary of {array.shape[1]} words; the model's has {vocab_size}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite counts.")
    if np.any(array < 0):
        raise ValueError(f"{name} has negative counts (min {array.min()}); counts must be >= 0.")
    if np.any(array != np.round(array)):
        raise ValueError(f"{name} has non-integer counts; expected whole word counts.")
    return torch.as_tensor(array, dtype=torch.float32)


def load_numpy(path: Any) -> Any:
    """``np.load(path, allow_pickle=False)`` (an array, or an ``NpzFile`` to use as a context
    manager), with every way a file can be wrong as a ``ValueError`` naming it: a folder, an
    empty or truncated file, something that is not ``.npy``/``.npz``, a pickled object."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected a .npy or .npz file.")
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist.")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        import zipfile

        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, EOFError) or path.stat().st_size == 0:
            reason = "the file is empty"
        elif isinstance(err, zipfile.BadZipFile):
            reason = "not a valid .npz (zip) archive"
        elif "allow_pickle" in reason:
            reason = "it holds pickled Python objects, which are never loaded"
        raise ValueError(f"{path} is not a readable .npy/.npz file: {reason}.") from None
