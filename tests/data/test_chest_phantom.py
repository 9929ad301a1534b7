"""``biolatent data simulate chest``: CT volumes in Hounsfield units per tissue, nodule masks inside the lungs,
determinism, the brains' meta.tsv layout; and the ``ct`` normalisation of the core volume loader with its error."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from biolatent.data.simulate.chest import FOV_MM, NODULE_MM, NODULE_TYPES, TISSUES, simulate_chest
from biolatent.data.volume_preprocessing import normalise_intensity
from biolatent.errors import DataError

LABEL = {name: value for value, name in TISSUES.items()}


def _data(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


@pytest.fixture(scope="module")
def chests(tmp_path_factory) -> Path:
    """Two subjects of 64^3 with nodules, written through the CLI entry point."""
    from biolatent.cli import main

    out = tmp_path_factory.mktemp("chests") / "set"
    argv = ["biolatent", "data", "simulate", "chest", "--n", "2", "--nodules", "--lesion-fraction", "1", "--seed", "3",
            "--out", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", argv)
        with pytest.raises(SystemExit) as done:
            main()
    assert done.value.code in (0, None)
    return out


def test_meta_tsv_follows_the_brains_layout(chests):
    meta = pd.read_csv(chests / "meta.tsv", sep="\t", keep_default_na=False)
    assert list(meta.columns[:7]) == ["id", "path", "is_anomaly", "mask", "labels", "lesion_voxels", "n_lesions"]
    assert meta.id.tolist() == ["chest-0001", "chest-0002"] and meta.is_anomaly.tolist() == [1, 1]
    nodules = pd.read_csv(chests / "nodules.tsv", sep="\t")
    assert len(nodules) == meta.n_lesions.sum() and set(nodules.type) <= set(NODULE_TYPES)
    assert nodules.diameter_mm.between(*NODULE_MM).all()
    for row in meta.itertuples():
        image = nib.load(chests / row.path)
        spacing = FOV_MM / 64
        np.testing.assert_allclose(np.diag(image.affine)[:3], [spacing] * 3)  # voxel spacing in the affine
        mask = _data(chests / row.mask) > 0.5
        assert mask.shape == image.shape == (64, 64, 64) and mask.sum() == row.lesion_voxels > 0
        # every nodule has its mask: one connected component per nodule at least touching its centre
        assert ndimage.label(mask)[1] <= row.n_lesions


def test_tissues_have_their_hounsfield_units_and_nodules_lie_in_the_lungs(chests):
    meta = pd.read_csv(chests / "meta.tsv", sep="\t", keep_default_na=False)
    for row in meta.itertuples():
        image, labels = _data(chests / row.path), _data(chests / row.labels).astype(int)
        mask = _data(chests / row.mask) > 0.5
        healthy = ~ndimage.binary_dilation(mask, iterations=3)

        def median(tissue: str, image=image, labels=labels, healthy=healthy) -> float:
            return float(np.median(image[(labels == LABEL[tissue]) & healthy]))

        assert abs(median("air") + 1000) < 15
        assert -900 < median("lung") < -700
        assert 0 < median("soft_tissue") < 80
        assert -150 < median("fat") < -50
        bone = image[labels == LABEL["bone"]]
        assert 250 < np.median(bone) < 1100 and np.percentile(bone, 95) > 300
        assert image[labels == LABEL["airway"]].min() < -900  # the trachea's lumen is air
        vessels = image[(labels == LABEL["vessel"]) & healthy]
        # blood (~40 HU) in vessels of a few mm: partial volume with the parenchyma around them at 5.5 mm voxels
        assert vessels.size > 20 and vessels.max() > -100 and np.median(vessels) > median("lung") + 300
        lungs = ndimage.binary_dilation(labels == LABEL["lung"], iterations=2)
        assert lungs[labels == LABEL["vessel"]].all()  # the vessel trees are drawn inside the lungs only
        assert (labels[mask] == LABEL["lung"]).all()  # every nodule voxel is inside a lung
        assert image[mask].mean() > median("lung") + 30  # and denser than the parenchyma around it
        assert image.min() >= -1024 and image.max() <= 3071 and np.array_equal(image, np.round(image))


def test_same_seed_same_subject_nodules_added_to_the_healthy_one_and_subjects_differ():
    a = simulate_chest(5, 0, size=32, nodules=True)
    b = simulate_chest(5, 0, size=32, nodules=True)
    healthy = simulate_chest(5, 0, size=32)
    other = simulate_chest(5, 1, size=32)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.mask.any()
    assert not healthy.mask.any() and not healthy.nodules
    # the nodules change the image only around themselves (partial volume + point spread)
    near = ndimage.binary_dilation(a.mask, iterations=4)
    assert np.array_equal(a.image[~near], healthy.image[~near]) and not np.array_equal(a.image, healthy.image)
    assert np.abs(a.image - other.image).mean() > 20 and a.breathing != other.breathing


def test_simulator_errors_are_one_line(run_cli, chests, tmp_path):
    run_cli("data", "simulate", "chest", "--n", "1", "--size", "8", "--out", tmp_path / "x").expect_error(">= 16")
    run_cli("data", "simulate", "chest", "--n", "1", "--out", chests).expect_error("already holds")
    assert not (tmp_path / "x").exists()


def test_ct_normalisation_windows_hounsfield_units_and_refuses_unit_range():
    hu = np.array([-1100.0, -1000.0, -300.0, 400.0, 1200.0])
    np.testing.assert_allclose(normalise_intensity(hu, "ct", center=-300, width=1400), [0, 0, 0.5, 1, 1])
    with pytest.raises(DataError, match="Hounsfield units") as error:
        normalise_intensity(np.linspace(0.0, 1.0, 27).reshape(3, 3, 3), "ct", center=-300, width=1400)
    assert "\n" not in str(error.value)


def test_ct_normalisation_of_a_normalised_cohort_is_a_one_line_error_and_nothing_is_written(chests, run_cli,
                                                                                            tmp_path):
    from biolatent.config import VolumeData
    from biolatent.data.volume_sets import load_volume
    from biolatent.io.nifti import write_nifti

    lung = {"normalise": "ct", "ct_center": -300.0, "ct_width": 1400.0}
    windowed = load_volume(VolumeData(path=chests, image_size=16, **lung)).x.numpy()
    assert windowed.min() == 0.0 and windowed.max() == 1.0 and 0.05 < np.median(windowed) < 0.5
    unit = tmp_path / "unit"
    unit.mkdir()
    for i, volume in enumerate(windowed[:, 0]):
        write_nifti(unit / f"c{i}.nii.gz", volume, (5.0,) * 3)
    with pytest.raises(DataError, match="volume 'c0': ct normalisation needs Hounsfield units"):
        load_volume(VolumeData(path=unit, image_size=16, **lung))
    config = tmp_path / "ct.yaml"
    config.write_text(f"data: {{modality: volume, path: {unit}, image_size: 16, normalise: ct}}\n"
                      "method: {name: simclr}\nmodel: {name: resnet, widths: [4, 8], blocks: [1, 1]}\n"
                      "train: {epochs: 1, batch_size: 2}\n")
    run_cli("pretrain", config, "--out", tmp_path / "never", "--quiet").expect_error("Hounsfield units", "'c0'")
    assert not (tmp_path / "never").exists()
