"""Tabular inputs: per-user rows (a CSV file or a DataFrame) aggregated to per-arm counts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["aggregate_outcomes", "read_table"]


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
