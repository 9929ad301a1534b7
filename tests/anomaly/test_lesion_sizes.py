"""Per-lesion detection by size: hand-made 2D/3D examples with known components, and scikit-image as an oracle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from biolatent.anomaly.lesion_sizes import bin_labels, lesion_table, parse_edges, size_breakdown
from biolatent.errors import DataError


@pytest.fixture
def example() -> tuple[np.ndarray, np.ndarray]:
    """Sample 0: A = 2x2 square (one pixel hit), B = diagonal chain of 3 (all hit); sample 1: healthy with a false
    positive; sample 2: C = 3x3 block (nothing above the threshold, one pixel exactly at it)."""
    masks = np.zeros((3, 8, 8), bool)
    maps = np.zeros((3, 8, 8))
    masks[0, 0:2, 0:2] = True
    maps[0, 0, 0] = 0.9
    maps[0, 0, 1] = 0.2
    for i in (4, 5, 6):
        masks[0, i, i] = True
        maps[0, i, i] = 0.7
    maps[1, 3, 3] = 5.0
    masks[2, 2:5, 2:5] = True
    maps[2, 2:5, 2:5] = 0.3
    maps[2, 3, 3] = 0.5  # equal to the threshold: not above it
    return maps, masks


def test_hand_made_lesions(example):
    maps, masks = example
    table = lesion_table(maps, masks, 0.5)
    assert table[["sample", "lesion", "size"]].values.tolist() == [[0, 1, 4], [0, 2, 3], [2, 1, 9]]
    assert table.detected.tolist() == [True, True, False]
    np.testing.assert_allclose(table.recall, [1 / 4, 1.0, 0.0])
    np.testing.assert_allclose(table.mean_score, [(0.9 + 0.2) / 4, 0.7, (8 * 0.3 + 0.5) / 9])
    half = lesion_table(maps, masks, 0.5, min_overlap=0.5)
    assert half.detected.tolist() == [False, True, False]  # A: 1 of 4 pixels < ceil(0.5 * 4) = 2


def test_size_bins(example):
    maps, masks = example
    sizes = size_breakdown(lesion_table(maps, masks, 0.5), edges=(2, 4))
    assert sizes.size_bin.tolist() == ["<=2", "3-4", ">4", "all"]
    assert sizes.n_lesions.tolist() == [0, 2, 1, 3]
    assert math.isnan(sizes.detection_rate[0]) and math.isnan(sizes.mean_recall[0])
    np.testing.assert_allclose(sizes.detection_rate[1:], [1.0, 0.0, 2 / 3])
    np.testing.assert_allclose(sizes.mean_recall[1:], [(0.25 + 1.0) / 2, 0.0, 1.25 / 3])
    np.testing.assert_allclose(sizes.mean_score[1], ((0.9 + 0.2) / 4 + 0.7) / 2)
    assert bin_labels([4, 16, 64]) == ["<=4", "5-16", "17-64", ">64"]


def test_3d_full_connectivity():
    masks = np.zeros((1, 4, 4, 4), bool)
    masks[0, 0, 0, 0] = masks[0, 1, 1, 1] = True  # corner-touching: one lesion under 26-connectivity
    masks[0, 3, 3, 3] = True
    maps = np.where(masks, 1.0, 0.0)
    maps[0, 3, 3, 3] = 0.0
    table = lesion_table(maps, masks, 0.5)
    assert table["size"].tolist() == [2, 1] and table.detected.tolist() == [True, False]


def test_against_scikit_image():
    from skimage.measure import label, regionprops

    rng = np.random.default_rng(0)
    masks = rng.random((5, 20, 20)) < 0.25
    maps = rng.random((5, 20, 20))
    threshold = 0.6
    table = lesion_table(maps, masks, threshold, min_overlap=0.3)
    expected = []
    for sample in range(5):
        for region in regionprops(label(masks[sample], connectivity=2), intensity_image=maps[sample]):
            inside = maps[sample][tuple(region.coords.T)]
            hits = int((inside > threshold).sum())
            expected.append({"sample": sample, "size": int(region.area), "detected": hits >= max(1, 0.3 * region.area),
                             "recall": hits / region.area, "mean_score": float(region.intensity_mean)})
    expected = pd.DataFrame(expected)
    assert len(table) == len(expected) > 20
    got = table.sort_values(["sample", "size", "mean_score"]).reset_index(drop=True)
    want = expected.sort_values(["sample", "size", "mean_score"]).reset_index(drop=True)
    assert got["size"].tolist() == want["size"].tolist()
    assert got.detected.tolist() == want.detected.tolist()
    np.testing.assert_allclose(got.recall, want.recall)
    np.testing.assert_allclose(got.mean_score, want.mean_score)


def test_bad_input(example):
    maps, masks = example
    with pytest.raises(DataError, match="shape mismatch"):
        lesion_table(maps[:, :4], masks, 0.5)
    with pytest.raises(DataError, match="increasing"):
        size_breakdown(lesion_table(maps, masks, 0.5), edges=(8, 4))
    with pytest.raises(DataError, match="integers"):
        parse_edges("4,x")
    assert parse_edges("4, 16") == (4, 16)
