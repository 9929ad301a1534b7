"""Shared by the anomaly benchmarks (2D slices and 3D volumes): training settings per image detector, and one
detector's fit / score / evaluate run with its timings.

Reconstruction models train for the benchmark's epoch budget at lr 1e-2; the diffusion models for 10/3 of it
at lr 5e-3 (their CPU sweeps on 32-px slices: 30 epochs left ddpm at pixel AUROC 0.76, 100 epochs reached 0.92)
and reverse distillation for 2/3 of it at lr 1e-3 (20 epochs sufficed, higher rates were unstable);
PatchCore is not trained (memory bank of a random frozen ResNet, the weak baseline; an SSL encoder is an
option of the detector, see ``configs/anomaly/slices_patchcore.yaml``). The supervised reference and the guided
segmenter of the benchmarks train for the benchmark's epoch budget (the reconstruction models' epochs), never more.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from biolatent.workflows.anomaly import LESION_SIZES_FILE, evaluate_anomaly, fit_anomaly, score_anomaly

LR = {"ae": 0.01, "vae": 0.01, "cevae": 0.01, "ddpm": 5e-3, "masked_diffusion": 5e-3, "reverse_distillation": 1e-3,
      "patchcore": 1e-3}
EPOCH_FACTOR = {"ddpm": 10 / 3, "masked_diffusion": 10 / 3, "reverse_distillation": 2 / 3, "patchcore": 1.0}


def train_settings(name: str, epochs: int) -> dict[str, Any]:
    """The ``train`` section of the detector's anomaly config for a benchmark budget of ``epochs``."""
    return {"epochs": max(1, round(epochs * EPOCH_FACTOR.get(name, 1.0))), "batch_size": 16, "lr": LR.get(name, 0.01)}


def metric_values(metrics: pd.DataFrame, detector: str) -> dict[str, float]:
    """``{level}_{metric}: value`` of one detector's rows of an anomaly_metrics.tsv table."""
    rows = metrics[metrics.detector == detector]
    return {f"{level}_{metric}": value for level, metric, value in zip(rows.level, rows.metric, rows.value,
                                                                         strict=True)}


def detection_rate(sizes: pd.DataFrame, detector: str) -> float:
    """Fraction of all lesions detected at the threshold (lesion_sizes.tsv: raw maps when both are listed)."""
    rows = sizes[(sizes.detector == detector) & (sizes.size_bin == "all")]
    if "segmentation" in sizes.columns:
        rows = rows[rows.segmentation == "raw_val_threshold"]
    return float(rows.detection_rate.iloc[0])


VALIDATION = {"fraction": 0.25, "target_fpr": 0.05}  # the healthy validation part and its false-positive rate


def fit_detector(name: str, data: dict[str, Any], root: Path, epochs: int, sections: dict[str, Any] | None = None,
                 run_name: str | None = None, method: dict[str, Any] | None = None) -> tuple[Path, int, float]:
    """Fit ``name`` on ``data`` (the config's data section) into ``root/run_name`` (default ``name``): (run folder,
    its epochs, fit seconds). ``sections``: other sections of the anomaly config (e.g. ``maps``, ``train``);
    ``method``: the detector's hyper-parameters (default: its own)."""
    from biolatent.workflows.anomaly_config import load_anomaly_config

    config = load_anomaly_config({"data": data, "method": {"name": name, **(method or {})},
                                  "train": train_settings(name, epochs),
                                  "validation": VALIDATION, **(sections or {})})
    run = root / (run_name or name)
    start = time.perf_counter()
    fit_anomaly(config, run, say=lambda _: None)
    return run, config.train.epochs, time.perf_counter() - start


def evaluate_detector(name: str, run: Path, cohort: Path, n_items: int, per_s: str,
                      ) -> tuple[dict[str, Any], pd.DataFrame]:
    """Score and evaluate the fitted ``run`` on ``cohort``: (row of metrics, lesion detection rate and items scored
    per second under ``per_s``; raw-map size table)."""
    start = time.perf_counter()
    score_anomaly(run, cohort, run / f"scored-{cohort.name}", say=lambda _: None)
    rate = n_items / (time.perf_counter() - start)
    metrics = pd.read_csv(evaluate_anomaly(run, cohort, say=lambda _: None), sep="\t")
    sizes = pd.read_csv(run / LESION_SIZES_FILE, sep="\t")
    row = {"detector": name, **metric_values(metrics, name), "lesions_detected": detection_rate(sizes, name),
           per_s: rate}
    return row, sizes[sizes.segmentation == "raw_val_threshold"].drop(columns="segmentation")


def run_detector(name: str, data: dict[str, Any], root: Path, epochs: int, n_test: int,
                 per_s: str, sections: dict[str, Any] | None = None,
                 run_name: str | None = None, method: dict[str, Any] | None = None,
                 ) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit ``name`` (``fit_detector``), score and evaluate ``root/test`` (``evaluate_detector``): (row of metrics,
    lesion detection rate, fit seconds and test items scored per second under ``per_s``; raw-map size table)."""
    run, run_epochs, fit_s = fit_detector(name, data, root, epochs, sections, run_name, method)
    row, sizes = evaluate_detector(name, run, root / "test", n_test, per_s)
    row.update({"fit_s": fit_s, "epochs": run_epochs})
    print(f"{name}: {row}", flush=True)
    return row, sizes
