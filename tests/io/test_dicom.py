"""DICOM series reading against the geometry of the standard, computed independently voxel by voxel; real
files shipped with pydicom; the errors of mixed and inconsistent series."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from biolatent.errors import DataError
from biolatent.io.dicom import read_dicom, read_dicom_series
from dicom_series import COL_SPACING, GAP, ROW_SPACING, write_series


@pytest.mark.parametrize("orientation", [
    np.array([1.0, 0, 0, 0, 1, 0]),  # axial
    np.array([0.0, 1, 0, 0, 0, -1]),  # sagittal
    np.array([np.cos(0.3), np.sin(0.3), 0, -np.sin(0.3), np.cos(0.3), 0]),  # oblique, rotated in-plane
])
def test_every_voxel_lands_at_its_patient_position(tmp_path, orientation):
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 3000, size=(5, 6, 7))  # (slices, rows, cols)
    origin = np.array([-30.0, 12.5, 40.0])
    write_series(tmp_path / "s", stored, orientation, origin)
    volume = read_dicom_series(tmp_path / "s")
    assert sorted(volume.data.shape) == [5, 6, 7]  # axes permuted to the closest canonical orientation
    inverse = np.linalg.inv(volume.affine)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    for k, r, c in [(0, 0, 0), (4, 5, 6), (2, 3, 1), (1, 0, 6)]:
        lps = origin + k * GAP * normal + r * ROW_SPACING * col_dir + c * COL_SPACING * row_dir
        ras = np.array([-lps[0], -lps[1], lps[2], 1.0])
        index = inverse @ ras
        np.testing.assert_allclose(index[:3], np.round(index[:3]), atol=1e-4)
        i, j, kk = np.round(index[:3]).astype(int)
        assert volume.data[i, j, kk] == pytest.approx(stored[k, r, c] * 2.0 - 1024.0)  # slope and intercept
    assert sorted(volume.spacing) == pytest.approx(sorted([ROW_SPACING, COL_SPACING, GAP]))


def test_axial_series_is_canonical_ras(tmp_path):
    stored = np.arange(3 * 4 * 5).reshape(3, 4, 5)
    write_series(tmp_path / "s", stored, np.array([1.0, 0, 0, 0, 1, 0]), np.zeros(3))
    volume = read_dicom(tmp_path / "s")
    assert np.all(np.diag(volume.affine)[:3] > 0)  # RAS+: axes point right, anterior, superior
    assert volume.spacing == pytest.approx((COL_SPACING, ROW_SPACING, GAP))
    # LPS columns (x to the patient's left) are reversed in RAS; rows (y posterior) too; slices stay
    np.testing.assert_allclose(volume.data, (stored.transpose(2, 1, 0)[::-1, ::-1, :] * 2.0 - 1024.0))


def test_mixed_and_inconsistent_series_are_one_line_errors(tmp_path):
    stored = np.ones((3, 4, 4), dtype=int)
    axial = np.array([1.0, 0, 0, 0, 1, 0])
    uid = write_series(tmp_path / "mixed", stored, axial, np.zeros(3))
    other = write_series(tmp_path / "mixed" / "b", stored, axial, np.array([0.0, 0, 100]))
    with pytest.raises(DataError, match="mixes 2 DICOM series") as error:
        read_dicom_series(tmp_path / "mixed")
    assert "\n" not in str(error.value)
    assert read_dicom_series(tmp_path / "mixed", series_uid=other).data.shape[2] == 3
    assert read_dicom_series(tmp_path / "mixed", series_uid=uid).data.shape[2] == 3
    write_series(tmp_path / "gap", np.ones((4, 4, 4), dtype=int), axial, np.zeros(3), gaps=[0.0, 2.5, 5.0, 10.0])
    with pytest.raises(DataError, match="slice gaps vary"):
        read_dicom_series(tmp_path / "gap")
    write_series(tmp_path / "dup", np.ones((3, 4, 4), dtype=int), axial, np.zeros(3), gaps=[0.0, 2.5, 2.5])
    with pytest.raises(DataError, match="same position"):
        read_dicom_series(tmp_path / "dup")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.dcm").write_bytes(b"not dicom at all")
    with pytest.raises(DataError, match="cannot read DICOM"):
        read_dicom_series(tmp_path / "junk")


def test_real_ct_and_mr_files_shipped_with_pydicom():
    from pydicom.data import get_testdata_file
    from pydicom.pixels import apply_modality_lut

    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = get_testdata_file(name)
        ds = pydicom.dcmread(path)
        volume = read_dicom(path)
        assert volume.data.shape[2] == 1 and sorted(volume.data.shape[:2]) == sorted(ds.pixel_array.shape)
        expected = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
        np.testing.assert_allclose(np.sort(volume.data.ravel()), np.sort(expected.ravel()), rtol=1e-6)
    ct = read_dicom(get_testdata_file("CT_small.dcm"))
    assert -1100 < ct.data.min() < 0 < ct.data.max()  # Hounsfield units: air/fat below 0, tissue above
