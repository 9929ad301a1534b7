"""Metrics of anomaly detection, with the threshold chosen on healthy validation data only.

* sample / point / voxel AUROC and average precision (scikit-learn's ``roc_auc_score`` and
  ``average_precision_score``), pooled over all points or voxels at the point/voxel level;
* ``threshold_at_fpr``: the score above which a chosen fraction of *healthy validation* scores lies (a target
  false-positive rate), the only threshold used for "validation" figures; with n validation scores the rate is
  resolved in steps of 1/n, so the threshold keeps the largest achievable rate not above the target
  (``achieved_fpr``) and ``resolution_warning`` says when the target is finer than one step;
* Dice of the thresholded map against the ground-truth mask, pooled over the test set (as in StRegA,
  Chatterjee et al. 2022, Comput Biol Med 149:106093) at the validation threshold (``dice_val_threshold``)
  and at the best threshold on the test labels (``dice_best``: an upper bound, labelled as such, never used
  to choose anything).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from biolatent.errors import DataError

METRIC_COLUMNS = ["detector", "level", "metric", "value"]


def _labels(labels: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(labels).astype(bool).ravel()
    if y.all() or not y.any():
        raise DataError(f"{what} labels hold a single class ({'all anomalous' if y.all() else 'no anomaly'}): "
                        "AUROC and AP need both")
    return y


def _scores(scores: np.ndarray, n: int, what: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size != n:
        raise DataError(f"{what}: {s.size} scores for {n} labels (shape mismatch)")
    if not np.isfinite(s).all():
        raise DataError(f"{what}: scores hold NaN or inf")
    return s


def ranking_metrics(scores: np.ndarray, labels: np.ndarray, what: str = "sample") -> dict[str, float]:
    """AUROC and average precision of ``scores`` (higher = more anomalous) against binary ``labels``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = _labels(labels, what)
    s = _scores(scores, y.size, what)
    return {"auroc": float(roc_auc_score(y, s)), "ap": float(average_precision_score(y, s))}


def sample_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """``ranking_metrics`` plus, at ``threshold`` (set on healthy validation data), the Dice of the flagged
    samples against the labels and the false-positive rate among the healthy ones."""
    metrics = ranking_metrics(scores, labels, "sample")
    flagged = np.asarray(scores) > threshold
    truth = np.asarray(labels, dtype=bool)
    metrics["dice_val_threshold"] = float(2 * np.sum(flagged & truth) / max(1, flagged.sum() + truth.sum()))
    metrics["fpr_val_threshold"] = float(np.mean(flagged[~truth]))
    return metrics


def _allowed(n: int, fpr: float) -> int:
    """How many of ``n`` healthy scores may lie above the threshold: floor(fpr * n), robust to rounding
    (0.29 * 100 is 28.999999999999996 in floating point, and 29 scores are allowed)."""
    return int(np.floor(fpr * n + 1e-9))


def threshold_at_fpr(healthy_scores: np.ndarray, fpr: float = 0.05) -> float:
    """Smallest threshold t with at most ``fpr`` of the healthy validation scores strictly above t.

    With n scores the achievable false-positive rates are multiples of 1/n (fewer with ties), so the rate this
    threshold gives on validation (``achieved_fpr``) is the largest achievable one not above ``fpr``: below
    1/n that is 0 (t is the highest healthy score), which ``resolution_warning`` reports.
    """
    s = np.sort(np.asarray(healthy_scores, dtype=np.float64).ravel())
    if s.size == 0 or not np.isfinite(s).all():
        raise DataError("the healthy validation scores are empty or hold NaN/inf")
    if not 0.0 <= fpr < 1.0:
        raise DataError(f"the target false-positive rate must lie in [0, 1), got {fpr}")
    return float(s[s.size - 1 - _allowed(s.size, fpr)])


def achieved_fpr(healthy_scores: np.ndarray, threshold: float) -> float:
    """Fraction of the healthy validation scores strictly above ``threshold`` (what the threshold flags)."""
    return float(np.mean(np.asarray(healthy_scores, dtype=np.float64) > threshold))


def resolution_warning(n: int, target: float, achieved: float, what: str = "samples") -> str | None:
    """A warning when ``n`` healthy validation scores are too few for the ``target`` false-positive rate (its
    finest step, 1/n, exceeds the target), naming the rate the threshold ``achieved`` on them; else None."""
    if target <= 0.0 or _allowed(n, target) > 0:
        return None
    return (f"{n} healthy validation {what} cannot resolve a {target * 100:.3g}% false-positive rate (finest step "
            f"{1 / n:.1%}); the threshold gives {achieved:.1%} on validation: hold out at least "
            f"{int(np.ceil(1 / target - 1e-9))} for validation or raise validation.target_fpr")


_BINARY = {"0": False, "1": True, "0.0": False, "1.0": True, "false": False, "true": True}


def binary_labels(values: pd.Series, column: str, where: str) -> np.ndarray:
    """bool labels of a 0/1 or True/False column (either read as numbers, booleans or text); a DataError naming
    the column and the values that are neither (missing values included)."""
    if values.dtype == bool:
        return values.to_numpy()
    text = values.astype(str).str.strip().str.lower()
    bad = ~text.isin(list(_BINARY))
    if bad.any():
        from biolatent.data.tabular import quoted

        seen = quoted(pd.unique(values[bad]), limit=3)
        raise DataError(f"{where}: label column {column!r} must hold 0/1 or True/False, got {seen} "
                        f"in {int(bad.sum())} row(s)")
    return text.map(_BINARY).to_numpy(bool)


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """2 |P & T| / (|P| + |T|) over all elements; 1.0 when both are empty."""
    p, t = np.asarray(predicted, bool).ravel(), np.asarray(truth, bool).ravel()
    if p.size != t.size:
        raise DataError(f"Dice: {p.size} predicted elements for {t.size} in the mask (shape mismatch)")
    total = p.sum() + t.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(p, t).sum() / total)


def best_dice(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(best Dice, its threshold) over every threshold, exactly: uses the test labels (an upper bound).

    Flagging the k highest scores gives Dice ``2 TP(k) / (k + P)``; TP(k) is a cumulative sum over the scores
    sorted in decreasing order, evaluated only where the score changes (ties are flagged together).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(truth, bool).ravel()
    if s.size != t.size:
        raise DataError(f"Dice: {s.size} scores for {t.size} mask elements (shape mismatch)")
    if not t.any():
        return 1.0, float(s.max())
    order = np.argsort(-s, kind="stable")
    sorted_scores, tp = s[order], np.cumsum(t[order])
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), s.size - 1]  # last index of each tie group
    values = 2.0 * tp[ends] / (ends + 1 + t.sum())
    best = int(np.argmax(values))
    following = sorted_scores[ends[best] + 1] if ends[best] + 1 < s.size else sorted_scores[-1] - 1.0
    return float(values[best]), float(following)  # flag scores > threshold: the best group and above


def dense_metrics(scores: np.ndarray, truth: np.ndarray, threshold: float, level: str) -> dict[str, float]:
    """Point/voxel level: pooled AUROC, AP, Dice at the validation threshold and the best Dice (labelled)."""
    metrics = ranking_metrics(scores, truth, level)
    s = np.asarray(scores, dtype=np.float64).ravel()
    metrics["dice_val_threshold"] = dice(s > threshold, truth)
    metrics["dice_best"] = best_dice(s, truth)[0]
    return metrics


def metrics_table(detector: str, level: str, metrics: dict[str, float]) -> pd.DataFrame:
    """Long table with ``METRIC_COLUMNS`` (the format of ``anomaly_metrics.tsv``)."""
    return pd.DataFrame([{"detector": detector, "level": level, "metric": k, "value": float(v)}
                         for k, v in metrics.items()], columns=METRIC_COLUMNS)
