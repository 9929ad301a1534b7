"""The supervised and guided segmenters get the unsupervised detectors' epoch budget, and record it."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import yaml

from biolatent.anomaly.images import write_slice_set
from biolatent.errors import DataError
from biolatent.workflows.anomaly_segmentation import DETECTOR_EPOCHS, detector_epochs, resolve_epochs

ROOT = Path(__file__).resolve().parents[2]


def test_the_default_budget_is_the_slice_detectors_configs():
    for name in ("slices_ae", "slices_vae", "slices_cevae"):
        assert detector_epochs(ROOT / "configs" / "anomaly" / f"{name}.yaml") == DETECTOR_EPOCHS
    assert resolve_epochs(None, None)[0] == DETECTOR_EPOCHS
    assert resolve_epochs(7, None) == (7, "epochs given")
    config = ROOT / "configs" / "anomaly" / "slices_ddpm.yaml"
    assert resolve_epochs(None, config) == (100, f"train.epochs of {config}")
    with pytest.raises(DataError, match="not both"):
        resolve_epochs(3, config)


def test_the_supervised_reference_and_the_guided_segmenter_train_for_the_detectors_epochs(run_cli, tmp_path):
    root = tmp_path / "sets"
    write_slice_set(root / "healthy", 16, size=32, seed=0)
    write_slice_set(root / "labelled", 12, size=32, lesions=True, lesion_fraction=0.75, seed=3)
    write_slice_set(root / "test", 8, size=32, lesions=True, seed=7)
    config = tmp_path / "ae.yaml"
    config.write_text(yaml.safe_dump({"data": {"modality": "image2d", "path": str(root / "healthy"), "image_size": 32},
                                      "method": {"name": "ae"}, "train": {"epochs": 2, "batch_size": 8}}))
    run = tmp_path / "run"
    assert run_cli("anomaly", "fit", config, "--out", run).code == 0
    out = tmp_path / "supervised"
    result = run_cli("anomaly", "supervised", "--train", root / "labelled", "--test", root / "test", "--out", out,
                     "--budget-from", run)
    assert result.code == 0, result.err
    metrics = json.loads((out / "metrics.json").read_text())["anomaly_supervised"]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert metrics["epochs"] == saved["epochs"] == 2 and str(run) in metrics["epochs_source"]
    guided = tmp_path / "guided"
    result = run_cli("anomaly", "guided", run, "--unlabelled", root / "labelled", "--test", root / "test",
                     "--out", guided, "--pseudo", "threshold")
    assert result.code == 0, result.err
    assert json.loads((guided / "metrics.json").read_text())["anomaly_guided"]["epochs"] == 2
    both = run_cli("anomaly", "supervised", "--train", root / "labelled", "--test", root / "test", "--out",
                   tmp_path / "both", "--budget-from", config, "--epochs", "3")
    both.expect_error("not both")


def test_the_benchmarks_give_the_segmenters_the_detectors_budget(monkeypatch, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        images = importlib.import_module("anomaly_images")
        volumes = importlib.import_module("anomaly_volumes")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import biolatent.workflows.anomaly_segmentation as segmentation

    seen: dict[str, int] = {}

    def fake(kind: str):
        def run(*args, epochs: int, **kwargs) -> Path:
            seen[kind] = epochs
            raise RuntimeError("stop")
        return run

    monkeypatch.setattr(segmentation, "run_supervised", fake("supervised"))
    args = images.parse_args([])
    with pytest.raises(RuntimeError, match="stop"):
        images._references(tmp_path, args, [])
    assert args.epochs == 20 and seen == {"supervised": 20}  # the published run's budget
    detectors: dict[str, int] = {}

    def fit(name: str, data: dict, root: Path, epochs: int, *rest, run_name: str, **options) -> tuple[Path, int, float]:
        detectors[f"{name} (tuned)" if "-lr" in run_name else name] = epochs  # a grid point's run: NAME-MODE-bB-lrL
        return root / name, epochs, 0.0

    def evaluate(name: str, *rest) -> tuple[dict, None]:
        return {"detector": name, "voxel_auroc": 0.5}, None

    monkeypatch.setattr(volumes, "write_brain_set", lambda *args, **kwargs: None)
    monkeypatch.setattr(volumes, "fit_detector", fit)
    monkeypatch.setattr(volumes, "evaluate_detector", evaluate)
    def reference(root: Path, size: int, epochs: int, **kwargs) -> dict:
        seen["volumes"] = epochs
        raise RuntimeError("stop")

    monkeypatch.setattr(volumes, "supervised_reference", reference)
    with pytest.raises(RuntimeError, match="stop"):
        volumes.main(["--detectors", "ae", "--out-dir", str(tmp_path)])
    # the budget of the done-when run (10 epochs), whether a model is tuned on the grid or not
    assert seen["volumes"] == detectors["ae (tuned)"] == 10
    with pytest.raises(RuntimeError, match="stop"):
        volumes.main(["--detectors", "ae", "--tuned", "", "--out-dir", str(tmp_path)])
    assert seen["volumes"] == detectors["ae"] == 10
