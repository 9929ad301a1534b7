"""Detector registry: the names used in an anomaly config's ``method.name``."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from biolatent.anomaly.detectors.anomaly_transformer import AnomalyTransformerDetector
from biolatent.anomaly.detectors.base import FeatureDetector
from biolatent.anomaly.detectors.iforest import IsolationForestDetector
from biolatent.anomaly.detectors.knn import KnnDetector
from biolatent.anomaly.detectors.mahalanobis import MahalanobisDetector
from biolatent.errors import ConfigError, DataError

DETECTORS: dict[str, type[FeatureDetector]] = {
    "mahalanobis": MahalanobisDetector,
    "knn": KnnDetector,
    "iforest": IsolationForestDetector,
    "anomaly_transformer": AnomalyTransformerDetector,
}


def build_detector(name: str, **params: Any) -> FeatureDetector:
    """``DETECTORS[name](**params)``; unknown names or parameters are one-line ConfigErrors."""
    if name not in DETECTORS:
        raise ConfigError(f"method.name: unknown detector {name!r} (valid: {', '.join(DETECTORS)})")
    cls = DETECTORS[name]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"method: {name} has no parameter {', '.join(unknown)} (valid: {', '.join(valid) or 'none'})")
    return cls(**params)


def load_detector(folder: str | Path) -> FeatureDetector:
    """A detector saved by ``FeatureDetector.save`` (safetensors + json; no pickle)."""
    from safetensors.numpy import load_file

    from biolatent.rundir import read_json

    folder = Path(folder)
    if not (folder / "detector.json").is_file() or not (folder / "detector.safetensors").is_file():
        raise DataError(f"{folder} holds no fitted detector (detector.json + detector.safetensors)")
    meta = read_json(folder / "detector.json")
    detector = build_detector(meta["name"], **meta["params"])
    detector.n_features = int(meta["n_features"])
    detector.restore(load_file(str(folder / "detector.safetensors")))
    return detector


# the image detectors of anomaly.image (``KINDS`` of its detector module; named here so that the registry does not
# import torch models: a test checks the two agree); image2d, and volume3d slice by slice
IMAGE_DETECTORS = ("ae", "vae", "cevae", "ddpm", "masked_diffusion", "reverse_distillation",
                   "patchcore")
IMAGE_MODALITIES = ("image2d", "volume3d")


def build_for(modality: str, name: str, params: dict[str, Any]):
    """The detector ``name`` for data of ``modality``: feature detectors for series/features, image detectors
    for image2d and volume3d; a name that does not fit the modality is a one-line ConfigError."""
    if modality in IMAGE_MODALITIES:
        if name not in IMAGE_DETECTORS:
            raise ConfigError(f"method.name: {name!r} does not work on {modality} data "
                              f"(valid: {', '.join(IMAGE_DETECTORS)})")
        from biolatent.anomaly.image.detector import ImageReconstructionDetector

        return ImageReconstructionDetector(name, **params)
    if name in IMAGE_DETECTORS:
        raise ConfigError(f"method.name: {name!r} works on {' and '.join(IMAGE_MODALITIES)} data only (valid for "
                          f"{modality}: {', '.join(DETECTORS)})")
    return build_detector(name, **params)
