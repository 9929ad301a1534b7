"""Figures of a clustering: the embedding coloured by cluster, and a heatmap of association q-values.

The scatter reuses the report's UMAP (``biolatent.discover.umap_plot``: fixed seed, at most 5000 points;
McInnes, Healy & Melville 2018) or, for quick looks, the first two principal components. PNGs are written
atomically (``biolatent.rundir.atomic_path``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from biolatent.discover.umap_plot import MAX_POINTS, umap_coordinates, umap_figure
from biolatent.errors import DataError
from biolatent.figures import new_figure
from biolatent.rundir import atomic_path

Q_FLOOR = 1e-300  # -log10 of a q-value that underflowed to 0 is drawn as 300
COLOUR_CAP = 20.0  # colour scale saturates at q = 1e-20 so that modest associations stay visible


def save_png(figure: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``figure`` as a PNG, atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def projection_2d(
    embeddings: np.ndarray, how: Literal["umap", "pca"] = "umap", seed: int = 0, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray, str]:
    """2-D coordinates, the sample index they belong to, and the axis name ("UMAP" or "PC")."""
    if how == "umap":
        coords, index = umap_coordinates(embeddings, max_points=max_points, seed=seed)
        return coords, index, "UMAP"
    if how != "pca":
        raise DataError(f"unknown projection {how!r} (choose umap or pca)")
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3 or not np.isfinite(x).all():
        raise DataError(f"a PCA projection needs finite (samples, dimensions) embeddings, got shape {x.shape}")
    index = np.arange(x.shape[0])
    if x.shape[0] > max_points:
        index = np.sort(np.random.default_rng(seed).choice(x.shape[0], max_points, replace=False))
    centred = x[index] - x[index].mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    if coords.shape[1] == 1:
        coords = np.hstack([coords, np.zeros_like(coords)])
    return coords, index, "PC"


def cluster_scatter_figure(
    embeddings: np.ndarray, labels: np.ndarray, *, projection: Literal["umap", "pca"] = "umap", seed: int = 0
) -> Figure:
    """Embedding scatter (UMAP or PCA) with one colour per cluster."""
    labels = np.asarray(labels)
    if len(labels) != len(embeddings):
        raise DataError(f"{len(labels)} cluster labels for {len(embeddings)} embedded samples")
    coords, index, axis = projection_2d(embeddings, projection, seed)
    order = [str(c) for c in np.unique(labels)]
    values = pd.Series(pd.Categorical(labels[index].astype(str), categories=order))
    figure = umap_figure(coords, values, "categorical", f"clusters (n = {len(order)})")
    ax = figure.axes[0]
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    return figure


def association_heatmap_figure(table: pd.DataFrame, alpha: float = 0.05) -> Figure:
    """Heatmap of −log10 q, one row per metadata column, annotated with q and the effect size."""
    if table.empty:
        raise DataError("no association was tested: nothing to draw")
    rows = table.sort_values("q", kind="mergesort")
    scores = -np.log10(np.clip(rows["q"].to_numpy(dtype=float), Q_FLOOR, 1.0))
    figure = new_figure(4.8, 0.8 + 0.35 * len(rows))
    ax = figure.subplots()
    vmax = max(min(float(scores.max()), COLOUR_CAP), -np.log10(alpha) * 2)
    image = ax.imshow(scores.reshape(-1, 1), aspect="auto", cmap="magma_r", vmin=0.0, vmax=vmax)
    for i, row in enumerate(rows.itertuples()):
        star = "*" if row.q < alpha else ""
        ax.text(0, i, f"q={row.q:.2g}{star}  {row.effect_measure}={row.effect:.2f}", ha="center", va="center",
                fontsize="small", color="white" if scores[i] > vmax / 2 else "black")
    ax.set_yticks(range(len(rows)), [f"{c} ({t})" for c, t in zip(rows["column"], rows["test"], strict=True)])
    ax.set_xticks([0], ["cluster association"])
    figure.colorbar(image, ax=ax, label="−log10 q (BH)", extend="max" if scores.max() > vmax else "neither")
    ax.set_title(f"* q < {alpha}")
    return figure


def write_cluster_figures(
    out_dir: str | Path,
    embeddings: np.ndarray,
    labels: np.ndarray,
    associations: pd.DataFrame,
    *,
    projection: Literal["umap", "pca"] = "umap",
    seed: int = 0,
) -> list[Path]:
    """``clusters_<projection>.png`` and, when anything was tested, ``associations.png``; returns the paths."""
    out_dir = Path(out_dir)
    paths = [save_png(cluster_scatter_figure(embeddings, labels, projection=projection, seed=seed),
                      out_dir / f"clusters_{projection}.png")]
    if not associations.empty:
        paths.append(save_png(association_heatmap_figure(associations), out_dir / "associations.png"))
    return paths
