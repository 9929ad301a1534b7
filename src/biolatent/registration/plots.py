"""Figures of a few registered pairs: checkerboards of fixed vs moving before and after registration, and the
Jacobian determinant of the field (axial slice through the centre; folds, Jacobian <= 0, outlined)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure


@dataclass
class PairView:
    """One pair on the fixed grid (x, y, z): ``moving`` (before), ``warped`` (after), ``jacobian``."""

    name: str
    fixed: np.ndarray
    moving: np.ndarray
    warped: np.ndarray
    jacobian: np.ndarray


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """``a`` on the even squares of a ``tiles`` x ``tiles`` board, ``b`` on the odd ones (2D arrays)."""
    if a.shape != b.shape:
        raise ValueError(f"checkerboard of shapes {a.shape} and {b.shape}")
    rows = (np.arange(a.shape[0]) * tiles // a.shape[0])[:, None]
    cols = (np.arange(a.shape[1]) * tiles // a.shape[1])[None, :]
    return np.where((rows + cols) % 2 == 0, a, b)


def _axial(volume: np.ndarray) -> np.ndarray:
    """The axial slice (constant z) through the centre, displayed with y up."""
    return volume[:, :, volume.shape[2] // 2].T


def pairs_figure(pairs: Sequence[PairView], method: str) -> Figure:
    """Rows: pairs; columns: fixed, checkerboard before, checkerboard after (``method``), Jacobian determinant."""
    figure = Figure(figsize=(10, 2.6 * max(1, len(pairs))))
    axes = np.atleast_2d(figure.subplots(max(1, len(pairs)), 4, squeeze=False))
    for row, pair in enumerate(pairs):
        fixed = _axial(pair.fixed)
        panels = [(fixed, "fixed"), (checkerboard(fixed, _axial(pair.moving)), "before (checkerboard)"),
                  (checkerboard(fixed, _axial(pair.warped)), f"after: {method}")]
        high = float(np.percentile(pair.fixed, 99.5)) or 1.0
        for column, (image, title) in enumerate(panels):
            axes[row, column].imshow(image, cmap="gray", vmin=0.0, vmax=high, origin="lower")
            axes[row, column].set_title(f"{pair.name}\n{title}" if column == 0 else title, fontsize=8)
        jacobian = _axial(pair.jacobian)
        shown = axes[row, 3].imshow(jacobian, cmap="RdBu_r", vmin=0.0, vmax=2.0, origin="lower")
        if (jacobian <= 0).any():
            axes[row, 3].contour((jacobian <= 0).astype(float), levels=[0.5], colors="black", linewidths=0.8)
        axes[row, 3].set_title("Jacobian determinant", fontsize=8)
        figure.colorbar(shown, ax=axes[row, 3], fraction=0.046)
        for axis in axes[row]:
            axis.set_xticks([])
            axis.set_yticks([])
    figure.tight_layout()
    return figure
