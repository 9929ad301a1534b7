"""Figure helpers shared by every figure module (evaluate, discover, anomaly, registration, report): a pyplot-free
Agg figure and its atomic PNG save. Below the analysis modules, so that none imports another for them."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from biolatent.rundir import atomic_path


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure on an Agg canvas (safe in threads and without a display)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``figure`` as PNG at ``path`` atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return Path(path)
