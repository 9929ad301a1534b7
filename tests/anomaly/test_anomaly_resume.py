"""``biolatent anomaly fit --resume``: a detector training killed after epoch k continues from k, as pretrain does."""

from __future__ import annotations

import importlib
import json

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from biolatent.anomaly.images import write_slice_set
from biolatent.workflows.anomaly import fit_from_file

fit_module = importlib.import_module("biolatent.train.fit")  # the module (biolatent.train.fit is also the function)


class _SimulatedCrash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slices") / "healthy"
    write_slice_set(folder, 16, size=32, seed=0)
    return folder


def _config(tmp_path, healthy, **train) -> str:
    path = tmp_path / "ae.yaml"
    path.write_text(yaml.safe_dump({"data": {"modality": "image2d", "path": str(healthy), "image_size": 32},
                                    "method": {"name": "ae"},
                                    "train": {"epochs": 3, "batch_size": 8, "warmup_epochs": 1, **train}}))
    return str(path)


def _crash_after(monkeypatch, epochs: int) -> None:
    """Kill the training right after the checkpoint of epoch ``epochs`` is written, as a power cut would."""
    save = fit_module.save_training_state

    def save_then_crash(path, module, optimizer, state):
        save(path, module, optimizer, state)
        if state["epoch"] == epochs:
            raise _SimulatedCrash("power cut")

    monkeypatch.setattr(fit_module, "save_training_state", save_then_crash)


def test_a_killed_detector_training_resumes_where_it_stopped(run_cli, healthy, tmp_path, monkeypatch):
    config = _config(tmp_path, healthy)
    quiet = {"say": lambda _: None}
    fit_from_file(config, tmp_path / "unbroken", **quiet)

    crashed = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        _crash_after(patch, 2)
        with pytest.raises(_SimulatedCrash):
            fit_from_file(config, crashed, **quiet)
    assert (crashed / "checkpoints" / "last.safetensors").is_file()
    assert not (crashed / "anomaly.json").exists() and not (crashed / "detector.safetensors").exists()
    assert pd.read_csv(crashed / "history.tsv", sep="\t")["epoch"].tolist() == [1, 2]
    run_cli("anomaly", "fit", config, "--out", crashed).expect_error("is not empty", "--resume")

    result = run_cli("anomaly", "fit", config, "--out", crashed, "--resume")
    assert result.code == 0, result.err
    assert pd.read_csv(crashed / "history.tsv", sep="\t")["epoch"].tolist() == [1, 2, 3]  # continued from epoch 2
    runs = (tmp_path / "unbroken", crashed)
    a, b = (load_file(str(run / "detector.safetensors")) for run in runs)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    thresholds = [json.loads((run / "anomaly.json").read_text())["threshold"] for run in runs]
    assert thresholds[0] == pytest.approx(thresholds[1], rel=1e-4)
    run_cli("anomaly", "fit", config, "--out", crashed, "--resume").expect_error("already holds a fitted detector")


def test_resume_needs_a_checkpoint_and_the_same_config(run_cli, healthy, tmp_path, monkeypatch):
    config = _config(tmp_path, healthy, epochs=2)
    run_cli("anomaly", "fit", config, "--out", tmp_path / "empty", "--resume").expect_error(
        "nothing to resume in", "checkpoints/last.safetensors")
    assert not (tmp_path / "empty").exists()
    with monkeypatch.context() as patch:
        _crash_after(patch, 1)
        with pytest.raises(_SimulatedCrash):
            fit_from_file(config, tmp_path / "run", say=lambda _: None)
    run_cli("anomaly", "fit", config, "--out", tmp_path / "run", "--resume", "--set", "train.lr=0.5").expect_error(
        "only train.epochs may change")
    # a non-gradient detector has nothing to resume
    path = tmp_path / "patchcore.yaml"
    path.write_text(yaml.safe_dump({"data": {"modality": "image2d", "path": str(healthy), "image_size": 32},
                                    "method": {"name": "patchcore"}}))
    run_cli("anomaly", "fit", path, "--out", tmp_path / "pc", "--resume").expect_error("nothing to resume")
