"""NIfTI volume sets read by the core loader for anomaly detection (orientation, resampling, lesion masks), maps
written back on the input grid, errors."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from biolatent.anomaly.volumes import (
    brain_slices,
    read_volume_headers,
    save_volume,
    volume_scores,
    write_volume_map,
)
from biolatent.errors import DataError
from biolatent.workflows.anomaly_tasks import read_volume_set

LPS = np.array([[-2.0, 0, 0, 30.0], [0, -2.0, 0, 40.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1.0]])


def _blob(shape, seed=0):
    rng = np.random.default_rng(seed)
    data = np.zeros(shape, np.float32)
    data[2:-2, 3:-3, 2:-2] = rng.uniform(0.2, 0.9, (shape[0] - 4, shape[1] - 6, shape[2] - 4))
    return data


def _set(folder, rows, volumes, masks=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        nib.save(nib.Nifti1Image(volumes[i], LPS), folder / row["path"])
        if masks is not None and row.get("mask"):
            nib.save(nib.Nifti1Image(masks[i], LPS), folder / row["mask"])
    pd.DataFrame(rows).to_csv(folder / "meta.tsv", sep="\t", index=False)
    return folder


def test_read_reorients_to_ras_and_maps_go_back_on_the_input_grid(tmp_path):
    stored = [_blob((32, 32, 32), s) for s in range(2)]
    mask = np.zeros((32, 32, 32), np.float32)
    mask[10:14, 12:15, 20:22] = 1
    rows = [{"id": "a", "path": "a.nii.gz", "is_anomaly": 0, "mask": ""},
            {"id": "b", "path": "b.nii.gz", "is_anomaly": 1, "mask": "b_mask.nii.gz"}]
    folder = _set(tmp_path / "set", rows, stored, [None, mask])
    ids, volumes, labels, masks = read_volume_set(folder, 32, normalise="none")
    assert ids == ["a", "b"] and volumes.shape == (2, 32, 32, 32) and labels.tolist() == [False, True]
    # LPS storage: x and y flipped; arrays are (z, y, x) of RAS -> independent check with numpy flips
    expected = np.flip(stored[0], axis=(0, 1)).transpose(2, 1, 0)
    np.testing.assert_array_equal(volumes[0], expected)
    assert masks[1].sum() == mask.sum() and not masks[0].any()
    for header, volume in zip(read_volume_headers(folder), volumes, strict=True):
        path = write_volume_map(tmp_path / "maps" / f"{header.id}_map.nii.gz", volume, header)
        image = nib.load(path)
        np.testing.assert_array_equal(image.affine, LPS)
        np.testing.assert_allclose(np.asarray(image.dataobj), nib.load(header.path).get_fdata(), atol=1e-6)


def test_resampling_and_rescaling(tmp_path):
    small = _blob((16, 16, 16)) * 1000.0  # scanner-like intensities, a 16^3 grid
    folder = tmp_path / "plain"
    folder.mkdir()
    nib.save(nib.Nifti1Image(small, np.eye(4)), folder / "s.nii")
    ids, volumes, labels, _ = read_volume_set(folder, 32, lesion_column=None)  # no meta.tsv: every NIfTI
    assert ids == ["s"] and volumes.shape == (1, 32, 32, 32) and labels is None
    assert 0.0 <= volumes.min() and volumes.max() == 1.0  # the core's MRI normalisation, after the resampling
    with pytest.raises(DataError, match="lesion_column 'mask' is not a column"):
        read_volume_set(folder, 32)
    header = read_volume_headers(folder)[0]
    back = nib.load(write_volume_map(tmp_path / "m.nii.gz", volumes[0], header))
    assert back.shape == (16, 16, 16)


def test_volume_scores_and_slices_by_hand():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 4, 8, 8)).astype(np.float32)
    k = math.ceil(0.05 * 4 * 8 * 8)
    hand = [np.sort(m.ravel())[-k:].mean() for m in maps]
    np.testing.assert_allclose(volume_scores(maps, 0.05, 0), hand, rtol=1e-6)
    assert (volume_scores(maps, 0.05, 1) <= volume_scores(maps, 0.05, 0) + 1e-9).all()  # an opening never raises
    volumes = np.zeros((2, 4, 8, 8), np.float32)
    volumes[0, 1, 2, 2] = volumes[1, 3, 5, 5] = 0.5
    assert brain_slices(volumes).shape == (2, 1, 8, 8)


def test_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_volume_set(tmp_path / "nowhere", 32)
    rows = [{"id": "a", "path": "a.nii.gz", "mask": "a_mask.nii.gz"}]
    folder = _set(tmp_path / "mismatch", rows, [_blob((32, 32, 32))], [np.ones((16, 32, 32), np.float32)])
    with pytest.raises(DataError, match=r"lesion mask of 'a' has shape .* \(shape mismatch\)"):
        read_volume_set(folder, 32)
    folder = tmp_path / "missing"
    folder.mkdir()
    pd.DataFrame([{"id": "a", "path": "gone.nii.gz"}]).to_csv(folder / "meta.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match="not found"):
        read_volume_set(folder, 32, lesion_column=None)
    flat = tmp_path / "flat"
    flat.mkdir()
    nib.save(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)), flat / "f.nii.gz")
    with pytest.raises(DataError, match="3D"):
        read_volume_set(flat, 32, lesion_column=None)
    save_volume(tmp_path / "bad" / "b.nii.gz", np.ones((4, 4, 4)), np.eye(4))
    pd.DataFrame([{"id": "b", "path": "b.nii.gz", "is_anomaly": 2}]).to_csv(tmp_path / "bad" / "meta.tsv", sep="\t",
                                                                               index=False)
    with pytest.raises(DataError, match="must hold 0/1"):
        read_volume_set(tmp_path / "bad", 32, lesion_column=None, normalise="none")


def test_brain_erosion_keeps_maps_inside_the_eroded_brain():
    from biolatent.anomaly.volumes import brain_region, volume_maps

    class Ones:  # a detector whose map is 1 everywhere
        def score_maps(self, images):
            return np.ones((images.shape[0], *images.shape[2:]), np.float32)

    volume = np.zeros((1, 12, 12, 12), np.float32)
    volume[0, 2:10, 3:9, 1:11] = 0.5  # a box of brain
    dilated = volume_maps(Ones(), volume)
    eroded = volume_maps(Ones(), volume, erosion=2)
    box = np.zeros_like(volume, bool)
    box[0, 4:8, 5:7, 3:9] = True  # the box shrunk by 2 voxels on every side (6-connected erosion of a box)
    np.testing.assert_array_equal(eroded > 0, box)
    np.testing.assert_array_equal(brain_region(volume, 2), box)
    assert (dilated > 0).sum() > (volume > 0).sum()  # erosion 0: the brain dilated by one voxel
