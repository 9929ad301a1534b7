"""Label preparation and stratified splits.

The held-out test set depends only on the labels, ``test_fraction`` and ``split_seed``: it is the same for
every label fraction and every repeat seed, so that all representations and fractions are scored on the
same samples. Label subsets are drawn from the remaining train pool, stratified by class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from biolatent.errors import DataError


def prepare_labels(values: pd.Series) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Label column -> ``(codes int64, classes, keep_mask)``.

    Missing labels (NaN/None and empty strings) are dropped: ``keep_mask`` marks the kept samples and
    ``codes`` holds one code per kept sample, indexing ``classes``. Classes follow the categorical order of a
    categorical column, numeric order for numbers, otherwise sorted text.
    """
    name = values.name if values.name is not None else "label"
    series = pd.Series(values).reset_index(drop=True)
    missing = series.isna().to_numpy(dtype=bool, copy=True)  # writable under copy-on-write (pandas 3)
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        missing |= series.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    keep = ~missing
    kept = series[keep]
    if isinstance(kept.dtype, pd.CategoricalDtype):
        present = set(kept.astype(object))
        ordered = [c for c in kept.cat.categories if c in present]
    elif pd.api.types.is_numeric_dtype(kept) or pd.api.types.is_bool_dtype(kept):
        ordered = sorted(pd.unique(kept.to_numpy()))
    else:
        ordered = sorted(pd.unique(kept.astype(str).to_numpy()))
        kept = kept.astype(str)
    classes = [str(c) for c in ordered]
    if len(classes) < 2:
        detail = repr(classes[0]) if classes else "no labelled samples"
        raise DataError(f"label column {name!r} has one class: {detail}; probes need at least two")
    lookup = {value: code for code, value in enumerate(ordered)}
    codes = np.fromiter((lookup[v] for v in kept.astype(object)), dtype=np.int64, count=len(kept))
    return codes, classes, keep


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise DataError(f"labels must be a non-empty 1-D array of class codes, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise DataError("labels must be non-negative integer class codes (use prepare_labels)")
    return labels


def holdout_split(
    labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified ``(train_idx, test_idx)``, both sorted.

    Each class with at least 2 samples puts ``round(test_fraction * n_c)`` samples (clipped to
    ``[1, n_c - 1]``) into the test set; classes with fewer than 2 samples stay entirely in the train pool.
    Depends only on ``seed``, never on the repeat seeds of the sweep.
    """
    labels = _check_labels(labels)
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if members.size < 2:
            continue
        n_test = int(np.clip(round(test_fraction * members.size), 1, members.size - 1))
        test.append(rng.permutation(members)[:n_test])
    if not test:
        raise DataError("no class has two samples: nothing can be held out for testing")
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(labels.size), test_idx)
    return train_idx, test_idx


def label_subset(pool_idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Stratified subsample of the train pool with ``fraction`` of its samples, sorted.

    Each class present in the pool keeps ``max(1, round(fraction * n_c))`` samples, so the smallest
    labelled set has one sample per class (``n_classes`` samples) even when ``fraction * len(pool)`` is
    smaller. ``fraction = 1.0`` returns the whole pool. For one seed the subsets are nested: a smaller
    fraction takes a prefix of the same per-class permutation as a larger one.
    """
    labels = _check_labels(labels)
    pool_idx = np.asarray(pool_idx, dtype=np.int64)
    if pool_idx.ndim != 1 or pool_idx.size == 0:
        raise DataError("the train pool is empty")
    if not 0 < fraction <= 1:
        raise DataError(f"label fractions must lie in (0, 1], got {fraction}")
    if fraction == 1.0:
        return np.sort(pool_idx)
    rng = np.random.default_rng(seed)
    pool_labels = labels[pool_idx]
    chosen: list[np.ndarray] = []
    for cls in np.unique(pool_labels):
        members = pool_idx[pool_labels == cls]
        n_take = max(1, round(fraction * members.size))
        chosen.append(rng.permutation(members)[:n_take])
    return np.sort(np.concatenate(chosen))
