"""Drawing of the Manhattan and QQ plots of GWAS points (``gwas_plots`` thins them): only matplotlib, numpy and
Pillow, so that a drawing process starts quickly (it imports this module, not pandas or the regression).

Axis tops are rounded up to 1, 2 or 5 x 10^k (``nice_top``), so that many traits share them: each figure's
axes, ticks and labels are drawn once per top, and per trait only the points, title and note are drawn over a
copy of them (matplotlib's blitting; the same pixels as a full redraw, a fraction of its time). One Manhattan
and one QQ figure are reused across traits (``draw_plots``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from biolatent.rundir import atomic_path

GENOME_WIDE = 5e-8


def plot_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "trait"


DPI = 110


def nice_top(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above ``value`` (> 0): axis tops that many traits share."""
    value = max(float(value), 1e-12)
    scale = 10.0 ** math.floor(math.log10(value))
    return next(step * scale for step in (1.0, 2.0, 5.0, 10.0) if step * scale >= value * (1 - 1e-12))


def _background(figure: dict[str, Any], key: Any) -> Any:
    """The figure drawn without its animated artists at the limits already set, kept per ``key`` (the limits):
    a figure's axes, ticks and labels are drawn once for each axis top, not once per trait."""
    backgrounds = figure.setdefault("backgrounds", {})
    if key not in backgrounds:
        fig = figure["fig"]
        fig.canvas.draw()
        backgrounds[key] = fig.canvas.copy_from_bbox(fig.bbox)
    return backgrounds[key]


def _save(fig, background: Any, dynamic: tuple, path: Path) -> Path:
    """``background`` with the ``dynamic`` (animated) artists of ``fig`` drawn over it, as an RGB PNG,
    atomically."""
    from PIL import Image

    fig.canvas.restore_region(background)
    for artist in dynamic:
        fig.draw_artist(artist)
    width, height = fig.canvas.get_width_height()
    image = Image.frombuffer("RGBA", (width, height), fig.canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
    with atomic_path(path) as tmp:
        image.save(tmp, format="png", dpi=(DPI, DPI), compress_level=1)
    return path


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
    ax.axhline(-np.log10(GENOME_WIDE), color="#c0392b", lw=0.8, ls="--")
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("-log10 p")
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.16, top=0.9)
    note = fig.text(0.995, 0.005, "", ha="right", va="bottom", fontsize=6, color="#555555")
    dynamic = (*scatters.values(), ax.title, note)
    for artist in dynamic:
        artist.set_animated(True)
    return {"key": spans, "fig": fig, "ax": ax, "offsets": offsets, "scatters": scatters, "note": note,
            "dynamic": dynamic}


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
    top = nice_top(max(float(points["log10_p"].max(initial=0.0)), -np.log10(GENOME_WIDE)))
    figure["ax"].set_ylim(-0.02 * top, 1.02 * top)
    figure["ax"].set_title(title)
    figure["note"].set_text(_shown_note(len(points["log10_p"]), points["n_points"]))
    try:
        return _save(figure["fig"], _background(figure, top), figure["dynamic"], Path(path))
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
        dynamic = (scatter, ax.title, note)
        for artist in dynamic:
            artist.set_animated(True)
        canvas["qq"] = {"fig": fig, "ax": ax, "line": line, "scatter": scatter, "note": note, "dynamic": dynamic}
    figure = canvas["qq"]
    expected, observed = points["expected"], points["observed"]
    right = nice_top(float(expected.max(initial=1.0)))
    top = nice_top(float(max(expected.max(initial=1.0), observed.max(initial=1.0))))
    figure["line"].set_data([0, top], [0, top])
    figure["scatter"].set_offsets(np.column_stack([expected, observed]))
    figure["ax"].set_xlim(-0.03 * right, 1.02 * right)
    figure["ax"].set_ylim(-0.03 * top, 1.02 * top)
    figure["ax"].set_title(f"{title}  lambda = {points['lambda_gc']:.3f}".strip())
    figure["note"].set_text(_shown_note(len(observed), points["n_points"]))
    try:
        return _save(figure["fig"], _background(figure, (right, top)), figure["dynamic"], Path(path))
    finally:
        if own:
            _pyplot().close(figure["fig"])


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


def warm_up() -> None:
    """Import pyplot in a drawing process (about half a second) before any figure is asked of it."""
    _pyplot()
