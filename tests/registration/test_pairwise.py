"""One pair at the fixed grid: resampling through the affines, the field upsampled from the model's cube."""

from __future__ import annotations

import numpy as np
import torch

from biolatent.io.nifti import Volume
from biolatent.registration.config import RegistrationData
from biolatent.registration.pairwise import identity_fn, onto_fixed_grid, register_pair


def _ramp(shape: tuple[int, int, int], spacing: float) -> Volume:
    """An image linear in world x (mm), so that resampling it is exact wherever it is sampled inside."""
    x = (np.arange(shape[0]) * spacing)[:, None, None] * np.ones(shape)
    return Volume((x / (shape[0] * spacing)).astype(np.float32), (spacing,) * 3, np.diag([spacing] * 3 + [1.0]))


def test_moving_is_resampled_onto_the_fixed_grid_through_the_affines():
    fixed, moving = _ramp((16, 16, 16), 1.0), _ramp((8, 8, 8), 2.0)
    on_fixed = onto_fixed_grid(moving.data, moving.affine, fixed, 1)
    assert on_fixed.shape == fixed.data.shape
    inside = (slice(0, 14),) * 3  # world points covered by the moving grid (0..14 mm)
    assert np.allclose(on_fixed[inside], fixed.data[inside], atol=1e-5)
    assert onto_fixed_grid(fixed.data, fixed.affine, fixed, 1) is fixed.data


def test_a_constant_shift_on_the_cube_becomes_a_scaled_shift_on_the_fixed_grid():
    rng = np.random.default_rng(0)
    data = rng.random((24, 24, 24)).astype(np.float32)
    fixed = Volume(data, (1.0,) * 3, np.eye(4))
    labels = (data > 0.5).astype(np.int64)
    cfg = RegistrationData(path="unused", image_size=8, normalise="minmax")

    def shift_fn(moving: torch.Tensor, fixed_cube: torch.Tensor) -> torch.Tensor:
        field = torch.zeros(1, 3, *moving.shape[2:])
        field[:, 0] = 1.0  # one cube voxel = 3 fixed voxels
        return field

    result = register_pair(fixed, fixed, cfg, cube_fn=shift_fn, moving_labels=labels, fixed_labels=labels)
    assert np.allclose(result.displacement[..., 0], 3.0) and np.allclose(result.displacement[..., 1:], 0.0)
    assert np.allclose(result.warped[:18], data[3:21], atol=1e-5)
    assert result.folding_fraction == 0.0 and np.allclose(result.jacobian, 1.0)
    identity = register_pair(fixed, fixed, cfg, cube_fn=identity_fn, moving_labels=labels, fixed_labels=labels)
    assert identity.dice == {1: 1.0} and identity.dice_mean == 1.0 and np.allclose(identity.warped, data, atol=1e-5)


def test_checkerboard_alternates_tiles_and_the_figure_draws():
    from biolatent.registration.plots import PairView, checkerboard, pairs_figure

    board = checkerboard(np.zeros((8, 8)), np.ones((8, 8)), tiles=4)
    assert board[0, 0] == 0 and board[0, 2] == 1 and board[2, 0] == 1 and board[2, 2] == 0 and board.mean() == 0.5
    volume = np.random.default_rng(0).random((8, 8, 8))
    jacobian = np.ones_like(volume)
    jacobian[2:4, 2:4, 4] = -1.0
    figure = pairs_figure([PairView("a -> b", volume, volume, volume, jacobian)], "voxelmorph")
    assert len(figure.axes) == 5  # four panels and the Jacobian's colour bar


def test_dice_of_the_chosen_labels_only():
    fixed = _ramp((12, 12, 12), 1.0)
    cfg = RegistrationData(path="unused", image_size=8, normalise="minmax")
    moving_labels = np.zeros((12, 12, 12), np.int64)
    moving_labels[2:6] = 1
    moving_labels[8:10] = 2  # absent from the fixed map
    fixed_labels = np.zeros_like(moving_labels)
    fixed_labels[2:6] = 1
    both = register_pair(fixed, fixed, cfg, cube_fn=identity_fn, moving_labels=moving_labels,
                         fixed_labels=fixed_labels)
    assert both.dice == {1: 1.0, 2: 0.0} and both.dice_mean == 0.5
    present = register_pair(fixed, fixed, cfg, cube_fn=identity_fn, moving_labels=moving_labels,
                            fixed_labels=fixed_labels, dice_labels=[1])
    assert present.dice == {1: 1.0} and present.dice_mean == 1.0
