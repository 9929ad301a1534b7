"""The volume and cine modalities: reading cohorts onto one grid, metadata, masks, groups and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from biolatent.config import CineData, VolumeData
from biolatent.data.features import raw_features
from biolatent.data.loaders import load_samples
from biolatent.data.volume_sets import centre_fit, resample_cycle
from biolatent.errors import DataError
from biolatent.io.nifti import write_nifti
from biolatent.train.loader import IndexedDataset


def _cube(n: int, value: float) -> np.ndarray:
    x = np.zeros((n, n, n), np.float32)
    x[n // 4 : 3 * n // 4, n // 4 : 3 * n // 4, n // 4 : 3 * n // 4] = value
    return x


def _cohort(folder: Path, spacings=((2.0, 2.0, 2.0),) * 3, with_masks: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, spacing in enumerate(spacings):
        write_nifti(folder / f"v{i}.nii.gz", _cube(12, 1.0 + i), spacing)
        row = {"id": f"v{i}", "path": f"v{i}.nii.gz", "age": 50.0 + i, "subject": f"s{i // 2}"}
        if with_masks:
            write_nifti(folder / f"m{i}.nii.gz", (_cube(12, 1.0) > 0).astype(np.float32), spacing)
            row["anatomy"] = f"m{i}.nii.gz"
        rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "meta.tsv", sep="\t", index=False)
    return folder


def test_volume_cohort_on_one_grid_with_metadata_and_groups(tmp_path):
    folder = _cohort(tmp_path / "c")
    samples = load_samples(VolumeData(path=folder, image_size=16, group_column="subject"))
    assert samples.x.shape == (3, 1, 16, 16, 16) and samples.x.dtype == torch.float32
    assert samples.ids == ["v0", "v1", "v2"] and list(samples.obs["age"]) == [50.0, 51.0, 52.0]
    assert samples.info.spatial_dims == 3 and samples.info.image_size == 16 and samples.info.channels == 1
    assert samples.groups.tolist() == [0, 0, 1]
    # MRI normalisation: foreground percentiles map every cube to [0, 1] with its inside at 1
    assert float(samples.x.max()) == pytest.approx(1.0) and float(samples.x.min()) == 0.0
    assert float(samples.x[:, 0, 8, 8, 8].min()) == pytest.approx(1.0)
    assert raw_features(samples).shape == (3, 8**3)


def test_spacing_resamples_then_centre_fits(tmp_path):
    folder = _cohort(tmp_path / "c", spacings=((2.0, 2.0, 2.0), (1.0, 1.0, 1.0), (2.0, 2.0, 4.0)))
    with pytest.raises(DataError, match=r"different voxel spacings.*set data.spacing"):
        load_samples(VolumeData(path=folder, image_size=16))
    samples = load_samples(VolumeData(path=folder, image_size=16, spacing=2.0, normalise="none"))
    x = samples.x[:, 0].numpy()
    # 12 voxels of 2 mm stay 12 (padded to 16); 12 of 1 mm become 6 of 2 mm; the 4 mm axis doubles to 23 -> 16
    assert x.shape == (3, 16, 16, 16)
    assert (x[0] > 0).sum() == 6**3 and (x[1] > 0).sum() == pytest.approx(3**3, abs=2 * 3**2)
    np.testing.assert_array_equal(centre_fit(np.ones((4, 4, 4)), 6, 0.0)[1:5, 1:5, 1:5], np.ones((4, 4, 4)))


def test_masks_are_read_and_an_empty_mask_is_an_error(tmp_path):
    folder = _cohort(tmp_path / "c", with_masks=True)
    samples = load_samples(VolumeData(path=folder, image_size=12, mask_column="anatomy", normalise="none"))
    mask = samples.fields["mask"]
    assert mask.shape == (3, 1, 12, 12, 12) and mask.dtype == torch.bool
    np.testing.assert_array_equal(mask[0, 0].numpy(), _cube(12, 1.0) > 0)
    write_nifti(folder / "m1.nii.gz", np.zeros((12, 12, 12), np.float32), (2.0, 2.0, 2.0))
    with pytest.raises(DataError, match="anatomy mask of 'v1' is empty"):
        load_samples(VolumeData(path=folder, image_size=12, mask_column="anatomy", normalise="none"))


def test_a_4d_file_where_3d_is_expected_and_other_errors(tmp_path):
    folder = _cohort(tmp_path / "c")
    write_nifti(folder / "v1.nii.gz", np.zeros((12, 12, 12, 3), np.float32), (2.0, 2.0, 2.0))
    with pytest.raises(DataError, match=r"holds 4D data.*expected a 3D volume"):
        load_samples(VolumeData(path=folder, image_size=12, normalise="none"))  # files are read in order
    with pytest.raises(DataError, match="group_column 'nope'"):
        load_samples(VolumeData(path=_cohort(tmp_path / "d"), group_column="nope"))
    with pytest.raises(DataError, match="no NIfTI volumes"):
        (tmp_path / "empty").mkdir()
        load_samples(VolumeData(path=tmp_path / "empty"))


def _cine(n_frames: int, shift: int) -> np.ndarray:
    data = np.zeros((10, 10, 10, n_frames), np.float32)
    for t in range(n_frames):
        data[2 + (t + shift) % 6, 3:7, 3:7, t] = 1.0
    return data


def test_cine_cohort_frames_and_resampled_cycle(tmp_path):
    folder = tmp_path / "cines"
    folder.mkdir()
    write_nifti(folder / "a.nii.gz", _cine(6, 0), (3.0, 3.0, 3.0), frame_seconds=0.1)
    write_nifti(folder / "b.nii.gz", _cine(4, 1), (3.0, 3.0, 3.0), frame_seconds=0.1)
    with pytest.raises(DataError, match=r"different numbers of frames \(6 in 'a', 4 in 'b'\).*data\.frames"):
        load_samples(CineData(path=folder, image_size=10, normalise="none"))
    samples = load_samples(CineData(path=folder, image_size=10, frames=6, normalise="none"))
    assert samples.x.shape == (2, 6, 10, 10, 10) and samples.info.frames == 6
    np.testing.assert_allclose(samples.x[0].numpy(), np.moveaxis(_cine(6, 0), -1, 0), atol=1e-6)
    # periodic linear interpolation: 4 -> 8 frames puts the mean of neighbours (last with first) in between
    cycle = np.arange(4, dtype=np.float64)
    np.testing.assert_allclose(resample_cycle(cycle, 8), [0, 0.5, 1, 1.5, 2, 2.5, 3, 1.5])
    with pytest.raises(DataError, match="expected a 4D"):
        write_nifti(folder / "c.nii.gz", np.ones((10, 10, 10), np.float32), (3.0, 3.0, 3.0))
        load_samples(CineData(path=folder, image_size=10, frames=6, normalise="none"))


def test_batches_carry_fields_and_a_partner_of_the_same_subject():
    x = torch.arange(6, dtype=torch.float32)[:, None]
    groups = torch.tensor([0, 0, 1, 2, 2, 2])
    mask = torch.ones(6, 1, dtype=torch.bool)
    dataset = IndexedDataset(x, fields={"mask": mask}, groups=groups)
    torch.manual_seed(0)
    seen: dict[int, set[int]] = {i: set() for i in range(6)}
    for _ in range(40):
        for i in range(6):
            item = dataset[i]
            assert item["mask"].dtype == torch.bool
            pair = int(item["index_pair"])
            assert float(item["x_pair"][0]) == pair and groups[pair] == groups[i]
            seen[i].add(pair)
    assert seen[0] == {1} and seen[2] == {2} and seen[3] == {4, 5}  # never itself when the subject has others


def test_dicom_series_folders_are_volumes_of_the_cohort(tmp_path):
    from dicom_series import write_series

    folder = tmp_path / "dicom"
    axial = np.array([1.0, 0, 0, 0, 1, 0])
    stored = np.stack([np.full((6, 5), 1000 + 10 * k, np.uint16) for k in range(4)])
    write_series(folder / "patient-a", stored, axial, (0.0, 0.0, 0.0))
    write_series(folder / "patient-b", stored[::-1].copy(), axial, (0.0, 0.0, 0.0))
    samples = load_samples(VolumeData(path=folder, image_size=8, normalise="none"))
    assert samples.ids == ["patient-a", "patient-b"] and samples.x.shape == (2, 1, 8, 8, 8)
    # HU = 2 x stored - 1024 (rescale slope and intercept), increasing with z in a, decreasing in b
    a, b = samples.x[0, 0].numpy(), samples.x[1, 0].numpy()
    assert a[:, :, 0].mean() < a[:, :, -1].mean() and b[:, :, 0].mean() > b[:, :, -1].mean()
    assert float(a.min()) >= 2 * 1000 - 1024 - 1e-3 and float(a.max()) <= 2 * 1030 - 1024 + 1e-3
    write_series(tmp_path / "other", stored, axial, (0.0, 0.0, 0.0))
    for f in (tmp_path / "other").iterdir():  # a second series in the same folder
        f.rename(folder / "patient-b" / f"other-{f.name}")
    with pytest.raises(DataError, match="mixes 2 DICOM series"):
        load_samples(VolumeData(path=folder, image_size=8))


def test_a_cohort_is_read_one_cine_at_a_time(tmp_path):
    """Peak memory of loading 24 cines stays a few raw cines above the result (measured 1.2 MB streamed; 6.2 MB
    when every raw cine was read before the first was preprocessed)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    folder = tmp_path / "cines"
    folder.mkdir()
    for i in range(24):
        write_nifti(folder / f"c{i:02d}.nii.gz", rng.random((24, 24, 12, 8)).astype(np.float32), (3.0, 3.0, 6.0),
                    frame_seconds=0.1)
    config = CineData(path=folder, image_size=8)
    load_samples(config)  # imports and caches outside the measurement
    tracemalloc.start()
    try:
        samples = load_samples(config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_raw = 24 * 24 * 12 * 8 * 4
    assert samples.x.shape == (24, 8, 8, 8, 8)
    assert peak < 8 * one_raw  # all 24 raw cines at once would be 24 * one_raw and more
