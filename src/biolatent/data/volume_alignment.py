"""Affine alignment of volumes to a template (``data.template``): the spatial normalisation that brain anomaly
benchmarks apply before detection (volumes in one atlas space, e.g. MNI or SRI24), so that a normative model
compares like with like.

Each volume, already on the cohort's cube (``data.volume_sets``, step 1), is registered to the template put on the
same cube: a 12-parameter affine transform maximising Mattes mutual information (Mattes et al. 2003, IEEE TMI
22(1):120-128; intensity-invariant, so the template may have another contrast), started from the alignment of the
two images' centres of mass and principal moments, optimised by regular-step gradient descent over a two-level
pyramid (shrink 2 then 1, Gaussian smoothing 1 then 0 voxels). ITK's registration framework through SimpleITK
(Lowekamp et al. 2013, Front. Neuroinform. 7:45), an optional dependency (the ``dev`` and ``bench`` extras). The
volume is then resampled on the template's cube (linear; outside its field of view, its minimum), and so are its
masks (nearest neighbour; outside, empty). Voxels are unit-spaced on the cube, as every volume of a cohort is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from biolatent.errors import ConfigError, DataError

HISTOGRAM_BINS = 32
ITERATIONS = 200
SHRINK_FACTORS = (2, 1)
SMOOTHING_SIGMAS = (1.0, 0.0)


def _sitk() -> Any:
    try:
        import SimpleITK as sitk
    except ImportError:
        raise ConfigError("data.template needs SimpleITK for the affine registration: pip install SimpleITK") from None
    return sitk


def _image(array: np.ndarray) -> Any:
    return _sitk().GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))


def register_affine(moving: np.ndarray, template: np.ndarray, what: str = "volume") -> Any:
    """The affine transform (a SimpleITK transform on the cube's voxel coordinates) that maps points of the
    ``template`` cube to the ``moving`` cube (module docstring); DataError (one line) when it fails."""
    sitk = _sitk()
    if moving.shape != template.shape:
        raise DataError(f"{what} has shape {moving.shape}, not the template's {template.shape}")
    if float(np.ptp(moving)) == 0.0:
        raise DataError(f"{what} is constant: it cannot be registered to the template")
    fixed, image = _image(template), _image(moving)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.NONE)  # every voxel, no random sample
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, ITERATIONS)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS))
    method.SetSmoothingSigmasPerLevel(list(SMOOTHING_SIGMAS))
    # ITK's metric threads sum their parts in a varying order (the transform then differs run to run in the 8th
    # digit; the method's own thread count does not reach the metric): one thread for the registration only
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        start = sitk.CenteredTransformInitializer(fixed, image, sitk.AffineTransform(3),
                                                  sitk.CenteredTransformInitializerFilter.MOMENTS)
        method.SetInitialTransform(start, inPlace=False)
        return method.Execute(fixed, image)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{what} could not be registered to data.template: {reason}") from None
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def resample_to_template(array: np.ndarray, transform: Any, template_shape: tuple[int, ...], *,
                         nearest: bool = False) -> np.ndarray:
    """``array`` (a volume or a mask on the moving cube) on the template's cube through ``transform``: linear with
    the array's minimum outside its field of view, or nearest neighbour with 0 (masks)."""
    sitk = _sitk()
    reference = _image(np.zeros(template_shape, np.float32))
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    fill = 0.0 if nearest else float(array.min())
    out = sitk.GetArrayFromImage(sitk.Resample(_image(array), reference, transform, interpolator, fill))
    return out.astype(array.dtype, copy=False) if nearest else out.astype(np.float32, copy=False)
