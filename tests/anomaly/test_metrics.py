"""Anomaly metrics against independent computations (Mann-Whitney AUROC, hand-counted Dice, exact FPR)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from biolatent.anomaly.metrics import best_dice, dense_metrics, dice, metrics_table, ranking_metrics, threshold_at_fpr
from biolatent.errors import DataError


def test_auroc_equals_mann_whitney_and_ap_is_bounded():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(300), np.ones(40)].astype(bool)
    scores = np.r_[rng.normal(size=300), rng.normal(1.5, 1.0, size=40)]
    u = stats.mannwhitneyu(scores[labels], scores[~labels]).statistic
    metrics = ranking_metrics(scores, labels)
    assert metrics["auroc"] == pytest.approx(u / (40 * 300), rel=1e-12)
    assert 40 / 340 < metrics["ap"] <= 1.0


@pytest.mark.parametrize("fpr", [0.0, 0.01, 0.05, 0.2])
def test_threshold_gives_the_target_false_positive_rate(fpr):
    healthy = np.random.default_rng(1).normal(size=1000)
    threshold = threshold_at_fpr(healthy, fpr)
    assert np.sum(healthy > threshold) == int(np.floor(fpr * 1000))


def test_dice_by_hand():
    truth = np.array([[0, 1, 1], [0, 1, 0]], bool)
    predicted = np.array([[1, 1, 0], [0, 1, 0]], bool)
    assert dice(predicted, truth) == pytest.approx(2 * 2 / (3 + 3))
    assert dice(np.zeros(4), np.zeros(4)) == 1.0
    with pytest.raises(DataError, match="shape mismatch"):
        dice(np.zeros(3), np.zeros(4))


def test_best_dice_finds_a_perfect_separation_and_dense_metrics():
    truth = np.zeros(1000, bool)
    truth[100:120] = True
    scores = np.where(truth, 5.0, 0.0) + np.random.default_rng(2).uniform(0, 1, 1000)
    value, threshold = best_dice(scores, truth)
    assert value == 1.0 and 0.0 <= threshold < 5.0 and dice(scores > threshold, truth) == 1.0
    metrics = dense_metrics(scores, truth, threshold=0.5, level="voxel")
    assert metrics["auroc"] == 1.0 and metrics["dice_best"] == 1.0
    assert metrics["dice_val_threshold"] == pytest.approx(dice(scores > 0.5, truth))
    table = metrics_table("knn", "voxel", metrics)
    assert list(table.columns) == ["detector", "level", "metric", "value"] and len(table) == 4


def test_best_dice_equals_brute_force():
    rng = np.random.default_rng(3)
    truth = rng.random(300) < 0.1
    scores = np.round(truth * 1.0 + rng.normal(size=300), 1)  # ties
    value, threshold = best_dice(scores, truth)
    brute = max(dice(scores > c, truth) for c in np.r_[np.unique(scores), scores.min() - 1])
    assert value == pytest.approx(brute, rel=1e-12) and dice(scores > threshold, truth) == pytest.approx(value)


def test_errors_are_one_line():
    with pytest.raises(DataError, match="single class"):
        ranking_metrics(np.arange(5.0), np.zeros(5))
    with pytest.raises(DataError, match="3 scores for 4 labels"):
        ranking_metrics(np.arange(3.0), np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="NaN"):
        ranking_metrics(np.array([0.0, np.nan]), np.array([0, 1]))


def test_sample_metrics_at_the_healthy_threshold_by_hand():
    from biolatent.anomaly.metrics import sample_metrics

    scores = np.array([0.1, 0.2, 0.9, 0.4, 0.8, 0.7])
    labels = np.array([0, 0, 0, 1, 1, 1], bool)
    metrics = sample_metrics(scores, labels, threshold=0.5)  # flagged: 0.9 (healthy), 0.8, 0.7
    assert metrics["dice_val_threshold"] == pytest.approx(2 * 2 / (3 + 3))
    assert metrics["fpr_val_threshold"] == pytest.approx(1 / 3)
    assert metrics["auroc"] == pytest.approx(6 / 9)  # pairs (lesioned > healthy): 0.4 beats 2, 0.8 and 0.7 beat 2


@pytest.mark.parametrize(("n", "fpr", "ties"), [(15, 0.05, False), (15, 0.2, True), (100, 0.29, False),
                                                (50, 0.58, False), (7, 0.0, True), (40, 0.1, True)])
def test_threshold_keeps_the_largest_achievable_rate_not_above_the_target(n, fpr, ties):
    """Against brute force in exact arithmetic: every healthy score is a candidate threshold; the allowed rate is
    count(s > t) / n <= fpr as fractions (0.29 * 100 is 28.999999999999996 in floating point: 29 are allowed)."""
    from fractions import Fraction

    from biolatent.anomaly.metrics import achieved_fpr

    rng = np.random.default_rng(n)
    healthy = np.round(rng.normal(size=n), 1) if ties else rng.normal(size=n)
    allowed = [t for t in np.unique(healthy) if Fraction(int(np.sum(healthy > t)), n) <= Fraction(str(fpr))]
    threshold = threshold_at_fpr(healthy, fpr)
    assert threshold == min(allowed)  # the smallest threshold within the target
    best = max(Fraction(int(np.sum(healthy > t)), n) for t in allowed)
    assert achieved_fpr(healthy, threshold) == pytest.approx(float(best), abs=1e-15)


def test_resolution_warning_states_the_finest_step_and_the_achieved_rate():
    from biolatent.anomaly.metrics import resolution_warning

    text = resolution_warning(15, 0.05, 0.0)
    assert text.startswith("15 healthy validation samples cannot resolve a 5% false-positive rate "
                           "(finest step 6.7%); the threshold gives 0.0% on validation")
    assert "at least 20" in text
    assert "finest step 10.0%" in resolution_warning(10, 0.01, 0.0, "images")
    assert resolution_warning(20, 0.05, 0.05) is None  # 1 of 20 is exactly 5%
    assert resolution_warning(19, 0.05, 0.0) is not None
    assert resolution_warning(3, 0.0, 0.0) is None  # a zero target is always achievable


def test_binary_labels_accept_0_1_and_true_false_only():
    import pandas as pd

    from biolatent.anomaly.metrics import binary_labels

    expected = [False, True, True]
    for values in ([0, 1, 1], [0.0, 1.0, 1.0], [False, True, True], ["false", "True", " TRUE"], ["0", "1", "1"]):
        assert binary_labels(pd.Series(values), "y", "t.tsv").tolist() == expected
    for values, shown in (([0, 2, 1], "'2'"), (["no", "yes", "no"], "'no', 'yes'"), ([0.0, np.nan, 1.0], "'nan'")):
        with pytest.raises(DataError, match=f"t.tsv: label column 'y' must hold 0/1 or True/False, got {shown}"):
            binary_labels(pd.Series(values), "y", "t.tsv")
