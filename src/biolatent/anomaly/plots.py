"""Figures of anomaly scores: a series with its point scores and threshold, score histograms, ROC and PR."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def scores_figure(table: pd.DataFrame, state: dict[str, Any]) -> Figure:
    """Series: values (labelled anomalies shaded) over point scores with the threshold; features: histograms."""
    threshold = state["threshold"]
    if state["modality"] == "series":
        figure = Figure(figsize=(10, 4.5))
        top, bottom = figure.subplots(2, 1, sharex=True)
        x = table["position"].to_numpy()
        top.plot(x, table["value"], lw=0.7, color="0.2")
        for axis in (top, bottom):
            if "label" in table:
                axis.fill_between(x, 0, 1, where=table["label"].to_numpy() > 0, color="tab:red", alpha=0.25,
                                  transform=axis.get_xaxis_transform(), label="labelled anomaly")
        bottom.plot(x, table["score"], lw=0.7, color="tab:blue")
        bottom.axhline(threshold, color="tab:orange", ls="--", label="healthy-validation threshold")
        top.set_ylabel("value")
        bottom.set_ylabel("anomaly score")
        bottom.set_xlabel("position")
        bottom.legend(loc="upper left", fontsize=8)
    else:
        figure = Figure(figsize=(6, 4))
        axis = figure.subplots()
        groups = [(table["score"], "all")]
        if "label" in table:
            groups = [(table.loc[table["label"] == value, "score"], name) for value, name in ((0, "healthy"),
                                                                                            (1, "anomalous"))]
        for values, name in groups:
            axis.hist(values, bins=30, alpha=0.6, label=name)
        axis.axvline(threshold, color="tab:orange", ls="--", label="healthy-validation threshold")
        axis.set_xlabel("anomaly score")
        axis.set_ylabel("samples")
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def curves_figure(scores: np.ndarray, labels: np.ndarray, detector: str) -> Figure:
    """ROC and precision-recall curves (scikit-learn) side by side."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    figure = Figure(figsize=(9, 4))
    left, right = figure.subplots(1, 2)
    fpr, tpr, _ = roc_curve(labels, scores)
    left.plot(fpr, tpr, label=f"{detector} (AUROC {auc(fpr, tpr):.3f})")
    left.plot([0, 1], [0, 1], color="0.6", ls=":")
    left.set_xlabel("false-positive rate")
    left.set_ylabel("true-positive rate")
    left.legend(fontsize=8)
    precision, recall, _ = precision_recall_curve(labels, scores)
    right.plot(recall, precision)
    right.axhline(np.mean(labels), color="0.6", ls=":", label="prevalence")
    right.set_xlabel("recall")
    right.set_ylabel("precision")
    right.legend(fontsize=8)
    figure.tight_layout()
    return figure


def map_grid_figure(images: np.ndarray, maps: np.ndarray, masks: np.ndarray | None, ids: list[str], *,
                    labels: np.ndarray | None = None, n: int = 6) -> Figure:
    """Rows: image, anomaly map (and ground-truth mask); columns: up to ``n`` samples, anomalous ones first."""
    order = np.arange(len(ids))
    if labels is not None:
        order = np.r_[np.flatnonzero(labels), np.flatnonzero(~labels)]
    order = order[:n]
    rows = 3 if masks is not None else 2
    figure = Figure(figsize=(1.8 * len(order), 1.9 * rows))
    axes = np.atleast_2d(figure.subplots(rows, len(order), squeeze=False))
    high = float(np.quantile(maps, 0.999)) or 1.0
    for column, i in enumerate(order):
        panels = [(images[i].mean(axis=0), "gray", 1.0), (maps[i], "inferno", high)]
        if masks is not None:
            panels.append((masks[i].astype(float), "gray", 1.0))
        for row, (panel, cmap, vmax) in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(panel, cmap=cmap, vmin=0.0, vmax=vmax)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[0, column].set_title(str(ids[i]), fontsize=7)
    for row, name in enumerate(["image", "anomaly map", "ground truth"][:rows]):
        axes[row, 0].set_ylabel(name, fontsize=8)
    figure.tight_layout()
    return figure
