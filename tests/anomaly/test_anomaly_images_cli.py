"""``biolatent anomaly`` on 2D images: simulated slices, reconstruction detectors, sample and pixel metrics."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from PIL import Image

from biolatent.anomaly.images import write_slice_set
from biolatent.errors import DataError
from biolatent.workflows.anomaly_tasks import read_image_set


def _config(tmp_path, data: dict, method: dict, **extra) -> str:
    path = tmp_path / "anomaly.yaml"
    path.write_text(yaml.safe_dump({"data": data, "method": method, **extra}))
    return str(path)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("slices")
    write_slice_set(root / "healthy", 24, size=32, seed=0)
    write_slice_set(root / "test", 16, size=32, lesions=True, seed=7)
    return root


def test_slice_set_layout(sets):
    ids, images, labels, masks = read_image_set(sets / "test", 32)
    meta = pd.read_csv(sets / "test" / "meta.tsv", sep="\t", keep_default_na=False)
    assert images.shape == (16, 1, 32, 32) and masks.shape == (16, 32, 32) and ids == meta.id.tolist()
    assert 0 < labels.sum() < 16 and (labels == masks.any(axis=(1, 2))).all()
    assert (meta.lesion_pixels.to_numpy() == masks.sum(axis=(1, 2))).all()


@pytest.mark.parametrize("detector", ["ae", "vae", "cevae"])
def test_fit_score_evaluate_images(run_cli, sets, tmp_path, detector):
    config = _config(tmp_path, {"modality": "image2d", "path": str(sets / "healthy"), "image_size": 32,
                                "lesion_column": "mask"},
                     {"name": detector}, train={"epochs": 2, "batch_size": 8})
    run = tmp_path / "run"
    result = run_cli("anomaly", "fit", config, "--out", run)
    assert result.code == 0, result.err
    result = run_cli("anomaly", "score", run, "--data", sets / "test", "--out", tmp_path / "scored")
    assert result.code == 0, result.err
    scores = pd.read_csv(tmp_path / "scored" / "scores.tsv", sep="\t")
    assert list(scores.columns[:3]) == ["id", "score", "flagged"] and len(scores) == 16
    assert (tmp_path / "scored" / "maps.png").read_bytes()[:4] == b"\x89PNG"
    assert run_cli("anomaly", "evaluate", run, "--data", sets / "test").code == 0
    metrics = pd.read_csv(run / "anomaly_metrics.tsv", sep="\t")
    assert list(metrics.columns) == ["detector", "level", "metric", "value"]
    assert set(metrics.level) == {"sample", "pixel"} and set(metrics.detector) == {detector}
    pixel = set(metrics.loc[metrics.level == "pixel", "metric"])
    assert pixel == {"auroc", "ap", "dice_val_threshold", "dice_best", "dice_postprocessed"}
    assert metrics.value.between(0, 1).all()
    assert (run / "anomaly_maps.png").is_file()
    # lesion-wise detection of the raw maps at the healthy threshold, recomputed with scikit-image's labelling
    import json

    import numpy as np
    from skimage.measure import label

    sizes = pd.read_csv(run / "lesion_sizes.tsv", sep="\t")
    assert set(sizes.segmentation) == {"raw_val_threshold", "postprocessed"}
    maps = np.load(tmp_path / "scored" / "maps.npy")
    threshold = json.loads((run / "anomaly.json").read_text())["pixel_threshold"]
    _, _, _, masks = read_image_set(sets / "test", 32)
    hits = [(maps[i][label(masks[i], connectivity=2) == k] > threshold).any()
            for i in range(len(masks)) for k in range(1, label(masks[i], connectivity=2).max() + 1)]
    overall = sizes[(sizes.segmentation == "raw_val_threshold") & (sizes.size_bin == "all")].iloc[0]
    assert overall.n_lesions == len(hits) and overall.detection_rate == pytest.approx(np.mean(hits), abs=1e-5)


def test_report_of_an_image_anomaly_run(run_cli, sets, tmp_path):
    config = _config(tmp_path, {"modality": "image2d", "path": str(sets / "healthy"), "image_size": 32,
                                "lesion_column": "mask"},
                     {"name": "ae"}, train={"epochs": 1, "batch_size": 8})
    run = tmp_path / "run"
    assert run_cli("anomaly", "fit", config, "--out", run).code == 0
    assert run_cli("anomaly", "evaluate", run, "--data", sets / "test").code == 0
    result = run_cli("report", run)
    assert result.code == 0, result.err
    html = (run / "report.html").read_text()
    for fragment in ("Anomaly detection", "Lesion-wise detection by lesion size", "ROC and precision-recall",
                     "Images, anomaly maps and ground-truth lesion masks", "fitted on healthy data only"):
        assert fragment in html
    assert html.count("data:image/png;base64") >= 3


def test_image_errors(run_cli, sets, tmp_path):
    config = _config(tmp_path, {"modality": "image2d", "path": str(sets / "test"), "image_size": 32,
                                "lesion_column": "mask"}, {"name": "ae"})
    run_cli("anomaly", "fit", config, "--out", tmp_path / "run").expect_error("lesion masks that are not empty")
    assert not (tmp_path / "run").exists()
    failed = run_cli("anomaly", "fit", _config(tmp_path, {"modality": "series", "path": "x.tsv"},
                                               {"name": "cevae"}), "--out", tmp_path / "run")
    failed.expect_error("works on image2d and volume data only")
    broken = tmp_path / "broken"
    write_slice_set(broken, 4, size=32, lesions=True, lesion_fraction=1.0, seed=1)
    mask = pd.read_csv(broken / "meta.tsv", sep="\t")["mask"][0]
    Image.new("L", (16, 16)).save(broken / mask)
    with pytest.raises(DataError, match="shape mismatch"):
        read_image_set(broken, 32)
    config = _config(tmp_path, {"modality": "image2d", "path": str(broken), "image_size": 32,
                                "lesion_column": "mask"}, {"name": "ae"})
    failed = run_cli("anomaly", "fit", config, "--out", tmp_path / "r2")
    failed.expect_error("lesion mask of 'slice-0001'", "is 16x16 but its image is 32x32 (shape mismatch)")
    assert not (tmp_path / "r2").exists()
