"""Anomaly detectors: fitted on healthy samples only, ``score(x)`` higher = more anomalous."""

from biolatent.anomaly.detectors.registry import DETECTORS, build_detector, load_detector

__all__ = ["DETECTORS", "build_detector", "load_detector"]
