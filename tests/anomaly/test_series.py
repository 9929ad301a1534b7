"""Sliding windows, window-to-point scores (against a brute-force loop) and series reading errors."""

from __future__ import annotations

import numpy as np
import pytest

from biolatent.anomaly.series import point_scores, sliding_windows, window_features
from biolatent.data.tabular import read_series
from biolatent.errors import DataError


@pytest.mark.parametrize(("n", "size", "stride"), [(20, 5, 1), (23, 6, 4), (10, 10, 3)])
def test_windows_and_point_scores_match_brute_force(n, size, stride):
    values = np.arange(n, dtype=float)
    windows = sliding_windows(values, size, stride)
    starts = list(range(0, n - size + 1, stride))
    assert windows.shape == (len(starts), size)
    np.testing.assert_array_equal(windows[:, 0], starts)
    scores = np.random.default_rng(0).normal(size=len(starts))
    points = point_scores(scores, n, size, stride)
    for p in range(n):
        covering = [scores[i] for i, s in enumerate(starts) if s <= p < s + size]
        expected = max(covering) if covering else points[max(s + size - 1 for s in starts)]
        assert points[p] == pytest.approx(expected)


def test_window_features_are_z_scores_and_differences():
    windows = np.array([[1.0, 3.0, 6.0]])
    features = window_features(windows, mean=2.0, scale=2.0)
    np.testing.assert_allclose(features, [[-0.5, 0.5, 2.0, 1.0, 1.5]])


def test_errors(tmp_path):
    with pytest.raises(DataError, match="shorter than the window of 8"):
        sliding_windows(np.arange(5.0), 8)
    path = tmp_path / "s.tsv"
    path.write_text("value\n1\n2\nNA\n4\n")
    with pytest.raises(DataError, match="1 missing or non-numeric values in 'value' \\(first at row 4\\)"):
        read_series(path)
    with pytest.raises(DataError, match="no column 'signal'"):
        read_series(path, value_column="signal")
