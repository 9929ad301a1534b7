"""Volume preprocessing: resampling to a target voxel spacing and intensity normalisation per modality.

* ``resample`` puts a canonical ``Volume`` (``biolatent.io.nifti`` / ``biolatent.io.dicom``) on a grid of the
  requested spacing that covers the same field of view: new voxel centres are placed from the first voxel centre
  at the new spacing up to the last one, and intensities are interpolated with scipy's spline interpolation
  (``order`` 1 = trilinear, 0 = nearest for label maps, 3 = cubic) with edge values outside the grid; the affine
  keeps the orientation and the origin of the first voxel.
* ``normalise_intensity`` maps intensities to [0, 1]: ``"mri"`` by percentiles (the arbitrary units of MR are
  robustly rescaled between the ``low``/``high`` percentiles of the foreground (> 0) voxels, Nyul & Udupa 1999
  use the same landmarks idea), ``"ct"`` by a Hounsfield window (``center`` and ``width``, e.g. soft tissue 40/400,
  brain 40/80, lung -300/1400, i.e. -1000..400 HU), ``"minmax"`` by the volume's own range. A volume asked for
  ``"ct"`` whose intensities all lie within [0, 1] is not in Hounsfield units (air is -1000 HU; it was
  normalised already, or is not CT): a DataError, never a silent all-black or all-white window.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from biolatent.errors import DataError
from biolatent.io.nifti import Volume


def resample(volume: Volume, spacing: float | tuple[float, float, float], *, order: int = 1) -> Volume:
    """``volume`` (3D) on a grid of ``spacing`` mm covering the same field of view (see module docstring)."""
    data = np.asarray(volume.data)
    if data.ndim != 3:
        raise DataError(f"resample expects a 3D volume, got shape {data.shape}")
    target = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    if np.any(target <= 0) or not np.all(np.isfinite(target)):
        raise DataError(f"target spacing must be positive, got {tuple(target)}")
    current = np.asarray(volume.spacing[:3], dtype=np.float64)
    extent = (np.asarray(data.shape) - 1) * current
    shape = np.floor(extent / target + 1e-6).astype(int) + 1
    coordinates = np.meshgrid(*(np.arange(n) * t / c for n, t, c in zip(shape, target, current, strict=True)),
                              indexing="ij")
    values = ndimage.map_coordinates(data.astype(np.float64), coordinates, order=order, mode="nearest")
    affine = np.array(volume.affine, dtype=np.float64)
    affine[:3, :3] = affine[:3, :3] / current * target  # same directions, new step lengths
    return Volume(values.astype(np.float32), tuple(float(t) for t in target), affine)


def normalise_intensity(data: np.ndarray, modality: Literal["mri", "ct", "minmax"] = "mri", *,
                        low: float = 0.5, high: float = 99.5, center: float = 40.0, width: float = 400.0) -> np.ndarray:
    """float32 intensities in [0, 1] (see module docstring); a constant volume is a DataError."""
    x = np.asarray(data, dtype=np.float64)
    if not np.isfinite(x).all():
        raise DataError("the volume holds NaN or inf intensities")
    if modality == "ct":
        if x.min() >= 0.0 and x.max() <= 1.0:
            raise DataError(f"ct normalisation needs Hounsfield units, but every intensity lies in [0, 1] "
                            f"({x.min():.3g} to {x.max():.3g}): the volume is normalised already or not CT "
                            "(use normalise: none or minmax)")
        if width <= 0:
            raise DataError(f"CT window width must be positive, got {width}")
        lo, hi = center - width / 2.0, center + width / 2.0
    elif modality == "mri":
        if not 0.0 <= low < high <= 100.0:
            raise DataError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
        foreground = x[x > 0] if np.any(x > 0) else x.ravel()
        lo, hi = np.percentile(foreground, [low, high])
    elif modality == "minmax":
        lo, hi = float(x.min()), float(x.max())
    else:
        raise DataError(f"unknown intensity normalisation {modality!r} (valid: mri, ct, minmax)")
    if hi <= lo:
        raise DataError(f"cannot normalise a constant volume (intensity range {lo:.4g} to {hi:.4g})")
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
