"""Time series for window-based detectors: reading, sliding windows, and window scores back to points.

A series is cut into overlapping windows of ``size`` points every ``stride`` points; each window becomes a
feature vector (its values z-scored with the *healthy training* mean and SD, plus its first differences);
a point's score is the maximum score of the windows that contain it (so an anomaly is flagged wherever a
window covering it is unusual).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.anomaly.metrics import binary_labels
from biolatent.errors import DataError


def read_series(path: str | Path, value_column: str = "value", label_column: str | None = None,
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, labels or None) of a tsv/csv series table; DataError for missing columns or NaN values."""
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
    labels = None
    if label_column is not None:
        if label_column not in table.columns:
            raise DataError(f"series table {path} has no label column {label_column!r} "
                            f"(columns: {', '.join(map(str, table.columns))})")
        labels = binary_labels(table[label_column], label_column, f"series table {path}")
    return values, labels


def sliding_windows(values: np.ndarray, size: int, stride: int = 1) -> np.ndarray:
    """(n_windows, size) view-copies of ``values``; DataError when the series is shorter than a window."""
    v = np.asarray(values, dtype=np.float64)
    if size < 2 or stride < 1:
        raise DataError(f"window size must be >= 2 and stride >= 1, got size {size}, stride {stride}")
    if v.ndim != 1 or v.size < size:
        raise DataError(f"the series has {v.size} points, shorter than the window of {size}")
    if not np.isfinite(v).all():
        raise DataError("the series holds NaN or inf values")
    starts = np.arange(0, v.size - size + 1, stride)
    return v[starts[:, None] + np.arange(size)[None, :]]


def window_features(windows: np.ndarray, mean: float, scale: float) -> np.ndarray:
    """Each window z-scored with the healthy statistics, followed by its first differences."""
    z = (windows - mean) / scale
    return np.concatenate([z, np.diff(z, axis=1)], axis=1)


def point_scores(window_scores: np.ndarray, n_points: int, size: int, stride: int = 1) -> np.ndarray:
    """Per point: the maximum score over the windows that contain it (windows as ``sliding_windows``)."""
    scores = np.full(n_points, -np.inf)
    for i, s in enumerate(np.asarray(window_scores, dtype=np.float64)):
        start = i * stride
        np.maximum(scores[start:start + size], s, out=scores[start:start + size])
    if np.isneginf(scores).any():  # a tail not covered when (n - size) % stride != 0
        last = int(np.flatnonzero(~np.isneginf(scores))[-1])
        scores[last + 1:] = scores[last]
    return scores
