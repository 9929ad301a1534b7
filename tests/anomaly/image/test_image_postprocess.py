"""StRegA post-processing on hand-made maps: Otsu against a brute force, opening, area filter, the full chain."""

from __future__ import annotations

import numpy as np
import pytest

from biolatent.anomaly.image.postprocess import opening, otsu_threshold, postprocess, remove_small_components
from biolatent.errors import DataError


def _brute_force_otsu(values: np.ndarray, nbins: int = 256) -> float:
    """Quantise to the 256 bin centres, then try every centre: argmax of total variance minus within-class variance."""
    _, edges = np.histogram(values, bins=nbins)
    centres = (edges[:-1] + edges[1:]) / 2
    quantised = centres[np.clip(np.searchsorted(edges, values, side="right") - 1, 0, nbins - 1)]
    best, best_t = -1.0, None
    for t in centres[:-1]:
        low, high = quantised[quantised <= t], quantised[quantised > t]
        if len(low) == 0 or len(high) == 0:
            continue
        within = (len(low) * low.var() + len(high) * high.var()) / len(quantised)
        between = quantised.var() - within
        if between > best + 1e-12:
            best, best_t = between, t
    return float(best_t)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    values = np.r_[rng.normal(0.1, 0.03, 700), rng.normal(0.5 + 0.1 * seed, 0.08, 300)]
    assert otsu_threshold(values) == pytest.approx(_brute_force_otsu(values), abs=1e-12)


def test_otsu_separates_two_levels_and_constant_maps():
    values = np.r_[np.full(50, 0.1), np.full(30, 0.2), np.full(20, 0.8), np.full(40, 0.9)]
    t = otsu_threshold(values)
    assert 0.2 <= t < 0.8
    assert otsu_threshold(np.full((4, 4), 0.3)) == 0.3
    with pytest.raises(DataError, match="NaN"):
        otsu_threshold(np.array([0.0, np.nan]))


def test_otsu_equals_skimage():
    filters = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(0)
    values = np.r_[rng.gamma(2.0, 0.05, 900), rng.normal(0.7, 0.1, 100)].reshape(25, 40)
    assert otsu_threshold(values) == pytest.approx(float(filters.threshold_otsu(values)), abs=1e-12)


def test_opening_removes_a_speck_keeps_a_square():
    mask = np.zeros((12, 12), bool)
    mask[2:6, 2:6] = True  # 4x4 square
    mask[9, 9] = True  # 1-pixel speck
    out = opening(mask, radius=1)
    expected = np.zeros_like(mask)
    expected[2:6, 2:6] = True
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(opening(mask, radius=0), mask)


def test_area_filter_removes_small_components():
    mask = np.zeros((10, 10), bool)
    mask[1:3, 1:3] = True  # 4 pixels
    mask[6, 6:9] = True  # 3 pixels
    mask[8, 1] = mask[9, 2] = True  # two diagonal neighbours: one component when 8-connected
    out = remove_small_components(mask, min_area=4)
    expected = np.zeros_like(mask)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(out, expected)
    kept = remove_small_components(mask, min_area=2, connectivity=2)
    assert kept[8, 1] and kept[9, 2] and kept[6, 6]
    split = remove_small_components(mask, min_area=2, connectivity=1)
    assert not split[8, 1] and not split[9, 2] and split[6, 6]


def test_chain_on_a_hand_made_map():
    rng = np.random.default_rng(0)
    residual = rng.uniform(0.0, 0.05, (32, 32))  # low background
    residual[10:16, 12:18] = 0.8  # a 6x6 anomaly
    residual[25, 5] = 0.9  # a bright 1-pixel speck: removed by the opening
    residual[3:5, 25:27] = 0.7  # a 2x2 blob: smaller than the 3x3 square, removed by the opening
    residual[20:26, 20:26] = -0.9  # a strong negative residual: not anomalous (positive part only)
    out = postprocess(residual)
    expected = np.zeros((32, 32), bool)
    expected[10:16, 12:18] = True
    np.testing.assert_array_equal(out, expected)
    # the area filter alone (no opening) keeps the 6x6 block, drops the speck and the 2x2 blob
    np.testing.assert_array_equal(postprocess(residual, opening_radius=0, min_area=5), expected)
    # a fixed threshold above the anomaly finds nothing
    assert not postprocess(residual, threshold=0.85).any()


def test_chain_on_a_stack_uses_one_threshold():
    maps = np.zeros((2, 16, 16))
    maps[0, 2:8, 2:8] = 1.0
    maps[1, 4:10, 4:10] = 0.04  # below the stack's Otsu threshold (computed on both slices)
    out = postprocess(maps)
    assert out.shape == (2, 16, 16)
    assert out[0].sum() == 36 and not out[1].any()
    np.testing.assert_array_equal(postprocess(maps[1]), maps[1] > 0)  # alone, it is its own foreground


@pytest.mark.parametrize(("bad", "message"), [(np.zeros(5), "got shape"), (np.full((4, 4), np.nan), "NaN")])
def test_bad_maps(bad, message):
    with pytest.raises(DataError, match=message):
        postprocess(bad)
