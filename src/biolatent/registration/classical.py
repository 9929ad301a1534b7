"""The classical reference: SimpleITK's fast symmetric forces demons (Thirion 1998, MedIA 2(3); Vercauteren et
al. 2007, MICCAI; SimpleITK: Lowekamp et al. 2013, Front. Neuroinform. 7), an optional dependency (the ``dev``
and ``benchmark`` extras). A displacement at the fixed grid, in voxels, channel ``d`` along array axis ``d``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEMONS_ITERATIONS = 50
DEMONS_SMOOTHING = 1.5  # standard deviation (voxels) of the Gaussian smoothing of the field


def demons(moving: np.ndarray, fixed: np.ndarray, iterations: int = DEMONS_ITERATIONS,
           smoothing: float = DEMONS_SMOOTHING) -> np.ndarray:
    """(x, y, z) images of one grid -> (x, y, z, 3) displacement (voxels) that warps ``moving`` onto ``fixed``."""
    import SimpleITK as sitk

    # SimpleITK's array view is (z, y, x) of an image indexed (x, y, z): hand it our arrays transposed
    f = sitk.GetImageFromArray(np.ascontiguousarray(fixed.T, dtype=np.float32))
    m = sitk.GetImageFromArray(np.ascontiguousarray(moving.T, dtype=np.float32))
    matcher = sitk.HistogramMatchingImageFilter()
    matcher.SetNumberOfHistogramLevels(64)
    matcher.SetNumberOfMatchPoints(7)
    matcher.ThresholdAtMeanIntensityOn()
    m = matcher.Execute(m, f)
    registration = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    registration.SetNumberOfIterations(int(iterations))
    registration.SetStandardDeviations(float(smoothing))
    field = registration.Execute(f, m)
    # (z, y, x, 3) with components (x, y, z) of the index axes (unit spacing) -> (x, y, z, 3)
    return np.ascontiguousarray(sitk.GetArrayFromImage(field).transpose(2, 1, 0, 3))


def classical_tool() -> tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] | None:
    """(name, function) of the classical reference, or None when SimpleITK is not installed."""
    try:
        import SimpleITK  # noqa: F401
    except ImportError:
        return None
    return "demons", demons
