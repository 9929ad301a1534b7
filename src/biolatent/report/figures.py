"""Figures -> base64 PNG for inlining in HTML, and the training-curve figure."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from biolatent.errors import DataError
from biolatent.figures import new_figure

NON_METRIC_COLUMNS = ("epoch", "time_s", "step")


def figure_to_base64(figure: Figure, dpi: int = 100) -> str:
    """Render ``figure`` as PNG and return the base64 text (ASCII, no ``data:`` prefix)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def png_file_to_base64(path: str | Path) -> str:
    """Base64 text of an existing PNG file; DataError if it is not a PNG."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DataError(f"{path} is not a PNG file")
    return base64.b64encode(data).decode("ascii")


def read_history(path: str | Path) -> pd.DataFrame:
    """``history.tsv``: an ``epoch`` column and numeric metric columns; DataError otherwise."""
    try:
        table = pd.read_csv(path, sep="\t")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if "epoch" not in table.columns or table.empty:
        raise DataError(f"{path} has no 'epoch' column or no rows")
    return table


def history_metrics(history: pd.DataFrame) -> list[str]:
    """Numeric columns with at least one finite value, except epoch / timing columns."""
    return [
        column for column in history.columns
        if column not in NON_METRIC_COLUMNS and pd.api.types.is_numeric_dtype(history[column])
        and np.isfinite(history[column].to_numpy(dtype=float)).any()
    ]


def history_figure(history: pd.DataFrame, columns_per_row: int = 3) -> Figure:
    """Training curves: one panel per metric against epoch."""
    metrics = history_metrics(history)
    if not metrics:
        raise DataError("history.tsv has no numeric metric column to plot")
    n_cols = min(columns_per_row, len(metrics))
    n_rows = -(-len(metrics) // n_cols)
    figure = new_figure(3.6 * n_cols, 2.8 * n_rows)
    axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
    epochs = history["epoch"].to_numpy(dtype=float)
    for ax, metric in zip(axes, metrics, strict=False):
        ax.plot(epochs, history[metric].to_numpy(dtype=float), marker="." if len(epochs) < 50 else None)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    return figure
