"""Label preparation (classification codes or regression targets), the task rule, and the splits.

The held-out test set depends only on the labels, ``test_fraction`` and ``split_seed``: it is the same for
every label fraction and every repeat seed, so that all representations and fractions are scored on the
same samples. Label subsets are drawn from the remaining train pool, stratified by class for classification
and uniformly at random (``stratify=False``) for regression targets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# the task rule is shared with the UMAP colouring of discover and report, so it lives in data
from biolatent.data.columns import TASKS, Task, is_number_column, label_task, missing_mask
from biolatent.errors import ConfigError, DataError

REGRESSION_MIN_TRAIN = 3  # smallest labelled subset of a regression sweep (a line and one residual)


def _column_name(values: pd.Series) -> str:
    return str(values.name) if values.name is not None else "label"


def resolve_task(values: pd.Series, task: str = "auto") -> Task:
    """``task`` itself when it names a task, :func:`label_task` for ``"auto"``; ConfigError otherwise."""
    if task == "auto":
        return label_task(values)
    if task not in TASKS:
        raise ConfigError(f"task must be one of auto, {', '.join(TASKS)}; got {task!r}")
    return task  # type: ignore[return-value]


def prepare_targets(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Numeric label column -> ``(targets float64, keep_mask)`` for regression.

    Missing values (NaN/None, empty strings) are dropped: ``keep_mask`` marks the kept samples and
    ``targets`` holds one value per kept sample. A non-numeric (text, categorical, boolean) column, an
    infinite value, fewer than 3 kept samples or a constant column is a one-line DataError.
    """
    name = _column_name(values)
    series = pd.Series(values).reset_index(drop=True)
    keep = ~missing_mask(series)
    kept = series[keep]
    if pd.api.types.is_bool_dtype(series.dtype) or isinstance(series.dtype, pd.CategoricalDtype):
        kind = "boolean" if pd.api.types.is_bool_dtype(series.dtype) else "categorical"
        raise DataError(f"label column {name!r} is {kind}: a regression target needs numbers "
                        "(use --task classification)")
    if not is_number_column(series):
        try:
            kept = pd.to_numeric(kept.astype(object), errors="raise")
        except (TypeError, ValueError):
            raise DataError(f"label column {name!r} is not numeric: a regression target needs numbers "
                            "(use --task classification)") from None
    targets = kept.to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(targets).all():
        raise DataError(f"label column {name!r} holds infinite values")
    if targets.size < 3:
        raise DataError(f"label column {name!r} has {targets.size} non-missing value(s); regression needs at least 3")
    if np.ptp(targets) == 0:
        raise DataError(f"label column {name!r} is constant ({targets[0]:g}): nothing to regress")
    return targets, keep


def prepare_labels(values: pd.Series) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Label column -> ``(codes int64, classes, keep_mask)``.

    Missing labels (NaN/None and empty strings) are dropped: ``keep_mask`` marks the kept samples and
    ``codes`` holds one code per kept sample, indexing ``classes``. Classes follow the categorical order of a
    categorical column, numeric order for numbers, otherwise sorted text.
    """
    name = _column_name(values)
    series = pd.Series(values).reset_index(drop=True)
    keep = ~missing_mask(series)
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


def _check_labels(labels: np.ndarray, stratify: bool) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        kind = "class codes" if stratify else "targets"
        raise DataError(f"labels must be a non-empty 1-D array of {kind}, got shape {labels.shape}")
    if stratify and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
        raise DataError("labels must be non-negative integer class codes (use prepare_labels)")
    return labels


def holdout_split(
    labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0, *, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, test_idx)``, both sorted; stratified by class unless ``stratify=False``.

    Stratified: each class with at least 2 samples puts ``round(test_fraction * n_c)`` samples (clipped to
    ``[1, n_c - 1]``) into the test set; classes with fewer than 2 samples stay entirely in the train pool.
    Unstratified (regression targets): ``round(test_fraction * n)`` samples clipped to ``[1, n - 1]``, drawn
    uniformly; the labels' values are not used. Depends only on ``seed``, never on the sweep's repeat seeds.
    """
    labels = _check_labels(labels, stratify)
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    if not stratify:
        if labels.size < 2:
            raise DataError("fewer than two samples: nothing can be held out for testing")
        n_test = int(np.clip(round(test_fraction * labels.size), 1, labels.size - 1))
        test_idx = np.sort(rng.permutation(labels.size)[:n_test])
        return np.setdiff1d(np.arange(labels.size), test_idx), test_idx
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


def label_subset(
    pool_idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int, *, stratify: bool = True
) -> np.ndarray:
    """Subsample of the train pool with ``fraction`` of its samples, sorted; stratified unless told not.

    Stratified: each class present in the pool keeps ``max(1, round(fraction * n_c))`` samples, so the
    smallest labelled set has one sample per class (``n_classes`` samples) even when ``fraction * len(pool)``
    is smaller. Unstratified (regression): ``max(REGRESSION_MIN_TRAIN, round(fraction * len(pool)))``
    samples, clipped to the pool. ``fraction = 1.0`` returns the whole pool. For one seed the subsets are
    nested: a smaller fraction takes a prefix of the same (per-class) permutation as a larger one.
    """
    labels = _check_labels(labels, stratify)
    pool_idx = np.asarray(pool_idx, dtype=np.int64)
    if pool_idx.ndim != 1 or pool_idx.size == 0:
        raise DataError("the train pool is empty")
    if not 0 < fraction <= 1:
        raise DataError(f"label fractions must lie in (0, 1], got {fraction}")
    if fraction == 1.0:
        return np.sort(pool_idx)
    rng = np.random.default_rng(seed)
    if not stratify:
        n_take = min(pool_idx.size, max(REGRESSION_MIN_TRAIN, round(fraction * pool_idx.size)))
        return np.sort(rng.permutation(pool_idx)[:n_take])
    pool_labels = labels[pool_idx]
    chosen: list[np.ndarray] = []
    for cls in np.unique(pool_labels):
        members = pool_idx[pool_labels == cls]
        n_take = max(1, round(fraction * members.size))
        chosen.append(rng.permutation(members)[:n_take])
    return np.sort(np.concatenate(chosen))


def check_test_splits(labels: np.ndarray, n_splits: int, test_fraction: float, *, stratify: bool = True) -> None:
    """DataError unless ``n_splits`` stratified splits can differ: each class's test part of ``k`` out of its ``n``
    samples has ``comb(n, k)`` possible choices, and the smallest class (of those with two samples or more) caps
    the number of different splits. Unstratified (regression): ``comb(n, k)`` over all samples."""
    from math import comb

    if n_splits < 1:
        raise DataError(f"--test-splits must be at least 1, got {n_splits}")
    if n_splits == 1:
        return
    labels = _check_labels(labels, stratify)
    counts = (np.bincount(labels) if stratify else np.array([labels.size]))
    counts = counts[counts >= 2]
    if counts.size == 0:
        raise DataError("no class has two samples: nothing can be held out for testing")
    choices = [(comb(int(n), int(np.clip(round(test_fraction * n), 1, n - 1))), int(n)) for n in counts]
    fewest, size = min(choices)
    if n_splits > fewest:
        what = "the smallest class" if stratify else "the samples"
        raise DataError(f"--test-splits {n_splits} is more than {what} allows: {size} samples give only {fewest} "
                        f"different test part(s) at test fraction {test_fraction:g}")


SPLIT_VALUES = ("train", "test")


def column_split(obs: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """The fixed ``(train, test)`` positions of the labelled samples' metadata rows ``obs`` from ``column``, whose
    values are ``train`` or ``test`` (any case; e.g. the official split of a UCR/UEA set, column ``split``).
    A missing column, another value (e.g. ``validation``, or none) or an empty part is a one-line DataError."""
    if column not in obs.columns:
        raise DataError(f"--split-column {column!r}: no such metadata column (columns: "
                        f"{', '.join(map(str, obs.columns[:12]))})")
    raw = obs[column]
    values = raw.astype(str).str.strip().str.lower().to_numpy()
    missing = raw.isna().to_numpy()
    unknown = sorted({str(v) for v, ok, gap in zip(raw, np.isin(values, SPLIT_VALUES), missing, strict=True)
                      if not ok and not gap} | ({"(missing)"} if missing.any() else set()))
    if unknown:
        raise DataError(f"--split-column {column!r}: every labelled sample needs train or test, found "
                        f"{', '.join(unknown[:5])}")
    train, test = np.flatnonzero(values == "train"), np.flatnonzero(values == "test")
    if train.size == 0 or test.size == 0:
        raise DataError(f"--split-column {column!r}: {train.size} training and {test.size} test samples among the "
                        "labelled ones (both parts are needed)")
    return train, test
