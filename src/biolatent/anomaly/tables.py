"""Feature tables for the feature detectors: one row per sample, an ``id`` column and numeric feature columns.

Which columns are features is decided once, when the detector is fitted: every column except the id, the label
column and the ones the config names in ``data.drop_columns``. A non-numeric column among them is refused (never
dropped silently: a text class column left in a "healthy" file is the sign that it may hold other rows), and so
is a missing or infinite value. Scoring selects the fitted feature columns by name, so other columns of a test
table (its labels, its text columns) never shift the features.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError


def quoted(names: Iterable[object], limit: int = 6) -> str:
    """'a', 'b', 'c' (at most ``limit`` names, then "... (N in all)")."""
    names = [str(n) for n in names]
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def feature_columns(table: pd.DataFrame, path: Path, label_column: str | None, drop_columns: list[str]) -> list[str]:
    """The feature columns of a healthy table (index = ids): all but the label column and ``drop_columns``;
    DataError when a dropped column does not exist, when none is left, or when one of them is not numeric."""
    missing = [c for c in drop_columns if c not in table.columns]
    if missing:
        raise DataError(f"data.drop_columns names column(s) {quoted(missing)} that table {path} does not have "
                        f"(columns: {quoted(table.columns)})")
    excluded = {*drop_columns, label_column}
    columns = [str(c) for c in table.columns if c not in excluded]
    if not columns:
        raise DataError(f"table {path} has no feature column left (columns: {quoted(table.columns)})")
    _check_numeric(table, path, columns)
    return columns


def table_features(table: pd.DataFrame, path: Path, columns: list[str]) -> np.ndarray:
    """float64 (N, len(columns)) of the named columns; DataError naming missing or non-numeric columns, and
    counting missing/infinite values."""
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise DataError(f"table {path} lacks {len(absent)} feature column(s) the detector was fitted on: "
                        f"{quoted(absent)}")
    _check_numeric(table, path, columns)
    x = table[columns].to_numpy(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        where = [columns[j] for j in np.flatnonzero(bad.any(axis=0))]
        first = str(table.index[int(np.flatnonzero(bad.any(axis=1))[0])])
        raise DataError(f"table {path} has {int(bad.sum())} missing or infinite value(s) in feature column(s) "
                        f"{quoted(where)} (first in row id {first!r}): fill them or drop those rows/columns")
    return x


def _check_numeric(table: pd.DataFrame, path: Path, columns: list[str]) -> None:
    text = [c for c in columns if not pd.api.types.is_numeric_dtype(table[c])]
    if text:
        values = table[text[0]]
        odd = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
        seen = quoted(pd.unique(odd if len(odd) else values), limit=3)  # e.g. both classes of a class column
        raise DataError(f"table {path} has non-numeric column(s) {quoted(text)} ({text[0]!r} holds {seen}): "
                        "drop them or name them in data.drop_columns")
