"""Classification metrics from class probabilities, regression metrics, Student-t intervals over seeds."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, r2_score, roc_auc_score

from biolatent.errors import DataError

METRICS = ("accuracy", "balanced_accuracy", "auroc", "f1")
REGRESSION_METRICS = ("pearson_r", "r2")
# the values each metric can take: intervals are clipped to them
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0), "balanced_accuracy": (0.0, 1.0), "auroc": (0.0, 1.0), "f1": (0.0, 1.0),
    "pearson_r": (-1.0, 1.0), "r2": (-math.inf, 1.0), "mean_gene_pearson_r": (-1.0, 1.0),
}


def chance_level(metric: str, n_classes: int | None = None) -> float | None:
    """What a predictor that ignores its input scores in expectation; None when it depends on the data.

    Balanced accuracy: ``1 / n_classes`` (every class's recall is the probability of predicting it); AUROC:
    0.5; Pearson r, R^2 and the mean over genes of Pearson r: 0 (a constant or independent prediction).
    Accuracy and F1 depend on the class
    frequencies: None.
    """
    if metric == "balanced_accuracy":
        return 1.0 / n_classes if n_classes else None
    return {"auroc": 0.5, "pearson_r": 0.0, "r2": 0.0, "mean_gene_pearson_r": 0.0}.get(metric)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro one-vs-rest AUROC and macro F1 of ``argmax(proba)``.

    ``balanced_accuracy`` averages recall over the classes present in ``y_true``; ``f1`` is sklearn's macro
    F1 (over classes present in ``y_true`` or predicted). ``auroc`` averages, over the classes present in
    ``y_true``, the AUROC of ``proba[:, c]`` for "class c vs the rest"; NaN when ``y_true`` holds one class.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (y_true.shape[0], n_classes):
        raise DataError(f"probabilities must have shape ({y_true.shape[0]}, {n_classes}), got {proba.shape}")
    if y_true.size == 0:
        raise DataError("no test samples to score")
    if not np.isfinite(proba).all():
        raise DataError("probabilities hold NaN or inf values")
    if y_true.min() < 0 or y_true.max() >= n_classes:
        raise DataError(f"labels must be class codes in [0, {n_classes}), got {y_true.min()}..{y_true.max()}")
    y_pred = proba.argmax(axis=1)
    present = np.unique(y_true)
    auroc = math.nan  # undefined with a single class in y_true
    if present.size > 1:
        auroc = float(np.mean([roc_auc_score(y_true == c, proba[:, c]) for c in present]))
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": expected with few labels
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(balanced_accuracy_score(y_true, y_pred))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced,
        "auroc": auroc,
        "f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Pearson correlation and coefficient of determination of predictions against the true targets.

    ``pearson_r`` (Pearson 1895, Proc. R. Soc. Lond. 58, "Note on regression and inheritance in the case of
    two parents") is ``sum(dt * dp) / sqrt(sum(dt^2) sum(dp^2))`` over centred values; NaN when either side
    is constant (a probe that predicts the mean). ``r2`` is sklearn's ``r2_score``,
    ``1 - sum((t - p)^2) / sum((t - mean t)^2)``: 1 for perfect predictions, 0 for predicting the test mean,
    negative when worse; NaN when ``y_true`` is constant or has fewer than two samples.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim != 1 or y_pred.shape != y_true.shape:
        raise DataError(f"predictions must have shape ({y_true.size},), got {y_pred.shape}")
    if y_true.size == 0:
        raise DataError("no test samples to score")
    if not (np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
        raise DataError("targets or predictions hold NaN or inf values")
    true_varies, pred_varies = bool(np.ptp(y_true) > 0), bool(np.ptp(y_pred) > 0)
    pearson = r2 = math.nan
    if true_varies and pred_varies:
        dt, dp = y_true - y_true.mean(), y_pred - y_pred.mean()
        pearson = float(np.clip(float(dt @ dp) / math.sqrt(float(dt @ dt) * float(dp @ dp)), -1.0, 1.0))
    if true_varies:
        r2 = float(r2_score(y_true, y_pred))
    return {"pearson_r": pearson, "r2": r2}


def mean_ci(
    values: Sequence[float] | np.ndarray, level: float = 0.95, bounds: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: Student-t confidence interval of the mean over repeats (NaN values ignored).

    One value gives ``(v, nan, nan)``; no value gives three NaNs; identical values give a zero-width interval.
    ``bounds`` (the metric's range, ``METRIC_RANGES``) clips the interval so it never leaves the values the
    metric can take (a balanced accuracy's interval stays in [0, 1]); the mean lies inside them already.
    """
    if not 0 < level < 1:
        raise DataError(f"confidence level must lie in (0, 1), got {level}")
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(array.mean())
    if array.size == 1:
        return mean, math.nan, math.nan
    sem = float(array.std(ddof=1)) / math.sqrt(array.size)
    half = float(stats.t.ppf(0.5 + level / 2, df=array.size - 1)) * sem
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, low, high
