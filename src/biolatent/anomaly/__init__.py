"""Anomaly detection learned from healthy data only: detectors, scores, thresholds and honest metrics."""
