"""Baselines a reviewer accepts (issue: handicapped PCA, fixed kNN k, unbounded intervals, misleading headline).

Reproduced on a microarray-like cohort: 57 samples x 2,000 features on very different scales, 3 classes,
5 batches partly confounded with the class (``simulate_expression``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from biolatent.data.simulate import simulate_expression
from biolatent.evaluate.efficiency import (
    PER_SEED_COLUMNS,
    headline,
    labelled_sizes,
    pca_components,
    pca_features,
    run_label_efficiency,
    same_size_fractions,
    summarise,
)
from biolatent.evaluate.probes import LOGISTIC_CS, GlobalScaler, KnnProbe, LinearProbe, knn_neighbours
from biolatent.evaluate.splits import holdout_split, label_subset, prepare_labels


@pytest.fixture(scope="module")
def cohort():
    adata = simulate_expression(n_samples=57, n_genes=2000, seed=0)
    codes, _, _ = prepare_labels(adata.obs["diagnosis"])
    return np.asarray(adata.X, dtype=np.float64), codes


def test_pca_components_follow_the_sample_size():
    assert pca_components(57, 22_283) == 11  # five samples per component
    assert pca_components(700, 765) == 50  # capped
    assert pca_components(8, 3) == 2 and pca_components(200, 4) == 4  # never more than the features
    assert pca_features(np.random.default_rng(0).normal(size=(57, 300))).shape == (57, 11)


def test_pca_baseline_is_as_good_as_scikit_learn_pca_plus_logistic_regression(cohort):
    """The reference a reviewer would run: sklearn's PCA(10) + LogisticRegression on the same splits."""
    x, y = cohort
    per_seed = run_label_efficiency({"pca": pca_features(x)}, y, 3, [0.5, 1.0], [0, 1, 2], probes=("linear",))
    ours = per_seed[(per_seed.metric == "balanced_accuracy")].groupby("fraction")["value"].mean()
    train_idx, test_idx = holdout_split(y, 0.2, 0)
    z = PCA(10, random_state=0).fit_transform(StandardScaler().fit_transform(x))
    for fraction in (0.5, 1.0):
        scores = []
        for seed in (0, 1, 2):
            subset = label_subset(train_idx, y, fraction, seed)
            model = LogisticRegression(max_iter=2000).fit(z[subset], y[subset])
            scores.append(balanced_accuracy_score(y[test_idx], model.predict(z[test_idx])))
        reference = float(np.mean(scores))
        assert reference > 0.6  # the signal is there to be found
        assert ours[fraction] >= reference - 0.1, (fraction, ours[fraction], reference)


def test_global_scaler_keeps_relative_variances():
    x = np.random.default_rng(1).normal(size=(50, 4)) * np.array([10.0, 1.0, 0.1, 0.0]) + 3.0
    out = GlobalScaler().fit(x).transform(x)
    variances = x.var(axis=0)
    expected = (x - x.mean(axis=0)) / np.sqrt(variances.mean())
    np.testing.assert_allclose(out, expected)
    np.testing.assert_allclose(out.var(axis=0) / out.var(axis=0)[0], variances / variances[0])
    assert GlobalScaler().fit(np.ones((5, 2))).scale_ == 1.0


def test_linear_probe_tunes_c_by_cross_validation_only_with_enough_labels():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 12)
    x = rng.normal(size=(36, 5)) + np.eye(3, 5)[y] * 1.5
    probe = LinearProbe().fit(x, y)
    scaled = GlobalScaler().fit(x).transform(x)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    search = GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(LOGISTIC_CS)}, cv=folds,
                          scoring="neg_log_loss").fit(scaled, y)
    assert probe.chosen_C_ == search.best_params_["C"]
    few = np.array([0, 0, 1, 1, 2, 2])
    assert LinearProbe(default_C=0.7).fit(x[[0, 1, 12, 13, 24, 25]], few).chosen_C_ == 0.7  # 2 per class: no CV


def test_knn_uses_the_square_root_rule_and_matches_scikit_learn():
    assert [knn_neighbours(20, n) for n in (1, 3, 9, 45, 560)] == [1, 2, 3, 7, 20]
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], 3)  # 9 labels: the 20% fraction of the report, where k = 20 voted for everything
    x = rng.normal(size=(9, 6)) + np.eye(3, 6)[y] * 2
    query = rng.normal(size=(30, 6)) + np.eye(3, 6)[np.arange(30) % 3] * 2
    ours = KnnProbe(k=20).fit(x, y).predict_proba(query, 3)
    reference = KNeighborsClassifier(3, metric="cosine", algorithm="brute", weights="distance").fit(x, y)
    np.testing.assert_allclose(ours, reference.predict_proba(query))


def test_knn_with_few_labels_is_not_outvoted_by_the_majority_class():
    """The user's report: with k = 20 covering every labelled sample, the distance-weighted vote of
    high-dimensional features (nearly equal cosine distances) is the majority class: balanced accuracy at chance."""
    from biolatent.evaluate import probes

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 50)) * 0.6
    y = np.repeat([0, 1, 2], [24, 6, 3])  # 33 labels, imbalanced
    x = centres[y] + rng.normal(size=(y.size, 50))
    y_test = np.repeat([0, 1, 2], 40)
    x_test = centres[y_test] + rng.normal(size=(120, 50))
    ours = balanced_accuracy_score(y_test, KnnProbe(k=20).fit(x, y).predict_proba(x_test, 3).argmax(1))
    everyone = KNeighborsClassifier(20, metric="cosine", algorithm="brute", weights="distance").fit(x, y)
    assert balanced_accuracy_score(y_test, everyone.predict(x_test)) < 0.4  # the defect, reproduced
    assert probes.knn_neighbours(20, 33) == 6 and ours > 0.7


def test_intervals_stay_inside_the_range_of_the_metric():
    rows = []
    for seed, (acc, r) in enumerate([(1.0, -0.98), (0.9, -1.0), (1.0, -0.7)]):
        rows += [("ssl", "linear", 0.5, seed, "balanced_accuracy", acc), ("ssl", "linear", 0.5, seed, "pearson_r", r)]
    summary = summarise(pd.DataFrame(rows, columns=PER_SEED_COLUMNS)).set_index("metric")
    assert summary.loc["balanced_accuracy", "ci_high"] == 1.0 < 1.0 + 1e-12
    assert summary.loc["balanced_accuracy", "ci_low"] < summary.loc["balanced_accuracy", "mean"]
    assert summary.loc["pearson_r", "ci_low"] == -1.0


def _summary(supervised: list[float], ssl: list[float]) -> pd.DataFrame:
    rows = [("supervised", "finetune", 0.1, s, "balanced_accuracy", v) for s, v in enumerate(supervised)]
    rows += [("ssl", "linear", 0.1, s, "balanced_accuracy", v) for s, v in enumerate(ssl)]
    return summarise(pd.DataFrame(rows, columns=PER_SEED_COLUMNS))


def test_headline_ratio_only_when_the_supervised_baseline_is_above_chance():
    at_chance = headline(_summary([0.30, 0.40, 0.35], [0.6, 0.62, 0.61]), n_classes=3)
    assert at_chance["ssl_fraction_of_supervised"] is None
    assert "not above chance" in at_chance["ratio_withheld"] and at_chance["chance"] == pytest.approx(1 / 3)
    good = headline(_summary([0.80, 0.82, 0.81], [0.6, 0.62, 0.61]), n_classes=3)
    assert good["ssl_fraction_of_supervised"] == pytest.approx(0.61 / 0.81) and good["ratio_withheld"] is None
    unknown = headline(_summary([0.80, 0.82, 0.81], [0.6, 0.62, 0.61]))  # number of classes not given
    assert unknown["ssl_fraction_of_supervised"] is None and "chance level" in unknown["ratio_withheld"]


def test_fractions_that_give_the_same_number_of_labels_are_named(cohort):
    _, y = cohort
    sizes = labelled_sizes(y, [0.01, 0.05, 0.2, 1.0])
    assert sizes[0.01] == sizes[0.05] == 3  # one per class
    assert same_size_fractions(sizes) == ["fractions 0.01, 0.05 all give 3 labelled samples"]
