"""Resampling against exact linear functions and nibabel's resample_to_output; intensity normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from biolatent.data.volume_preprocessing import normalise_intensity, resample
from biolatent.errors import DataError
from biolatent.io.nifti import Volume


def linear_volume(shape, spacing, origin=(10.0, -5.0, 3.0)):
    axes = [np.arange(n) * s for n, s in zip(shape, spacing, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return Volume((2.0 * x - 0.5 * y + 3.0 * z + 7.0).astype(np.float32), tuple(spacing), affine)


def test_trilinear_resampling_reproduces_a_linear_field_exactly():
    volume = linear_volume((12, 10, 8), (1.0, 1.5, 3.0))
    out = resample(volume, (0.5, 1.0, 2.0))
    assert out.spacing == (0.5, 1.0, 2.0) and out.data.shape == (23, 14, 11)
    index = np.stack(np.meshgrid(*(np.arange(n) for n in out.data.shape), indexing="ij"), -1)
    world = index @ out.affine[:3, :3].T + out.affine[:3, 3]  # mm, from the new affine
    local = world - volume.affine[:3, 3]
    expected = 2.0 * local[..., 0] - 0.5 * local[..., 1] + 3.0 * local[..., 2] + 7.0
    np.testing.assert_allclose(out.data, expected, rtol=1e-5, atol=1e-4)


def test_agrees_with_nibabel_resample_to_output():
    import nibabel as nib
    from nibabel.processing import resample_to_output

    rng = np.random.default_rng(0)
    data = rng.normal(size=(9, 11, 7)).astype(np.float32)
    affine = np.diag([1.2, 0.9, 2.0, 1.0])
    ours = resample(Volume(data, (1.2, 0.9, 2.0), affine), 1.0)
    theirs = resample_to_output(nib.Nifti1Image(data, affine), (1.0, 1.0, 1.0), order=1, mode="nearest")
    np.testing.assert_allclose(theirs.affine, ours.affine, atol=1e-6)
    common = tuple(slice(0, min(a, b)) for a, b in zip(ours.data.shape, theirs.shape, strict=True))
    np.testing.assert_allclose(ours.data[common], np.asarray(theirs.dataobj)[common], atol=1e-4)


def test_normalisation_modes_and_errors():
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])
    np.testing.assert_allclose(normalise_intensity(hu, "ct", center=40, width=400), [0, 0, 0.5, 1, 1])
    mr = np.concatenate([np.zeros(100), np.linspace(1, 100, 1000)])
    out = normalise_intensity(mr, "mri", low=1, high=99)
    lo, hi = np.percentile(np.linspace(1, 100, 1000), [1, 99])
    np.testing.assert_allclose(out, np.clip((mr - lo) / (hi - lo), 0, 1), rtol=1e-6)
    with pytest.raises(DataError, match="constant volume"):
        normalise_intensity(np.full(10, 3.0), "minmax")
    with pytest.raises(DataError, match="unknown intensity normalisation"):
        normalise_intensity(hu, "pet")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="3D volume"):
        resample(Volume(np.zeros((2, 2)), (1.0, 1.0), np.eye(4)), 1.0)
