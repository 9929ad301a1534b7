"""Metrics against sklearn / scipy / hand formulas; probes on separable and shuffled data."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from biolatent.errors import DataError
from biolatent.evaluate.metrics import classification_metrics, mean_ci
from biolatent.evaluate.probes import PROBES, KnnProbe, LinearProbe


def _random_proba(rng, n, k):
    proba = rng.random((n, k))
    return proba / proba.sum(axis=1, keepdims=True)


def test_classification_metrics_match_sklearn_and_mann_whitney():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    proba = _random_proba(rng, 200, 4)
    proba[np.arange(200), y] += 0.3 * rng.random(200)
    proba /= proba.sum(axis=1, keepdims=True)
    m = classification_metrics(y, proba, 4)
    pred = proba.argmax(1)
    assert m["accuracy"] == pytest.approx(np.mean(pred == y))
    assert m["balanced_accuracy"] == pytest.approx(np.mean([np.mean(pred[y == c] == c) for c in range(4)]))
    assert m["f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["auroc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    by_hand = [stats.mannwhitneyu(proba[y == c, c], proba[y != c, c]).statistic
               / ((y == c).sum() * (y != c).sum()) for c in range(4)]
    assert m["auroc"] == pytest.approx(np.mean(by_hand))


def test_auroc_only_over_classes_present_in_y_true():
    rng = np.random.default_rng(1)
    y = rng.choice([0, 2], 80)
    proba = _random_proba(rng, 80, 3)
    m = classification_metrics(y, proba, 3)
    expected = np.mean([roc_auc_score(y == c, proba[:, c]) for c in (0, 2)])
    assert m["auroc"] == pytest.approx(expected)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        reference = balanced_accuracy_score(y, proba.argmax(1))
    assert m["balanced_accuracy"] == pytest.approx(reference)
    assert math.isnan(classification_metrics(np.zeros(5, int), proba[:5], 3)["auroc"])


def test_classification_metrics_rejects_wrong_shape():
    with pytest.raises(DataError, match="shape"):
        classification_metrics(np.zeros(4, int), np.zeros((4, 2)), 3)


def test_mean_ci_equals_scipy_t_interval():
    values = np.array([0.71, 0.75, 0.69, 0.8, 0.74])
    mean, lo, hi = mean_ci(values, 0.95)
    ref = stats.t.interval(0.95, df=4, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean()) and (lo, hi) == pytest.approx(ref)
    lo90, hi90 = mean_ci(values, 0.9)[1:]
    assert lo < lo90 < hi90 < hi
    single = mean_ci([0.5])
    assert single[0] == 0.5 and math.isnan(single[1]) and math.isnan(single[2])
    assert mean_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))


def _blobs(seed, n=300, k=3, d=10, spread=8.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(0, spread, (k, d))
    return centres[y] + rng.normal(size=(n, d)), y


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probes_recover_separated_classes_and_are_at_chance_on_shuffled_labels(name):
    x, y = _blobs(0)
    probe = PROBES[name]().fit(x[:200], y[:200])
    proba = probe.predict_proba(x[200:], 3)
    assert proba.shape == (100, 3) and np.allclose(proba.sum(1), 1)
    assert balanced_accuracy_score(y[200:], proba.argmax(1)) > 0.9

    rng = np.random.default_rng(1)
    x_null, y_null = rng.normal(size=(2000, 10)), rng.integers(0, 3, 2000)
    proba = PROBES[name]().fit(x_null[:1000], y_null[:1000]).predict_proba(x_null[1000:], 3)
    assert balanced_accuracy_score(y_null[1000:], proba.argmax(1)) == pytest.approx(1 / 3, abs=0.06)


def test_predict_proba_has_zero_columns_for_unseen_classes():
    x, y = _blobs(2, k=3)
    keep = y != 1
    for probe in (LinearProbe(), KnnProbe(k=5)):
        proba = probe.fit(x[keep], y[keep]).predict_proba(x, 5)
        assert proba.shape == (len(x), 5)
        assert np.all(proba[:, [1, 3, 4]] == 0) and np.allclose(proba.sum(1), 1)
    single = LinearProbe().fit(x[y == 2], y[y == 2]).predict_proba(x[:4], 3)
    assert single.tolist() == [[0, 0, 1]] * 4


def test_knn_probe_matches_a_hand_cosine_vote():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 5)), rng.integers(0, 3, 60)
    query = rng.normal(size=(10, 5))
    proba = KnnProbe(k=7).fit(x, y).predict_proba(query, 3)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    dist = 1 - q @ unit.T
    for row, d in zip(proba, dist, strict=True):
        nearest = np.argsort(d)[:7]
        votes = np.bincount(y[nearest], weights=1 / d[nearest], minlength=3)
        assert row == pytest.approx(votes / votes.sum())
    # k is clipped to the training size
    assert KnnProbe(k=50).fit(x[:4], y[:4]).predict_proba(query, 3).shape == (10, 3)


def test_probe_rejects_non_finite_features():
    with pytest.raises(DataError, match="NaN"):
        LinearProbe().fit(np.array([[np.nan, 1.0], [0.0, 1.0]]), np.array([0, 1]))
