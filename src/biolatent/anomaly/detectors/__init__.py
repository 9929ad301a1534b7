"""Anomaly detectors: fitted on healthy samples only, ``score(x)`` higher = more anomalous."""

from biolatent.anomaly.detectors.registry import DETECTORS, IMAGE_DETECTORS, build_detector, build_for, load_detector

__all__ = ["DETECTORS", "IMAGE_DETECTORS", "build_detector", "build_for", "load_detector"]
