"""UMAP of the embeddings, coloured by each metadata column.

Which columns are drawn: categorical / text / boolean columns with 2+ levels that are not unique per sample
(ids), and numeric columns that are not constant. A numeric column is treated as an id (skipped) only when
it holds distinct integers for every sample; distinct floats (e.g. a continuous score) are drawn.
Categorical columns with at most ``MAX_LEGEND_LEVELS`` levels get a legend, numeric columns a colourbar.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from biolatent.errors import DataError
from biolatent.figures import new_figure

MAX_LEGEND_LEVELS = 30
MAX_POINTS = 5000
MIN_POINTS = 5


def plottable_columns(obs: pd.DataFrame) -> list[tuple[str, str]]:
    """``(column, "categorical" | "numeric")`` for every column worth colouring a UMAP by.

    A numeric column is coloured as categories when ``evaluate`` would treat it as classes
    (``data.columns.label_task``: e.g. a batch coded 1..5), with a continuous colour bar otherwise.
    """
    from biolatent.data.columns import label_task

    chosen = []
    for column in obs.columns:
        values = obs[column]
        n_unique = values.nunique(dropna=True)
        if n_unique < 2:
            continue
        is_numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if is_numeric:
            finite = values.dropna().to_numpy(dtype=float)
            id_like = n_unique == len(values) and np.all(finite == np.round(finite))
            if not id_like:
                chosen.append((str(column), "numeric" if label_task(values) == "regression" else "categorical"))
        elif n_unique < len(values):
            chosen.append((str(column), "categorical"))
    return chosen


def umap_coordinates(
    embeddings: np.ndarray, max_points: int = MAX_POINTS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """2-D UMAP (fixed ``random_state``) of at most ``max_points`` samples -> ``(coords, sample_index)``."""
    import umap

    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < MIN_POINTS:
        raise DataError(f"UMAP needs at least {MIN_POINTS} embedded samples, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("embeddings hold NaN or inf values")
    index = np.arange(x.shape[0])
    if x.shape[0] > max_points:
        index = np.sort(np.random.default_rng(seed).choice(x.shape[0], max_points, replace=False))
    n_neighbors = int(min(15, index.size - 1))
    reducer = umap.UMAP(n_neighbors=n_neighbors, random_state=seed, n_jobs=1,
                        init="spectral" if index.size > n_neighbors + 2 else "random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coords = reducer.fit_transform(x[index])
    return np.asarray(coords), index


def _point_size(n: int) -> float:
    return float(np.clip(3000 / max(n, 1), 1.0, 30.0))


def umap_figure(coords: np.ndarray, values: pd.Series, kind: str, title: str) -> Figure:
    """Scatter of ``coords`` coloured by ``values`` (aligned to the rows of ``coords``)."""
    figure = new_figure(6.0, 4.6)
    ax = figure.subplots()
    size = _point_size(coords.shape[0])
    if kind == "numeric":
        numbers = values.to_numpy(dtype=float)
        missing = ~np.isfinite(numbers)
        if missing.any():
            ax.scatter(*coords[missing].T, s=size, c="lightgrey", linewidths=0, label="missing")
        points = ax.scatter(*coords[~missing].T, s=size, c=numbers[~missing], cmap="viridis", linewidths=0)
        figure.colorbar(points, ax=ax, label=title)
    else:
        text = values.astype(object).where(values.notna(), "NA").astype(str)
        levels = list(pd.unique(text))
        if isinstance(values.dtype, pd.CategoricalDtype):
            levels = [str(c) for c in values.cat.categories if str(c) in set(levels)] + (
                ["NA"] if "NA" in levels and "NA" not in map(str, values.cat.categories) else [])
        cmap = _colours(len(levels))
        for i, level in enumerate(levels):
            mask = (text == level).to_numpy()
            colour = "lightgrey" if level == "NA" else cmap[i]
            ax.scatter(*coords[mask].T, s=size, color=colour, linewidths=0, label=level)
        if len(levels) <= MAX_LEGEND_LEVELS:
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", frameon=False,
                      markerscale=max(1.0, 20 / size) ** 0.5, ncols=1 if len(levels) <= 15 else 2)
        else:
            ax.text(0.01, 0.01, f"{len(levels)} levels: legend omitted", transform=ax.transAxes,
                    fontsize="small")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    return figure


def _colours(n: int) -> list:
    from matplotlib import colormaps

    name = "tab10" if n <= 10 else "tab20" if n <= 20 else "gist_ncar"
    cmap = colormaps[name]
    return [cmap(i) for i in range(n)] if n <= 20 else [cmap(i / max(n - 1, 1)) for i in range(n)]
