"""Manhattan and QQ plots of a ``linear_gwas`` table: one PNG of each per trait, written atomically.

Genome-wide tables are thinned before drawing, as large GWAS plots usually are: every point with p < 1e-3 is
drawn, of the others at most ``MAX_BACKGROUND`` (evenly spaced in genome order for the Manhattan plot, in rank
order for the QQ plot, whose expected quantiles and lambda come from all p-values); each figure says how many
of its points it draws. At these sizes the points below 1e-3 form a solid band, so the figure looks the same
and is drawn several times faster.

Each figure is drawn once; per trait only what changes (points, y axis, genome-wide line, title, note; the QQ
plot's axes too) is redrawn over a copy of the rest, then encoded as PNG (matplotlib's blitting: about a third of
the time of a full redraw per figure, measured, the same pixels).

Thinning (``plot_points``) and drawing (``draw_plots``) are separate steps: the points are small, so
``start_gwas_plots`` draws them in ``PLOT_WORKERS`` other processes (spawned: they do not inherit the parent's
memory) while the caller writes the table and clumps.
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


DPI = 110


def _freeze(fig, dynamic: tuple) -> dict[str, Any]:
    """Mark the ``dynamic`` artists of ``fig`` animated, draw the rest once and keep it: what ``_save`` redraws
    them over."""
    for artist in dynamic:
        artist.set_animated(True)
    fig.canvas.draw()
    return {"background": fig.canvas.copy_from_bbox(fig.bbox), "dynamic": dynamic}


def _save(fig, frozen: dict[str, Any], path: Path) -> Path:
    """The frozen background of ``fig`` with its dynamic artists drawn over it, as an RGB PNG, atomically."""
    from PIL import Image

    fig.canvas.restore_region(frozen["background"])
    for artist in frozen["dynamic"]:
        fig.draw_artist(artist)
    width, height = fig.canvas.get_width_height()
    image = Image.frombuffer("RGBA", (width, height), fig.canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
    with atomic_path(path) as tmp:
        image.save(tmp, format="png", dpi=(DPI, DPI), compress_level=1)
    return path


def _manhattan_arrays(codes: np.ndarray, names: np.ndarray, pos: np.ndarray, log10_p: np.ndarray) -> dict[str, Any]:
    """``manhattan_points`` of one trait's arrays: chromosome codes into ``names``, positions, -log10 p."""
    finite = np.isfinite(log10_p)
    codes, pos, log10_p = codes[finite], pos[finite], log10_p[finite]
    shown = thinned(log10_p)
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    spans = {str(names[k]): (float(pos[codes == k].min()), float(pos[codes == k].max())) for k in present}
    return {"chrom": np.asarray(names, dtype=object)[codes[shown]], "pos": pos[shown], "log10_p": log10_p[shown],
            "n_points": int(finite.sum()),
            "spans": tuple((c, *spans[c]) for c in _chrom_order(pd.Series(list(spans))))}


def _qq_arrays(log10_p: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """``qq_points`` of one trait's -log10 p and p arrays."""
    observed = np.sort(log10_p)
    observed = observed[np.isfinite(observed)][::-1]
    n = observed.size
    expected = -np.log10((np.arange(1, n + 1) - 0.5) / max(n, 1))
    shown = thinned(np.maximum(observed, expected))
    return {"expected": expected[shown], "observed": observed[shown], "n_points": n,
            "lambda_gc": genomic_inflation(p)}


def manhattan_points(table: pd.DataFrame) -> dict[str, Any]:
    """The thinned Manhattan points of one trait's rows: chromosome, position and -log10 p arrays, and the
    position range of every chromosome over all rows (the x axis does not depend on the thinning)."""
    codes, names = pd.factorize(table["#CHROM"].astype(str))
    return _manhattan_arrays(codes, np.asarray(names), table["POS"].to_numpy(float), table["LOG10_P"].to_numpy(float))


def qq_points(table: pd.DataFrame) -> dict[str, Any]:
    """The thinned QQ points of one trait's rows (expected quantiles from all p-values) and its lambda."""
    return _qq_arrays(table["LOG10_P"].to_numpy(float), table["P"].to_numpy(float))


def _shown_note(shown: int, total: int) -> str:
    return f"{shown:,} of {total:,} points drawn (all p < 1e-3; the rest thinned)" if shown < total else ""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _manhattan_figure(spans: tuple) -> dict[str, Any]:
    """A Manhattan figure for the chromosome ``spans``: one empty scatter per chromosome, filled per trait."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=DPI)
    offset, ticks, labels, offsets, scatters = 0.0, [], [], {}, {}
    for k, (chrom, low, high) in enumerate(spans):
        offsets[chrom] = offset - low
        scatters[chrom] = ax.scatter([], [], s=4, color=("#1f4e79", "#7fa7d1")[k % 2], rasterized=True,
                                     linewidths=0)
        ticks.append(offset + (high - low) / 2)
        labels.append(chrom)
        offset += high - low + max(1.0, 0.02 * (high - low))
    ax.set_xlim(-0.01 * max(offset, 1.0), offset)
    line = ax.axhline(-np.log10(GENOME_WIDE), color="#c0392b", lw=0.8, ls="--")
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("-log10 p")
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.16, top=0.9)
    note = fig.text(0.995, 0.005, "", ha="right", va="bottom", fontsize=6, color="#555555")
    frozen = _freeze(fig, (*scatters.values(), line, ax.yaxis, ax.title, note))
    return {"key": spans, "fig": fig, "ax": ax, "offsets": offsets, "scatters": scatters, "note": note,
            "frozen": frozen}


def draw_manhattan(points: dict[str, Any], path: str | Path, title: str = "",
                   canvas: dict[str, Any] | None = None) -> Path:
    """-log10 p along the genome (chromosomes side by side, alternating colours), genome-wide line at 5e-8.

    ``canvas``: a dict kept between calls: its figure is reused (its points, limits and texts replaced) while
    the chromosome spans stay the same, several times faster than a new figure per trait."""
    own = canvas is None
    canvas = {} if canvas is None else canvas
    if canvas.get("manhattan", {}).get("key") != points["spans"]:
        if "manhattan" in canvas:
            _pyplot().close(canvas["manhattan"]["fig"])
        canvas["manhattan"] = _manhattan_figure(points["spans"])
    figure = canvas["manhattan"]
    for chrom, scatter in figure["scatters"].items():
        part = points["chrom"] == chrom
        scatter.set_offsets(np.column_stack([figure["offsets"][chrom] + points["pos"][part],
                                             points["log10_p"][part]]))
    top = max(float(points["log10_p"].max(initial=0.0)), -np.log10(GENOME_WIDE))
    figure["ax"].set_ylim(-0.02 * top, 1.05 * top)
    figure["ax"].set_title(title)
    figure["note"].set_text(_shown_note(len(points["log10_p"]), points["n_points"]))
    try:
        return _save(figure["fig"], figure["frozen"], Path(path))
    finally:
        if own:
            _pyplot().close(figure["fig"])


def draw_qq(points: dict[str, Any], path: str | Path, title: str = "", canvas: dict[str, Any] | None = None) -> Path:
    """Observed vs expected -log10 p under the null (uniform p), with the genomic-control lambda.
    ``canvas``: as for ``draw_manhattan`` (one QQ figure reused across traits)."""
    own = canvas is None
    canvas = {} if canvas is None else canvas
    if "qq" not in canvas:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=DPI)
        (line,) = ax.plot([0, 1], [0, 1], color="#888888", lw=0.8)
        scatter = ax.scatter([], [], s=5, color="#1f4e79", rasterized=True, linewidths=0)
        ax.set_xlabel("expected -log10 p")
        ax.set_ylabel("observed -log10 p")
        fig.subplots_adjust(left=0.15, right=0.97, bottom=0.12, top=0.91)
        note = fig.text(0.995, 0.995, "", ha="right", va="top", fontsize=6, color="#555555")
        frozen = _freeze(fig, (line, scatter, ax.xaxis, ax.yaxis, ax.title, note))
        canvas["qq"] = {"fig": fig, "ax": ax, "line": line, "scatter": scatter, "note": note, "frozen": frozen}
    figure = canvas["qq"]
    expected, observed = points["expected"], points["observed"]
    top = float(max(expected.max(initial=1.0), observed.max(initial=1.0)))
    figure["line"].set_data([0, top], [0, top])
    figure["scatter"].set_offsets(np.column_stack([expected, observed]))
    right = float(expected.max(initial=1.0))
    figure["ax"].set_xlim(-0.05 * right, 1.05 * right)
    figure["ax"].set_ylim(-0.05 * top, 1.05 * top)
    figure["ax"].set_title(f"{title}  lambda = {points['lambda_gc']:.3f}".strip())
    figure["note"].set_text(_shown_note(len(observed), points["n_points"]))
    try:
        return _save(figure["fig"], figure["frozen"], Path(path))
    finally:
        if own:
            _pyplot().close(figure["fig"])


def manhattan_plot(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """The Manhattan plot of one trait's rows of a ``linear_gwas`` table (thinned, see the module docstring)."""
    return draw_manhattan(manhattan_points(table), path, title)


def qq_plot(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """The QQ plot of one trait's rows of a ``linear_gwas`` table (thinned, see the module docstring)."""
    return draw_qq(qq_points(table), path, title)


def plot_points(table: pd.DataFrame) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(trait, Manhattan points, QQ points) of every trait of ``table``: all that drawing needs."""
    codes, names = pd.factorize(table["#CHROM"].astype(str))  # a category's text once, not once per row
    names = np.asarray(names)
    pos, log10_p, p = (table[c].to_numpy(float) for c in ("POS", "LOG10_P", "P"))
    groups = table.groupby("TRAIT", sort=False, observed=True).indices  # row positions, no copies of the table
    return [(str(trait), _manhattan_arrays(codes[rows], names, pos[rows], log10_p[rows]),
             _qq_arrays(log10_p[rows], p[rows])) for trait, rows in sorted(groups.items(), key=lambda item: item[1][0])]


def draw_plots(points: list[tuple[str, dict[str, Any], dict[str, Any]]], out_dir: str | Path) -> list[Path]:
    """``manhattan_<trait>.png`` and ``qq_<trait>.png`` of every trait's points in ``out_dir``."""
    out_dir = Path(out_dir)
    paths: list[Path] = []
    canvas: dict[str, Any] = {}  # one Manhattan and one QQ figure, reused for every trait
    try:
        for trait, manhattan, qq in points:
            name = plot_name(trait)
            paths.append(draw_manhattan(manhattan, out_dir / f"manhattan_{name}.png", trait, canvas))
            paths.append(draw_qq(qq, out_dir / f"qq_{name}.png", trait, canvas))
    finally:
        for figure in canvas.values():
            _pyplot().close(figure["fig"])
    return paths


def gwas_plots(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``manhattan_<trait>.png`` and ``qq_<trait>.png`` for every trait of ``table`` in ``out_dir``."""
    return draw_plots(plot_points(table), out_dir)


PLOT_WORKERS = 2  # drawing processes: after clumping, the remaining figures are drawn on two cores


def _warm_up() -> None:
    """Import pyplot in a drawing process (about half a second) before any figure is asked of it."""
    _pyplot()


def plot_workers(workers: int = PLOT_WORKERS) -> ProcessPoolExecutor:
    """Spawned drawing processes (they do not inherit the parent's memory), already importing pyplot: started
    at the beginning of a command, they get ready while it reads its inputs and runs QC on one core."""
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    for _ in range(workers):
        executor.submit(_warm_up)
    return executor


def start_gwas_plots(table: pd.DataFrame, out_dir: str | Path, executor: ProcessPoolExecutor | None = None,
                     ) -> tuple[list[Future], ProcessPoolExecutor]:
    """``gwas_plots`` drawn by ``executor`` (default: new ``plot_workers``), the traits shared out between its
    processes: (their futures, the executor to shut down after ``result()``). The thinning runs here; only
    the thinned points travel to the drawing processes."""
    executor = plot_workers() if executor is None else executor
    points = plot_points(table)
    workers = max(1, executor._max_workers)
    parts = [points[i::workers] for i in range(workers)]
    return [executor.submit(draw_plots, part, Path(out_dir)) for part in parts if part], executor
