"""Sets of time series, one sample per series (``data.modality: series`` with the ``samples`` layout).

Sources: an aeon/UCR ``.ts`` file (``io.ts_format``; class labels -> obs column ``label``), a ``.npy`` array
``(N, C, T)`` or ``(N, T)``, a ``.npz`` with ``x`` (same shapes) and optional ``lengths`` (N,) (values past a
series' length are ignored, so NaN padding is allowed there), ``ids`` and ``labels``, or a long table
(``id_column``, ``time_column``, one numeric column per channel; rows sorted by time within each series).

Every series becomes float32 ``(C, length)``: equal lengths are kept as they are, unequal ones (or any, when
``data.length`` is set) are linearly resampled onto ``length`` evenly spaced points (``resample``), so no padding
and no NaN ever reaches a network; ``obs["length"]`` keeps each series' own length. A missing value (NaN, ``?``)
inside a series is an error: impute it first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biolatent.config import SeriesData
from biolatent.data.inputs import join_metadata, require_path
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.errors import DataError

ARRAY_SUFFIXES = (".npy", ".npz")
TABLE_SUFFIXES = (".tsv", ".csv", ".txt")


def series_layout(cfg: SeriesData, path: Path) -> str:
    """``points`` or ``samples`` (``data.layout``; ``auto``: .ts/.npy/.npz and tables with both the id and the time
    column are ``samples``)."""
    if cfg.layout != "auto":
        return cfg.layout
    suffix = path.suffix.lower()
    if suffix == ".ts" or suffix in ARRAY_SUFFIXES:
        return "samples"
    if suffix in TABLE_SUFFIXES and path.is_file():
        columns = pd.read_csv(path, sep="\t" if suffix in (".tsv", ".txt") else ",", nrows=0).columns
        if cfg.id_column in columns and cfg.time_column in columns:
            return "samples"
    return "points"


def resample(series: np.ndarray, length: int) -> np.ndarray:
    """(C, T) -> (C, length) by linear interpolation between evenly spaced points (first and last kept)."""
    if series.shape[1] == length:
        return series
    if series.shape[1] == 1:
        return np.repeat(series, length, axis=1)
    old = np.linspace(0.0, 1.0, series.shape[1])
    new = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(new, old, channel) for channel in series])


def _check_finite(series: list[np.ndarray], ids: list[str], where: str) -> None:
    for sid, values in zip(ids, series, strict=True):
        if not np.isfinite(values).all():
            n_bad = int((~np.isfinite(values)).sum())
            raise DataError(f"{where}: series {sid!r} holds {n_bad} missing (NaN/?) or infinite value(s) within "
                            "its length; impute them (or give .npz lengths for end padding)")


def _from_ts(path: Path) -> tuple[list[np.ndarray], list[str], pd.DataFrame]:
    from biolatent.io.ts_format import read_ts

    parsed = read_ts(path)
    ids = [str(i) for i in range(len(parsed.series))]
    obs = pd.DataFrame(index=pd.Index(ids))
    if parsed.labels is not None:
        obs["label"] = parsed.labels
    return parsed.series, ids, obs


def _from_array(path: Path) -> tuple[list[np.ndarray], list[str], pd.DataFrame]:
    lengths = ids = labels = None
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "x" not in archive:
                    raise DataError(f"{path}: an .npz of series needs an array 'x' (keys: {', '.join(archive)})")
                x = archive["x"]
                lengths, ids, labels = (archive.get(key) for key in ("lengths", "ids", "labels"))
        else:
            x = np.load(path, allow_pickle=False)
    except ValueError as exc:  # object arrays (ragged lists) need pickle: refused
        raise DataError(f"{path}: not a numeric array ({exc}); ragged series go in an .npz padded to the longest, "
                        "with their 'lengths'") from None
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: series values must be numbers, got dtype {x.dtype}")
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[2] < 2:
        raise DataError(f"{path}: series must be an array (N, C, T) or (N, T) with T >= 2, got shape {x.shape}")
    n = x.shape[0]
    if lengths is None:
        lengths = np.full(n, x.shape[2])
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer) or (lengths < 2).any() \
            or (lengths > x.shape[2]).any():
        raise DataError(f"{path}: 'lengths' must be {n} integers in [2, {x.shape[2]}]")
    series = [x[i, :, : int(lengths[i])].astype(np.float64) for i in range(n)]
    names = [str(v) for v in ids] if ids is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise DataError(f"{path}: 'ids' has {len(names)} entries for {n} series")
    obs = pd.DataFrame(index=pd.Index(names))
    if labels is not None:
        if len(labels) != n:
            raise DataError(f"{path}: 'labels' has {len(labels)} entries for {n} series")
        obs["label"] = [str(v) for v in labels]
    return series, names, obs


def _from_long_table(cfg: SeriesData, path: Path) -> tuple[list[np.ndarray], list[str], pd.DataFrame]:
    table = pd.read_csv(path, sep="\t" if path.suffix.lower() in (".tsv", ".txt") else ",")
    for column in (cfg.id_column, cfg.time_column):
        if column not in table.columns:
            raise DataError(f"long series table {path} has no column {column!r} (columns: "
                            f"{', '.join(map(str, table.columns))})")
    channels = cfg.value_columns or [str(c) for c in table.columns if c not in (cfg.id_column, cfg.time_column)
                                     and pd.api.types.is_numeric_dtype(table[c])]
    missing = [c for c in channels if c not in table.columns]
    if not channels or missing:
        raise DataError(f"long series table {path}: no value column{' ' + repr(missing[0]) if missing else ''} "
                        f"(columns: {', '.join(map(str, table.columns))})")
    table[cfg.id_column] = table[cfg.id_column].astype(str)
    if table.duplicated([cfg.id_column, cfg.time_column]).any():
        row = table[table.duplicated([cfg.id_column, cfg.time_column])].iloc[0]
        raise DataError(f"long series table {path}: series {row[cfg.id_column]!r} has two rows at time "
                        f"{row[cfg.time_column]!r}")
    values = table[channels].apply(pd.to_numeric, errors="coerce")
    table = table.assign(**{c: values[c] for c in channels}).sort_values([cfg.id_column, cfg.time_column],
                                                                         kind="stable")
    ids = list(dict.fromkeys(table[cfg.id_column]))
    groups = dict(tuple(table.groupby(cfg.id_column, sort=False)))
    series = [groups[sid][channels].to_numpy(np.float64).T for sid in ids]
    short = [sid for sid, s in zip(ids, series, strict=True) if s.shape[1] < 2]
    if short:
        raise DataError(f"long series table {path}: series {short[0]!r} has fewer than 2 time points")
    return series, ids, pd.DataFrame(index=pd.Index(ids))


def load_series_set(cfg: SeriesData) -> SampleSet:
    """One sample per series -> float32 (N, C, length) (module docstring)."""
    path = require_path(cfg.path, "series")
    suffix = path.suffix.lower()
    if suffix == ".ts":
        series, ids, obs = _from_ts(path)
    elif suffix in ARRAY_SUFFIXES:
        series, ids, obs = _from_array(path)
    elif suffix in TABLE_SUFFIXES:
        series, ids, obs = _from_long_table(cfg, path)
    else:
        raise DataError(f"series data.path must be a .ts, .npy, .npz or a long table (.tsv/.csv): {path}")
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: duplicate series id {pd.Index(ids)[pd.Index(ids).duplicated()][0]!r}")
    _check_finite(series, ids, str(path))
    lengths = np.array([s.shape[1] for s in series], dtype=np.int64)
    length = cfg.length or int(lengths.max())
    x = np.stack([resample(s, length) for s in series]).astype(np.float32)
    obs["length"] = lengths
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    info = DataInfo(modality="series", channels=int(x.shape[1]), max_length=length)
    return SampleSet(info, torch.from_numpy(np.ascontiguousarray(x)), obs)
