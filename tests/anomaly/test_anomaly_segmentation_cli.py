"""``biolatent anomaly supervised | guided`` through the real CLI: run files, rows that match ``evaluate``, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from scipy import ndimage

from biolatent.anomaly.images import write_slice_set
from biolatent.workflows.anomaly_tasks import read_image_set

SAMPLE = {"auroc", "ap", "dice_val_threshold", "fpr_val_threshold"}
PIXEL = {"auroc", "ap", "dice_val_threshold", "dice_best"}


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("segment")
    write_slice_set(root / "healthy", 24, size=32, seed=0)
    write_slice_set(root / "labelled", 24, size=32, lesions=True, lesion_fraction=0.75, seed=3)
    write_slice_set(root / "unlabelled", 24, size=32, lesions=True, seed=5)
    write_slice_set(root / "test", 16, size=32, lesions=True, seed=7)
    return root


def _values(table: pd.DataFrame, detector: str, level: str) -> dict[str, float]:
    rows = table[(table.detector == detector) & (table.level == level)]
    return dict(zip(rows.metric, rows.value, strict=True))


def test_supervised(run_cli, sets, tmp_path):
    from sklearn.metrics import roc_auc_score

    out = tmp_path / "supervised"
    result = run_cli("anomaly", "supervised", "--train", sets / "labelled", "--test", sets / "test", "--out", out,
                     "--epochs", "3", "--size-edges", "8,16")
    assert result.code == 0, result.err
    for name in ("config.yaml", "provenance.json", "segmenter.safetensors", "segmenter.json", "segmentation_maps.png"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "anomaly_metrics.tsv", sep="\t")
    assert list(table.columns) == ["detector", "level", "metric", "value"] and set(table.detector) == {"supervised"}
    assert set(_values(table, "supervised", "sample")) == SAMPLE and set(_values(table, "supervised", "pixel")) == PIXEL
    assert table.value.between(0, 1).all()
    _, _, _, masks = read_image_set(sets / "test", 32)
    probabilities = np.load(out / "probabilities.npy")
    assert probabilities.shape == masks.shape
    pixel = _values(table, "supervised", "pixel")
    assert pixel["auroc"] == pytest.approx(roc_auc_score(masks.ravel(), probabilities.ravel()), abs=1e-5)
    metrics = json.loads((out / "metrics.json").read_text())["anomaly_supervised"]
    assert metrics["threshold_chosen_on"] == "validation" and metrics["n_train"] + metrics["n_validation"] == 24
    threshold = json.loads((out / "segmenter.json").read_text())["threshold"]
    assert threshold == pytest.approx(metrics["pixel_threshold"])
    assert pixel["dice_val_threshold"] == pytest.approx(
        2 * ((probabilities > threshold) & masks).sum() / ((probabilities > threshold).sum() + masks.sum()), abs=1e-5)
    sizes = pd.read_csv(out / "lesion_sizes.tsv", sep="\t")
    assert sizes.size_bin.tolist() == ["<=8", "9-16", ">16", "all"]
    n_lesions = sum(ndimage.label(m, structure=np.ones((3, 3)))[1] for m in masks)
    assert sizes.n_lesions.iloc[-1] == n_lesions == sizes.n_lesions.iloc[:-1].sum()
    assert yaml.safe_load((out / "config.yaml").read_text())["epochs"] == 3


def test_guided_matches_evaluate(run_cli, sets, tmp_path):
    config = tmp_path / "ae.yaml"
    data = {"modality": "image2d", "path": str(sets / "healthy"), "image_size": 32, "lesion_column": "mask"}
    config.write_text(yaml.safe_dump({"data": data,
                                      "method": {"name": "ae"}, "train": {"epochs": 2, "batch_size": 8}}))
    run = tmp_path / "run"
    assert run_cli("anomaly", "fit", config, "--out", run).code == 0
    out = tmp_path / "guided"
    result = run_cli("anomaly", "guided", run, "--unlabelled", sets / "unlabelled", "--test", sets / "test",
                     "--out", out, "--epochs", "3", "--pseudo", "threshold")
    assert result.code == 0, result.err
    table = pd.read_csv(out / "anomaly_metrics.tsv", sep="\t")
    assert set(table.detector) == {"ae", "ae+guided"}
    assert set(_values(table, "ae+guided", "pixel")) == PIXEL
    assert run_cli("anomaly", "evaluate", run, "--data", sets / "test").code == 0
    evaluated = pd.read_csv(run / "anomaly_metrics.tsv", sep="\t")
    for level in ("sample", "pixel"):  # the raw-map rows are those of `anomaly evaluate` on the same run
        ours, theirs = _values(table, "ae", level), _values(evaluated, "ae", level)
        assert set(ours) == set(theirs)
        for key, value in theirs.items():
            assert ours[key] == pytest.approx(value, abs=1e-5), (level, key)
    sizes = pd.read_csv(out / "lesion_sizes.tsv", sep="\t")
    assert set(sizes.detector) == {"ae", "ae+postprocessed", "ae+guided"}
    metrics = json.loads((out / "metrics.json").read_text())["anomaly_guided"]
    assert metrics["pseudo"] == "threshold" and 0 < metrics["pseudo_label_fraction"] < 1
    failed = run_cli("anomaly", "guided", run, "--unlabelled", sets / "unlabelled", "--test", sets / "test",
                     "--out", tmp_path / "g2", "--pseudo", "oracle")
    failed.expect_error("unknown pseudo-label source")
    failed = run_cli("anomaly", "guided", sets / "test", "--unlabelled", sets / "unlabelled", "--test",
                     sets / "test", "--out", tmp_path / "g2")
    failed.expect_error("holds no fitted detector")
    assert not (tmp_path / "g2").exists()


def test_bad_input(run_cli, sets, tmp_path):
    out = tmp_path / "bad"

    def supervised(train, test=sets / "test", *extra):
        return run_cli("anomaly", "supervised", "--train", train, "--test", test, "--out", out, "--epochs", "1", *extra)

    supervised(sets / "healthy").expect_error("all empty")
    bare = tmp_path / "bare"
    bare.mkdir()
    Image.new("L", (32, 32)).save(bare / "a.png")
    supervised(bare).expect_error("has no lesion masks")
    broken = tmp_path / "broken"
    write_slice_set(broken, 4, size=32, lesions=True, lesion_fraction=1.0, seed=1)
    Image.new("L", (16, 16)).save(broken / pd.read_csv(broken / "meta.tsv", sep="\t")["mask"][0])
    supervised(broken).expect_error("shape mismatch")
    supervised(sets / "labelled", sets / "labelled", "--size-edges", "16,4").expect_error("increasing")
    assert not out.exists() and not list(tmp_path.glob(".bad.*"))
    out.mkdir()
    (out / "x").write_text("")
    supervised(sets / "labelled").expect_error("not empty")
