"""Time series for window-based detectors (read by ``data.tabular``): sliding windows, and window scores back to points.

A series is cut into overlapping windows of ``size`` points every ``stride`` points; each window becomes a
feature vector (its values z-scored with the *healthy training* mean and SD, plus its first differences);
a point's score is the maximum score of the windows that contain it (so an anomaly is flagged wherever a
window covering it is unusual).
"""

from __future__ import annotations

import numpy as np

from biolatent.errors import DataError


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
