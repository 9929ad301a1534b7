"""Stratified holdout and label subsets; label preparation."""

import numpy as np
import pandas as pd
import pytest

from biolatent.errors import DataError
from biolatent.evaluate.splits import holdout_split, label_subset, prepare_labels


def _labels(counts):
    return np.repeat(np.arange(len(counts)), counts).astype(np.int64)


def test_holdout_is_stratified_disjoint_and_complete():
    labels = np.random.default_rng(0).permutation(_labels([100, 50, 30, 20]))
    train, test = holdout_split(labels, 0.2, seed=3)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    assert np.bincount(labels[test]).tolist() == [20, 10, 6, 4]


def test_holdout_depends_only_on_its_seed_and_singletons_stay_in_train():
    labels = _labels([40, 40, 1])
    first = holdout_split(labels, 0.25, seed=0)
    again = holdout_split(labels.copy(), 0.25, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], holdout_split(labels, 0.25, seed=1)[1])
    assert 80 in first[0] and 80 not in first[1]


def test_label_subset_stratified_minimum_one_per_class_and_full_pool():
    labels = _labels([200, 100, 10])
    pool, _ = holdout_split(labels, 0.2, seed=0)
    tiny = label_subset(pool, labels, 0.001, seed=0)
    assert np.bincount(labels[tiny]).tolist() == [1, 1, 1]  # the minimum labelled set: n_classes samples
    tenth = label_subset(pool, labels, 0.1, seed=0)
    assert np.bincount(labels[tenth]).tolist() == [16, 8, 1]
    assert np.isin(tenth, pool).all()
    assert np.array_equal(label_subset(pool, labels, 1.0, seed=5), np.sort(pool))
    assert not np.array_equal(tenth, label_subset(pool, labels, 0.1, seed=1))
    assert np.isin(tiny, tenth).all()  # nested for one seed


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_label_subset_rejects_bad_fraction(fraction):
    with pytest.raises(DataError, match="fractions must lie in"):
        label_subset(np.arange(10), _labels([5, 5]), fraction, 0)


def test_prepare_labels_drops_missing_and_codes_sorted():
    values = pd.Series(["b", None, "a", "", "b", np.nan, "c"], name="cell_type")
    codes, classes, keep = prepare_labels(values)
    assert classes == ["a", "b", "c"]
    assert keep.tolist() == [True, False, True, False, True, False, True]
    assert codes.dtype == np.int64 and codes.tolist() == [1, 0, 1, 2]


def test_prepare_labels_keeps_categorical_order_and_numeric_order():
    cat = pd.Series(pd.Categorical(["lo", "hi", "mid"], categories=["lo", "mid", "hi", "unused"]), name="g")
    codes, classes, _ = prepare_labels(cat)
    assert classes == ["lo", "mid", "hi"] and codes.tolist() == [0, 2, 1]
    codes, classes, _ = prepare_labels(pd.Series([10, 2, 2, 10], name="n"))
    assert classes == ["2", "10"] and codes.tolist() == [1, 0, 0, 1]


def test_prepare_labels_one_class_is_a_one_line_data_error():
    with pytest.raises(DataError, match=r"label column 'batch' has one class: 'x'") as info:
        prepare_labels(pd.Series(["x", "x", None], name="batch"))
    assert "\n" not in str(info.value)
