"""The one detector registry: the names of an anomaly config's ``method.name``, all behind one contract
(``anomaly.detectors.base.Detector``: fit, score, score_maps where the data has space or time, weights-only
save and ``load_detector``).

Feature detectors (``FEATURE_DETECTORS``: embeddings, tables, windows of a series) and the image detectors of
``anomaly.image`` (``IMAGE_DETECTORS``: image2d and volumes) are built by ``build_detector`` alike; the image
detectors are named here (not imported) so that the registry does not import torch models.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from biolatent.anomaly.detectors.anomaly_transformer import AnomalyTransformerDetector
from biolatent.anomaly.detectors.base import WEIGHTS, Detector, FeatureDetector
from biolatent.anomaly.detectors.iforest import IsolationForestDetector
from biolatent.anomaly.detectors.knn import KnnDetector
from biolatent.anomaly.detectors.mahalanobis import MahalanobisDetector
from biolatent.errors import ConfigError, DataError

FEATURE_DETECTORS: dict[str, type[FeatureDetector]] = {
    "mahalanobis": MahalanobisDetector,
    "knn": KnnDetector,
    "iforest": IsolationForestDetector,
    "anomaly_transformer": AnomalyTransformerDetector,
}
# the image detectors of anomaly.image (``KINDS`` of its detector module; a test checks the two agree)
IMAGE_DETECTORS = ("ae", "vae", "cevae", "ddpm", "masked_diffusion", "reverse_distillation", "patchcore")
IMAGE_MODALITIES = ("image2d", "volume3d", "volume")
LEGACY_IMAGE_NAME = "image_reconstruction"  # detector.json ``name`` of image detectors saved before this registry


def _image_detector(kind: str, **params: Any) -> Detector:
    from biolatent.anomaly.image.detector import ImageReconstructionDetector

    return ImageReconstructionDetector(kind, **params)


DETECTORS: dict[str, Callable[..., Detector]] = {
    **FEATURE_DETECTORS,
    **{kind: partial(_image_detector, kind) for kind in IMAGE_DETECTORS},
}


def build_detector(name: str, **params: Any) -> Detector:
    """``DETECTORS[name](**params)``; unknown names or parameters are one-line ConfigErrors."""
    if name not in DETECTORS:
        raise ConfigError(f"method.name: unknown detector {name!r} (valid: {', '.join(DETECTORS)})")
    if name in FEATURE_DETECTORS:
        cls = FEATURE_DETECTORS[name]
        valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(f"method: {name} has no parameter {', '.join(unknown)} "
                              f"(valid: {', '.join(valid) or 'none'})")
    return DETECTORS[name](**params)


def load_detector(folder: str | Path) -> Detector:
    """Any registered detector saved by ``Detector.save`` (``detector.safetensors`` + ``detector.json`` through
    ``biolatent.train.checkpoint.load_state``; no pickle)."""
    from biolatent.train.checkpoint import load_state

    path = Path(folder) / WEIGHTS
    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise DataError(f"{folder} holds no fitted detector (detector.json + detector.safetensors)")
    tensors, meta = load_state(path)
    name = meta.get("name")
    if name in FEATURE_DETECTORS:
        return FEATURE_DETECTORS[name].from_state(tensors, meta)
    if name in IMAGE_DETECTORS or name == LEGACY_IMAGE_NAME:
        from biolatent.anomaly.image.detector import ImageReconstructionDetector

        return ImageReconstructionDetector.from_state(tensors, meta)
    raise DataError(f"{folder}: detector.json names an unknown detector {name!r} (valid: {', '.join(DETECTORS)})")


def build_for(modality: str, name: str, params: dict[str, Any]) -> Detector:
    """The detector ``name`` for data of ``modality``: feature detectors for series/features, image detectors
    for image2d and volumes; a name that does not fit the modality is a one-line ConfigError."""
    if modality in IMAGE_MODALITIES:
        if name not in IMAGE_DETECTORS:
            raise ConfigError(f"method.name: {name!r} does not work on {modality} data "
                              f"(valid: {', '.join(IMAGE_DETECTORS)})")
        return build_detector(name, **params)
    if name in IMAGE_DETECTORS:
        raise ConfigError(f"method.name: {name!r} works on image2d and volume3d data only (valid for "
                          f"{modality}: {', '.join(FEATURE_DETECTORS)})")
    return build_detector(name, **params)
