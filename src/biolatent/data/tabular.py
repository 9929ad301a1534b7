"""Tables -> SampleSet: the ``series`` (one time series, its points as samples) and ``features`` (one row per
sample: a table or embeddings in an .h5ad) data modalities.

A series is a tsv/csv table with one row per time point: ``x`` float64 (T, 1) of ``value_column``; ``obs`` (ids
"0".."T-1") holds the table's other columns (e.g. its labels).

A features table has an ``id_column`` and numeric feature columns. Which columns are features is decided once,
when a detector is fitted: ``feature_columns`` when given (picked by name, so other columns and their order do
not matter), else every column except the id, ``label_column`` and ``drop_columns``. A non-numeric column among
them is refused (never dropped silently: a text class column left in a "healthy" file is the sign that it may
hold other rows), and so is a missing or infinite value. An .h5ad gives ``obsm[key]`` (or X without it) and its
obs. ``feature_names`` holds the feature columns (tables) and ``obs`` every column.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biolatent.config import FeaturesData, SeriesData
from biolatent.data.inputs import join_metadata, require_path
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.errors import DataError


def quoted(names: Iterable[object], limit: int = 6) -> str:
    """'a', 'b', 'c' (at most ``limit`` names, then "... (N in all)")."""
    names = [str(n) for n in names]
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def read_series(path: str | Path, value_column: str = "value") -> tuple[np.ndarray, pd.DataFrame]:
    """(values float64 (T,), the whole table) of a tsv/csv series; DataError for a missing column or NaN values."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"series table not found: {path}")
    table = pd.read_csv(path, sep="\t" if path.suffix.lower() in (".tsv", ".txt") else ",")
    if value_column not in table.columns:
        raise DataError(f"series table {path} has no column {value_column!r} (columns: {', '.join(table.columns)}); "
                        "a table with one row per sample and feature columns is data.modality: features")
    values = pd.to_numeric(table[value_column], errors="coerce").to_numpy(np.float64)
    if np.isnan(values).any():
        first = int(np.flatnonzero(np.isnan(values))[0])
        raise DataError(f"series {path} has {int(np.isnan(values).sum())} missing or non-numeric values in "
                        f"{value_column!r} (first at row {first + 2})")
    return values, table


def load_series(cfg: SeriesData) -> SampleSet:
    """A series table -> float64 (T, 1), the points as samples (module docstring)."""
    path = require_path(cfg.path, "series")
    values, table = read_series(path, cfg.value_column)
    obs = table.drop(columns=[cfg.value_column]).set_index(pd.Index([str(i) for i in range(values.size)]))
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    info = DataInfo(modality="series", n_features=1)
    return SampleSet(info, torch.from_numpy(values[:, None]), obs, [cfg.value_column])


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


def _h5ad_features(path: Path, key: str) -> tuple[np.ndarray, pd.DataFrame]:
    from biolatent.io.h5ad import read_h5ad

    adata = read_h5ad(path)
    if key in adata.obsm:
        values = np.asarray(adata.obsm[key], dtype=np.float64)
    elif adata.X is not None and adata.n_vars > 0:
        values = np.asarray(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, dtype=np.float64)
    else:
        raise DataError(f"{path} has no obsm[{key!r}] and no X to use as features")
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise DataError(f"{path}: the features of {adata.obs_names[row]!r} hold NaN or inf")
    obs = adata.obs.copy()
    obs.index = obs.index.astype(str)
    return values, obs


def load_features(cfg: FeaturesData) -> SampleSet:
    """A features table or .h5ad -> float64 (N, F) (module docstring)."""
    from biolatent.io.tables import read_table

    path = require_path(cfg.path, "features")
    names: list[str] | None = None
    if path.suffix == ".h5ad":
        x, obs = _h5ad_features(path, cfg.key)
    else:
        obs = read_table(path, id_column=cfg.id_column)
        names = cfg.feature_columns or feature_columns(obs, path, cfg.label_column, cfg.drop_columns)
        x = table_features(obs, path, names)
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    info = DataInfo(modality="features", n_features=int(x.shape[1]))
    return SampleSet(info, torch.from_numpy(np.ascontiguousarray(x)), obs, names)
