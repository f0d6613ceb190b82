"""Tabular inputs: per-user rows aggregated to per-arm counts (A/B tests), and feature tables
with optional binary labels (anomaly detection)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayesvae.data.validation import load_numpy

__all__ = [
    "aggregate_outcomes",
    "outcome_values",
    "check_binary_labels",
    "read_features",
    "read_table",
]


def read_table(source: Any) -> Any:
    """A pandas DataFrame from a DataFrame or a CSV path; an empty table raises ``ValueError``."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame = source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"data file {path} does not exist.")
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path} is empty: no header and no rows.") from None
    else:
        raise TypeError(f"expected a DataFrame or a CSV path, got {type(source).__name__}.")
    if frame.empty:
        raise ValueError("the table has no rows.")
    return frame


def aggregate_outcomes(
    source: Any, *, group: str, outcome: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-user rows -> ``(arm names, successes (K,), trials (K,))``.

    ``group`` names the column holding each row's arm; ``outcome`` a column of 0/1 (or
    True/False) outcomes. Arms keep their order of first appearance.
    """
    frame = read_table(source)
    for label, column in (("group", group), ("outcome", outcome)):
        if column not in frame.columns:
            raise ValueError(
                f"{label} column {column!r} not found; columns are {list(frame.columns)}."
            )
    values = frame[outcome]
    if values.isna().any():
        raise ValueError(
            f"outcome column {outcome!r} has {int(values.isna().sum())} missing values."
        )
    import pandas as pd

    numeric = pd.to_numeric(
        values.map(lambda v: int(v) if isinstance(v, bool) else v), errors="coerce"
    )
    bad = values[numeric.isna() | ~numeric.isin([0, 1])]
    if len(bad):
        shown = sorted({str(v) for v in bad})[:5]
        raise ValueError(
            f"outcome column {outcome!r} must hold only 0 and 1 (or True/False), found {shown}."
        )
    values = numeric.astype(int)
    if frame[group].isna().any():
        raise ValueError(f"group column {group!r} has missing values.")
    names = [str(g) for g in dict.fromkeys(frame[group].tolist())]
    grouped = values.astype(int).groupby(frame[group].astype(str), sort=False)
    successes = grouped.sum().reindex(names).to_numpy()
    trials = grouped.count().reindex(names).to_numpy()
    return names, successes.astype(np.int64), trials.astype(np.int64)


def outcome_values(
    frame: Any, *, group: str, outcome: str, binary: bool = False
) -> tuple[list[str], list[np.ndarray]]:
    """Per-unit rows -> ``(arm names, one (n_k,) float array of outcomes per arm)``, arms in order
    of first appearance. True/False count as 1/0; ``binary`` requires 0/1. Missing or
    non-numeric outcomes and missing groups raise ``ValueError`` naming the column."""
    import pandas as pd

    for label, column in (("group", group), ("outcome", outcome)):
        if column not in frame.columns:
            raise ValueError(
                f"{label} column {column!r} not found; columns are {list(frame.columns)}."
            )
    if frame[group].isna().any():
        raise ValueError(f"group column {group!r} has missing values.")
    values = frame[outcome]
    if values.isna().any():
        raise ValueError(
            f"outcome column {outcome!r} has {int(values.isna().sum())} missing values."
        )
    numeric = pd.to_numeric(
        values.map(lambda v: int(v) if isinstance(v, (bool, np.bool_)) else v), errors="coerce"
    )
    bad = values[numeric.isna() | (~numeric.isin([0, 1]) if binary else numeric.isna())]
    if len(bad):
        shown = sorted({str(v) for v in bad})[:5]
        wanted = "only 0 and 1 (or True/False)" if binary else "numbers"
        raise ValueError(f"outcome column {outcome!r} must hold {wanted}, found {shown}.")
    if not np.all(np.isfinite(numeric.to_numpy(dtype=np.float64))):
        raise ValueError(f"outcome column {outcome!r} holds inf values.")
    labels = frame[group].astype(str)
    names = list(dict.fromkeys(labels.tolist()))
    arrays = numeric.astype(np.float64).groupby(labels, sort=False)
    by_name = {str(name): part.to_numpy() for name, part in arrays}
    return names, [by_name[name] for name in names]


def read_features(
    source: Any,
    *,
    columns: Sequence[str] | Sequence[int] | None = None,
    label_column: str | int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Features ``X`` (N, D) float64, optional 0/1 labels ``y`` (N,) and the feature names, from
    a DataFrame, a CSV file, a ``.npy`` array or a ``.npz`` archive.

    ``columns`` picks feature columns (names for tables, integer indices for ``.npy``/``.npz``;
    default: every column but the label). ``label_column`` names the label column (a table
    column; a key of the ``.npz``, e.g. ``"y"``; an integer column of the ``.npy``).
    Non-numeric feature columns raise ``TypeError``; a missing or non-binary label column,
    NaN/inf and empty input raise ``ValueError``.
    """
    import pandas as pd

    suffix = Path(source).suffix.lower() if isinstance(source, (str, os.PathLike)) else ""
    labels: Any = None
    if suffix in (".npy", ".npz"):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"data file {path} does not exist.")
        if suffix == ".npz":
            with load_numpy(path) as archive:
                if "X" not in archive:
                    raise ValueError(f"{path} has no array 'X'; it holds {list(archive.keys())}.")
                array = archive["X"]
                if label_column is not None:
                    if str(label_column) not in archive:
                        raise ValueError(
                            f"label column {label_column!r} not found in {path}; it holds "
                            f"{list(archive.keys())}."
                        )
                    labels = archive[str(label_column)]
        else:
            array = load_numpy(path)
            if label_column is not None:
                index = _column_index("label_column", label_column, array)
                labels = array[:, index]
                array = np.delete(array, index, axis=1)
        if array.ndim != 2:
            raise ValueError(f"X in {path} must be 2-D (N, D), got shape {array.shape}.")
        names = [f"x{i}" for i in range(array.shape[1])]
        if columns is not None:
            picked = [_column_index("columns", c, array) for c in columns]
            array, names = array[:, picked], [names[i] for i in picked]
        frame = pd.DataFrame(array, columns=names)
    else:
        frame = read_table(source)
        if label_column is not None:
            if label_column not in frame.columns:
                raise ValueError(
                    f"label column {label_column!r} not found; columns are {list(frame.columns)}."
                )
            labels = frame[label_column].to_numpy()
            frame = frame.drop(columns=[label_column])
        if columns is not None:
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise ValueError(f"columns {missing} not found; columns are {list(frame.columns)}.")
            frame = frame[list(columns)]
    if frame.shape[0] == 0:
        raise ValueError("the data have no rows.")
    if frame.shape[1] == 0:
        raise ValueError("the data have no feature columns.")
    non_numeric = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise TypeError(
            f"feature columns must be numeric; {non_numeric} are not (encode them, or pick "
            "columns with columns=)."
        )
    X = frame.to_numpy(dtype=np.float64)
    y = None if labels is None else check_binary_labels(labels, len(X))
    return X, y, [str(c) for c in frame.columns]


def _column_index(name: str, value: Any, array: np.ndarray) -> int:
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} of an array file must be integer column indices, got {value!r}.")
    if array.ndim != 2 or not -array.shape[1] <= value < array.shape[1]:
        raise ValueError(f"{name} index {value} is out of range for an array of {array.shape}.")
    return int(value) % array.shape[1]


def check_binary_labels(labels: Any, num_rows: int) -> np.ndarray:
    """Labels ``(num_rows,)`` as int64 0/1 (1 = anomaly, True/False accepted); refuse anything
    else with a ``ValueError``."""
    import pandas as pd

    values = pd.Series(np.asarray(labels).ravel())
    if len(values) != num_rows:
        raise ValueError(f"labels have {len(values)} entries for {num_rows} rows.")
    numeric = pd.to_numeric(values.map(lambda v: int(v) if isinstance(v, bool) else v), "coerce")
    bad = values[numeric.isna() | ~numeric.isin([0, 1])]
    if len(bad):
        raise ValueError(
            f"the label column must be binary (0 = normal, 1 = anomaly); found "
            f"{sorted(map(str, bad.unique()))[:5]}."
        )
    return numeric.to_numpy(dtype=np.int64)
