"""The networks of the anomaly detectors live in ``biolatent.models`` (2D and 3D where they have space): the frozen
feature pyramid and reverse distillation's one-class bottleneck and student decoder (Deng & Li 2022), the Anomaly
Transformer and its state-space branch; ``biolatent.anomaly`` defines methods (a ``forward(batch)`` loss), no other
network."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import torch
from torch import nn

import biolatent.anomaly
from biolatent.models.feature_pyramid import FeaturePyramid
from biolatent.models.resnet import ResNetEncoder
from biolatent.models.reverse_distillation import OneClassBottleneck, StudentDecoder

pytestmark = pytest.mark.filterwarnings("ignore:Found .* module.* in eval mode")  # the frozen teacher, on purpose


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_student_reconstructs_every_teacher_level(spatial_dims):
    torch.manual_seed(0)
    teacher = FeaturePyramid(ResNetEncoder(1, widths=(4, 8, 8, 8), blocks=(1, 1, 1, 1), spatial_dims=spatial_dims),
                             centre_input=True)
    bottleneck = OneClassBottleneck(teacher.channels, 8, spatial_dims)
    decoder = StudentDecoder(teacher.channels, 8, spatial_dims)
    levels = teacher(torch.rand(2, 1, *(16,) * spatial_dims))
    embedding = bottleneck(levels)
    assert embedding.shape[:2] == (2, 8) and embedding.ndim == 2 + spatial_dims
    student = decoder(embedding, [t.shape[2:] for t in levels])
    assert [s.shape for s in student] == [t.shape for t in levels]
    student[0].sum().backward()  # the student trains, the teacher does not
    assert all(p.grad is not None for p in decoder.parameters())
    assert not any(p.requires_grad for p in teacher.parameters())


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_reverse_distillation_fits_and_scores_with_the_models_networks(spatial_dims):
    from biolatent.anomaly.detectors import build_detector
    from biolatent.anomaly.image.reverse_distillation import ReverseDistillation
    from biolatent.config import TrainConfig

    images = np.clip(0.5 + 0.1 * np.random.default_rng(0).normal(size=(4, 1, *(32,) * spatial_dims)), 0, 1)
    detector = build_detector("reverse_distillation", encoder_widths=(4, 8, 8, 8), embed_dim=8,
                              spatial_dims=spatial_dims)
    detector.fit(images.astype(np.float32), train=TrainConfig(epochs=1, batch_size=2, accelerator="cpu"))
    method = detector.method
    assert isinstance(method, ReverseDistillation)
    assert isinstance(method.bottleneck, OneClassBottleneck) and isinstance(method.decoder, StudentDecoder)
    assert isinstance(method.encoder, FeaturePyramid)
    # the state_dict names of detectors saved before the networks moved to models/
    keys = method.state_dict()
    assert "bottleneck.embed.conv1.weight" in keys and "decoder.up.0.0.weight" in keys and "encoder.ready" in keys
    assert np.isfinite(detector.score(images.astype(np.float32))).all()


def test_the_anomaly_package_defines_no_network():
    """Every ``nn.Module`` class defined under ``biolatent.anomaly`` is a method: ``forward(batch)`` -> a loss."""
    found = []
    for info in pkgutil.walk_packages(biolatent.anomaly.__path__, "biolatent.anomaly."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, nn.Module):
                found.append(cls)
                params = list(inspect.signature(cls.forward).parameters)
                where = f"{cls.__module__}.{cls.__name__}"
                assert params[:2] == ["self", "batch"], f"{where} is a network: move it to models/"
    assert len(found) >= 8  # the image methods, the segmenter and the Anomaly Transformer's minimax method
