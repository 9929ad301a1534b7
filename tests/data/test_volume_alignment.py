"""data.template: affine registration of every volume (and its masks) to a template, checked against a known affine
applied by scipy (an independent resampler), through the core loader, eager and lazy, and the maps written on the
template's grid."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from biolatent.config import VolumeData
from biolatent.data.loaders import load_samples
from biolatent.errors import DataError

pytest.importorskip("SimpleITK")

SIZE = 32


def _phantom() -> np.ndarray:
    """An asymmetric head-like phantom: an ellipsoid with a bright off-centre core and a dark notch."""
    z, y, x = np.meshgrid(*(np.arange(SIZE, dtype=np.float64) - (SIZE - 1) / 2,) * 3, indexing="ij")
    body = ((x / 11) ** 2 + (y / 9) ** 2 + (z / 7) ** 2) <= 1
    core = ((x - 4) ** 2 + (y + 2) ** 2 + (z - 1) ** 2) <= 16
    notch = ((x + 5) ** 2 + (y - 4) ** 2 + z**2) <= 6
    image = 0.5 * body + 0.4 * core - 0.3 * (notch & body)
    return ndimage.gaussian_filter(image, 0.7).astype(np.float32)


def _known_affine(degrees: float = 8.0, scale: float = 1.06, shift=(1.5, -1.0, 0.5)) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, offset) for scipy's affine_transform: output voxel p samples input at matrix @ p + offset, a rotation
    about the first axis and a scaling about the cube's centre plus a shift."""
    a = math.radians(degrees)
    rotation = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    matrix = rotation @ np.diag([scale, 1.0 / scale, scale])
    centre = np.full(3, (SIZE - 1) / 2)
    return matrix, centre - matrix @ centre + np.asarray(shift)


def _moved(image: np.ndarray, order: int = 1) -> np.ndarray:
    matrix, offset = _known_affine()
    return ndimage.affine_transform(image, matrix, offset, order=order, mode="constant", cval=0.0)


def _write(folder, volumes: dict[str, np.ndarray], masks: dict[str, np.ndarray], template: np.ndarray):
    folder.mkdir(parents=True)
    rows = []
    for sid, volume in volumes.items():
        nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / f"{sid}.nii.gz")
        mask = ""
        if sid in masks:
            mask = f"{sid}_mask.nii.gz"
            nib.save(nib.Nifti1Image(masks[sid].astype(np.float32), np.eye(4)), folder / mask)
        rows.append({"id": sid, "path": f"{sid}.nii.gz", "mask": mask})
    pd.DataFrame(rows).to_csv(folder / "meta.tsv", sep="\t", index=False)
    nib.save(nib.Nifti1Image(template, np.diag([2.0, 2.0, 2.0, 1.0])), folder.parent / "template.nii.gz")
    return folder


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_register_affine_undoes_a_known_affine():
    from biolatent.data.volume_alignment import register_affine, resample_to_template

    template = _phantom()
    moving = _moved(template)
    lesion = np.zeros(template.shape, bool)
    lesion[18:23, 12:16, 14:18] = True  # a block inside the body, in template space
    moved_lesion = _moved(lesion.astype(np.float32), order=0) > 0.5
    before = float(np.abs(moving - template).mean())
    transform = register_affine(moving, template)
    back = resample_to_template(moving, transform, template.shape)
    back_lesion = resample_to_template(moved_lesion, transform, template.shape, nearest=True)
    assert back.dtype == np.float32 and back_lesion.dtype == bool
    assert float(np.abs(back - template).mean()) < 0.25 * before
    assert np.corrcoef(back.ravel(), template.ravel())[0, 1] > 0.97
    assert _dice(back_lesion, lesion) > 0.75 > _dice(moved_lesion, lesion)


def test_register_affine_refuses_a_constant_volume_in_one_line():
    from biolatent.data.volume_alignment import register_affine

    with pytest.raises(DataError, match="'x' is constant"):
        register_affine(np.zeros((SIZE,) * 3, np.float32), _phantom(), "'x'")


def test_loader_puts_volumes_and_lesion_masks_on_the_template(tmp_path):
    template = _phantom()
    lesion = np.zeros(template.shape, bool)
    lesion[18:23, 12:16, 14:18] = True
    moving = _moved(template) + np.float32(0.05) * _moved(lesion.astype(np.float32))
    folder = _write(tmp_path / "set", {"a": moving, "b": template.copy()},
                    {"a": _moved(lesion.astype(np.float32), order=0) > 0.5}, template)
    common = {"path": folder, "image_size": SIZE, "normalise": "none", "lesion_column": "mask"}
    plain = load_samples(VolumeData(**common))
    aligned = load_samples(VolumeData(**common, template=tmp_path / "template.nii.gz"))
    x, lesions = aligned.x.numpy()[:, 0], aligned.fields["lesion"].numpy()[:, 0]
    # arrays are (x, y, z) of RAS; the stored files are too (identity affines), so compare directly
    error = lambda v: float(np.abs(v - template).mean())  # noqa: E731
    assert error(x[0]) < 0.3 * error(plain.x.numpy()[0, 0])
    assert _dice(lesions[0], lesion) > 0.75 > _dice(plain.fields["lesion"].numpy()[0, 0], lesion)
    assert not lesions[1].any() and error(x[1]) < 0.01  # the template registered to itself stays put
    lazy = load_samples(VolumeData(**{k: v for k, v in common.items() if k != "lesion_column"}, lazy=True,
                                   template=tmp_path / "template.nii.gz"))
    np.testing.assert_allclose(np.stack([lazy.x[i].numpy()[0] for i in range(2)]), x, atol=1e-5)


def test_missing_template_is_a_one_line_error(tmp_path):
    folder = _write(tmp_path / "set", {"a": _phantom()}, {}, _phantom())
    with pytest.raises(DataError, match=r"data\.template not found"):
        load_samples(VolumeData(path=folder, image_size=SIZE, template=tmp_path / "nope.nii.gz"))


def test_anomaly_maps_are_written_on_the_template_grid(tmp_path):
    from biolatent.workflows.anomaly_tasks import VolumeTask

    template = _phantom()
    folder = _write(tmp_path / "set", {"a": _moved(template)}, {}, template)
    data = VolumeData(path=folder, image_size=SIZE, normalise="none", template=tmp_path / "template.nii.gz")
    samples = load_samples(data)
    VolumeTask().write_maps(tmp_path / "out", np.ones((1, SIZE, SIZE, SIZE), np.float32), samples, data)
    written = nib.load(tmp_path / "out" / "maps" / "a_map.nii.gz")
    np.testing.assert_array_equal(written.affine, np.diag([2.0, 2.0, 2.0, 1.0]))
    assert written.shape == template.shape


def test_the_registration_is_reproducible_and_leaves_the_thread_setting_as_it_was():
    import SimpleITK as sitk

    from biolatent.data.volume_alignment import register_affine

    matrix, offset = _known_affine()
    template = _phantom()
    moving = ndimage.affine_transform(template, matrix, offset, order=1).astype(np.float32)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    parameters = {tuple(register_affine(moving, template).GetParameters()) for _ in range(3)}
    assert len(parameters) == 1  # bit-identical transforms (ITK's threaded metric sums were not)
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads
