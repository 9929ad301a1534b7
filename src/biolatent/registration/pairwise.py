"""One pair, at the fixed image's own grid: the moving image (and labels) resampled onto the fixed grid through
the two affines (the inputs must be affinely aligned), a displacement predicted on the model's cube and
upsampled to the fixed grid, the warped image / labels, the Jacobian determinant, folding and Dice.

``displacement_fn(moving_cube, fixed_cube) -> (1, 3, S, S, S)`` is the model (``method.register``), the identity
(zeros) or anything else that predicts on the cube; ``classical`` tools register at the fixed grid themselves and
return the displacement there (``full_displacement_fn``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from biolatent.errors import DataError
from biolatent.io.nifti import Volume
from biolatent.models.spatial_transform import resize_field, warp
from biolatent.registration.config import RegistrationData
from biolatent.registration.data import to_cube
from biolatent.registration.metrics import dice_per_label, jacobian_determinant

CubeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FullFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class PairResult:
    """Arrays on the fixed grid (x, y, z): ``warped``, ``warped_labels`` (or None), ``displacement`` (x, y, z, 3)
    in fixed-grid voxels, ``jacobian``; ``folding_fraction``, ``seconds`` (the registration itself), ``dice``."""

    warped: np.ndarray
    warped_labels: np.ndarray | None
    displacement: np.ndarray
    jacobian: np.ndarray
    folding_fraction: float
    seconds: float
    dice: dict[int, float]

    @property
    def dice_mean(self) -> float:
        values = [v for v in self.dice.values() if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")


def onto_fixed_grid(moving: np.ndarray, moving_affine: np.ndarray, fixed: Volume, order: int) -> np.ndarray:
    """``moving`` resampled at the fixed grid's voxels through the affines (world coordinates shared)."""
    from scipy import ndimage

    if moving.shape == fixed.data.shape and np.allclose(moving_affine, fixed.affine, atol=1e-4):
        return moving
    matrix = np.linalg.inv(moving_affine) @ fixed.affine
    return ndimage.affine_transform(moving, matrix[:3, :3], offset=matrix[:3, 3], output_shape=fixed.data.shape,
                                    order=order, mode="constant", cval=0.0)


def check_pair(moving: Volume, fixed: Volume) -> None:
    if moving.data.ndim != fixed.data.ndim:
        raise DataError(f"moving and fixed images differ in dimensionality ({moving.data.ndim}D and "
                        f"{fixed.data.ndim}D)")


def register_pair(moving: Volume, fixed: Volume, cfg: RegistrationData, *, cube_fn: CubeFn | None = None,
                  full_fn: FullFn | None = None, moving_labels: np.ndarray | None = None,
                  fixed_labels: np.ndarray | None = None, dice_labels: list[int] | None = None) -> PairResult:
    """Register ``moving`` to ``fixed`` with ``cube_fn`` (on the model's cube) or ``full_fn`` (at the fixed grid,
    on the images in [0, 1] after the cohort's normalisation at full resolution); Dice of ``dice_labels``, by
    default of every label in either map (``dice_per_label``)."""
    check_pair(moving, fixed)
    moved = onto_fixed_grid(moving.data, moving.affine, fixed, 1)
    labels = None if moving_labels is None else onto_fixed_grid(moving_labels.astype(np.float32), moving.affine,
                                                                fixed, 0)
    started = time.perf_counter()
    with torch.no_grad():
        if cube_fn is not None:
            m = torch.from_numpy(to_cube(moved, cfg, "moving image"))[None, None]
            f = torch.from_numpy(to_cube(fixed.data, cfg, "fixed image"))[None, None]
            field = resize_field(cube_fn(m, f).float(), tuple(fixed.data.shape))
        else:
            assert full_fn is not None, "give cube_fn or full_fn"
            from biolatent.data.volume_sets import normalise_volume

            full = full_fn(normalise_volume(moved, cfg, "moving image"),
                           normalise_volume(fixed.data, cfg, "fixed image"))
            field = torch.from_numpy(np.ascontiguousarray(full, dtype=np.float32)).movedim(-1, 0)[None]
        warped = warp(torch.from_numpy(np.ascontiguousarray(moved, dtype=np.float32))[None, None], field,
                      padding_mode="zeros")[0, 0].numpy()
    seconds = time.perf_counter() - started
    warped_labels = None
    if labels is not None:
        warped_labels = warp(torch.from_numpy(np.ascontiguousarray(labels))[None, None], field, mode="nearest",
                             padding_mode="zeros")[0, 0].numpy().round().astype(np.int64)
    jacobian = jacobian_determinant(field)[0].numpy()
    dice = {} if warped_labels is None or fixed_labels is None else dice_per_label(warped_labels, fixed_labels,
                                                                                   dice_labels)
    return PairResult(warped, warped_labels, field[0].movedim(0, -1).numpy(), jacobian,
                      float((jacobian <= 0).mean()), seconds, dice)


def identity_fn(moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """No registration: a zero displacement."""
    return torch.zeros(moving.shape[0], moving.dim() - 2, *moving.shape[2:])
