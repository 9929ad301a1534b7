"""Manhattan and QQ plots of a ``linear_gwas`` table: one PNG of each per trait, written atomically.

Genome-wide tables are thinned before drawing, as large GWAS plots usually are: every point with p < 1e-3 is
drawn, of the others at most ``MAX_BACKGROUND`` (evenly spaced in genome order for the Manhattan plot, in rank
order for the QQ plot, whose expected quantiles and lambda come from all p-values); each figure says how many
of its points it draws. At these sizes the points below 1e-3 form a solid band, so the figure looks the same
and is drawn several times faster.

Thinning (``plot_points``) and drawing (``draw_plots``) are separate steps: the points are small, so
``start_gwas_plots`` draws them in a second process (spawned: it does not inherit the parent's memory) while
the caller writes the table and clumps.
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biolatent.discover.genetics.gwas import genomic_inflation
from biolatent.rundir import atomic_path

GENOME_WIDE = 5e-8
SHOWN_LOG10_P = 3.0  # every point at or above -log10 p = 3 is drawn
MAX_BACKGROUND = 4000


def thinned(log10_p: np.ndarray, max_background: int = MAX_BACKGROUND) -> np.ndarray:
    """Positions to draw: all with -log10 p >= 3 (or not finite) and at most ``max_background`` evenly spaced
    others, in their original order."""
    log10_p = np.asarray(log10_p, float)
    strong = ~(log10_p < SHOWN_LOG10_P)
    background = np.flatnonzero(~strong)
    if background.size > max_background:
        background = background[np.linspace(0, background.size - 1, max_background).round().astype(np.int64)]
    return np.sort(np.concatenate([np.flatnonzero(strong), background]))


def plot_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "trait"


def _chrom_order(chrom: pd.Series) -> list[str]:
    names = chrom.astype(str).unique().tolist()
    return sorted(names, key=lambda c: (0, int(c), "") if c.isdigit() else (1, 0, c))


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def manhattan_points(table: pd.DataFrame) -> dict[str, Any]:
    """The thinned Manhattan points of one trait's rows: chromosome, position and -log10 p arrays."""
    finite = np.isfinite(table["LOG10_P"].to_numpy(float))
    data = table[finite]
    shown = thinned(data["LOG10_P"].to_numpy(float))
    return {"chrom": data["#CHROM"].astype(str).to_numpy()[shown], "pos": data["POS"].to_numpy(float)[shown],
            "log10_p": data["LOG10_P"].to_numpy(float)[shown], "n_points": int(finite.sum())}


def qq_points(table: pd.DataFrame) -> dict[str, Any]:
    """The thinned QQ points of one trait's rows (expected quantiles from all p-values) and its lambda."""
    observed = np.sort(table["LOG10_P"].to_numpy(float))
    observed = observed[np.isfinite(observed)][::-1]
    n = observed.size
    expected = -np.log10((np.arange(1, n + 1) - 0.5) / max(n, 1))
    shown = thinned(np.maximum(observed, expected))
    return {"expected": expected[shown], "observed": observed[shown], "n_points": n,
            "lambda_gc": genomic_inflation(table["P"].to_numpy(float))}


def _shown_note(ax, shown: int, total: int) -> None:
    if shown < total:
        ax.figure.text(0.995, 0.005, f"{shown:,} of {total:,} points drawn (all p < 1e-3; the rest thinned)",
                       ha="right", va="bottom", fontsize=6, color="#555555")


def draw_manhattan(points: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """-log10 p along the genome (chromosomes side by side, alternating colours), genome-wide line at 5e-8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6))
    offset, ticks, labels = 0.0, [], []
    for k, chrom in enumerate(_chrom_order(pd.Series(points["chrom"]))):
        part = points["chrom"] == chrom
        pos = points["pos"][part]
        x = offset + pos - pos.min()
        ax.scatter(x, points["log10_p"][part], s=4, color=("#1f4e79", "#7fa7d1")[k % 2], rasterized=True,
                   linewidths=0)
        ticks.append(offset + (pos.max() - pos.min()) / 2)
        labels.append(chrom)
        offset += pos.max() - pos.min() + max(1.0, 0.02 * (pos.max() - pos.min()))
    ax.axhline(-np.log10(GENOME_WIDE), color="#c0392b", lw=0.8, ls="--")
    _shown_note(ax, len(points["log10_p"]), points["n_points"])
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("-log10 p")
    ax.set_title(title)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.16, top=0.9)
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def draw_qq(points: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Observed vs expected -log10 p under the null (uniform p), with the genomic-control lambda."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    expected, observed = points["expected"], points["observed"]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    top = float(max(expected.max(initial=1.0), observed.max(initial=1.0)))
    ax.plot([0, top], [0, top], color="#888888", lw=0.8)
    ax.scatter(expected, observed, s=5, color="#1f4e79", rasterized=True, linewidths=0)
    _shown_note(ax, len(observed), points["n_points"])
    ax.set_xlabel("expected -log10 p")
    ax.set_ylabel("observed -log10 p")
    ax.set_title(f"{title}  lambda = {points['lambda_gc']:.3f}".strip())
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.12, top=0.91)
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def manhattan_plot(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """The Manhattan plot of one trait's rows of a ``linear_gwas`` table (thinned, see the module docstring)."""
    return draw_manhattan(manhattan_points(table), path, title)


def qq_plot(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """The QQ plot of one trait's rows of a ``linear_gwas`` table (thinned, see the module docstring)."""
    return draw_qq(qq_points(table), path, title)


def plot_points(table: pd.DataFrame) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(trait, Manhattan points, QQ points) of every trait of ``table``: all that drawing needs."""
    return [(str(trait), manhattan_points(part), qq_points(part))
            for trait, part in table.groupby("TRAIT", sort=False, observed=True)]


def draw_plots(points: list[tuple[str, dict[str, Any], dict[str, Any]]], out_dir: str | Path) -> list[Path]:
    """``manhattan_<trait>.png`` and ``qq_<trait>.png`` of every trait's points in ``out_dir``."""
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for trait, manhattan, qq in points:
        name = plot_name(trait)
        paths.append(draw_manhattan(manhattan, out_dir / f"manhattan_{name}.png", trait))
        paths.append(draw_qq(qq, out_dir / f"qq_{name}.png", trait))
    return paths


def gwas_plots(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``manhattan_<trait>.png`` and ``qq_<trait>.png`` for every trait of ``table`` in ``out_dir``."""
    return draw_plots(plot_points(table), out_dir)


def start_gwas_plots(table: pd.DataFrame, out_dir: str | Path) -> tuple[Future, ProcessPoolExecutor]:
    """``gwas_plots`` drawn in a spawned process: (its future, the executor to shut down after ``result()``).
    The thinning runs here; only the thinned points travel to the drawing process."""
    executor = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    return executor.submit(draw_plots, plot_points(table), Path(out_dir)), executor
