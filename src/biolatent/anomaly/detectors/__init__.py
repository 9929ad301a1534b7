"""Anomaly detectors: fitted on healthy samples only, ``score(x)`` higher = more anomalous; one registry, one
contract (``base.Detector``)."""

from biolatent.anomaly.detectors.base import Detector
from biolatent.anomaly.detectors.registry import (
    DETECTORS,
    FEATURE_DETECTORS,
    IMAGE_DETECTORS,
    build_detector,
    build_for,
    load_detector,
)

__all__ = ["DETECTORS", "FEATURE_DETECTORS", "IMAGE_DETECTORS", "Detector", "build_detector", "build_for",
           "load_detector"]
