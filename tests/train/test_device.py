"""train.device: a trained model is applied on the accelerator its train section trains on."""

from __future__ import annotations

import numpy as np
import torch

from biolatent.config import TrainConfig
from biolatent.train.device import inference_device, uses_cuda


def test_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for accelerator in ("auto", "gpu", "cuda", "cpu"):
        assert not uses_cuda(TrainConfig(accelerator=accelerator))
        assert inference_device(TrainConfig(accelerator=accelerator)) == torch.device("cpu")
    assert inference_device(None) == torch.device("cpu")


def test_gpu_when_the_train_section_trains_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for accelerator in ("auto", "gpu", "cuda"):
        assert inference_device(TrainConfig(accelerator=accelerator)) == torch.device("cuda")
    assert inference_device(TrainConfig(accelerator="cpu")) == torch.device("cpu")
    assert inference_device(TrainConfig(accelerator="mps")) == torch.device("cpu")


def test_detectors_move_and_score_the_same(monkeypatch):
    from biolatent.anomaly.detectors.anomaly_transformer import AnomalyTransformerDetector
    from biolatent.anomaly.image.detector import ImageReconstructionDetector

    rng = np.random.default_rng(0)
    images = rng.random((6, 1, 32, 32)).astype(np.float32)
    detector = ImageReconstructionDetector("ae", widths=[4, 8]).fit(
        images, train=TrainConfig(epochs=1, batch_size=3, accelerator="cpu"))
    before = detector.score(images)
    assert detector.to("cpu") is detector
    np.testing.assert_array_equal(detector.score(images), before)
    assert next(detector.method.parameters()).device == torch.device("cpu")
    series = AnomalyTransformerDetector()
    assert series.to("cpu") is series  # unfitted: nothing to move
