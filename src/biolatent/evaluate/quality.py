"""Representation quality without labels: singular spectrum and effective rank (dimensional collapse)."""

from __future__ import annotations

import math

import numpy as np

from biolatent.errors import DataError


def singular_spectrum(embeddings: np.ndarray, center: bool = False) -> np.ndarray:
    """Singular values of the (N, D) embedding matrix, largest first (optionally after centring columns)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) == 0:
        raise DataError(f"embeddings must be a non-empty 2-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("embeddings hold NaN or inf values")
    if center:
        x = x - x.mean(axis=0, keepdims=True)
    return np.linalg.svd(x, compute_uv=False)


def effective_rank(embeddings: np.ndarray, center: bool = False) -> float:
    """Effective rank (Roy & Vetterli, 2007): ``exp(H(p))`` with ``p = s / sum(s)`` over singular values.

    Lies in ``[1, min(N, D)]``; equals ``r`` for a rank-``r`` matrix with ``r`` equal singular values.
    Zero singular values contribute nothing (``0 log 0 = 0``).
    """
    s = singular_spectrum(embeddings, center=center)
    total = s.sum()
    if total <= 0:
        raise DataError("embeddings are all zero: effective rank is undefined")
    p = s[s > 0] / total
    return float(math.exp(-(p * np.log(p)).sum()))
