"""The synthetic brain-like slices: shapes, seeding, lesions inside the brain, masks empty without lesions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from biolatent.data.simulate.lesions2d import simulate_slice, simulate_slices
from biolatent.errors import ConfigError

N, SIZE = 12, 32


def test_shapes_range_and_seeding():
    images, masks = simulate_slices(N, SIZE, seed=3)
    assert images.shape == (N, 1, SIZE, SIZE) and images.dtype == np.float32
    assert masks.shape == (N, SIZE, SIZE) and masks.dtype == bool
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(simulate_slices(N, SIZE, seed=3)[0], images)
    assert not np.array_equal(simulate_slices(N, SIZE, seed=4)[0], images)
    assert not np.array_equal(images[0], images[1])  # slices differ within a series


def test_masks_empty_without_lesions():
    _, masks = simulate_slices(N, SIZE, lesions=False, seed=0)
    assert not masks.any()


def test_anatomy_skull_brighter_than_tissue_ventricles_darker():
    s = simulate_slice(64, seed=0, index=0)
    skull = ndimage.binary_dilation(s.brain, iterations=2) & ~s.brain
    tissue = ndimage.binary_erosion(s.brain, iterations=3)
    dark = tissue & (s.image < 0.3)  # ventricles
    assert s.image[skull].mean() > s.image[tissue].mean() + 0.15
    assert dark.sum() > 20 and s.image[~ndimage.binary_dilation(s.brain, iterations=6)].max() < 0.1


def test_lesion_masks_inside_brain_and_visible():
    size = 64
    lesioned = [simulate_slice(size, seed=5, index=i, lesions=True) for i in range(N)]
    healthy = [simulate_slice(size, seed=5, index=i) for i in range(N)]
    signs = []
    for sick, well in zip(lesioned, healthy, strict=True):
        np.testing.assert_array_equal(sick.brain, well.brain)
        assert sick.lesion.sum() >= 10
        assert not (sick.lesion & ~sick.brain).any()
        diff = sick.image - well.image
        assert np.all(diff[~sick.brain] == 0.0)  # outside the brain nothing changes
        assert np.abs(diff[sick.lesion]).mean() > 0.15  # the lesion is visible where the mask says
        labels, n = ndimage.label(sick.lesion)
        signs += [np.sign(diff[labels == k].mean()) for k in range(1, n + 1)]
    assert {-1.0, 1.0} <= set(signs)  # bright and dark lesions both occur


def test_lesioned_series_is_the_healthy_series_plus_lesions():
    sick, masks = simulate_slices(N, SIZE, lesions=True, seed=2)
    well, _ = simulate_slices(N, SIZE, lesions=False, seed=2)
    far = ~ndimage.binary_dilation(masks, structure=np.ones((1, 9, 9), bool))
    assert masks.any(axis=(1, 2)).all()
    assert np.abs(sick - well)[:, 0][far].max() < 0.02


def test_bad_arguments():
    with pytest.raises(ConfigError, match="n >= 1"):
        simulate_slices(0)
    with pytest.raises(ConfigError, match="size >= 16"):
        simulate_slices(2, size=8)
