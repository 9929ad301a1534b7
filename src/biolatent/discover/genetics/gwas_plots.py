"""Manhattan and QQ plots of a ``linear_gwas`` table: one PNG of each per trait, written atomically.

Genome-wide tables are thinned before drawing, as large GWAS plots usually are: every point with p < 1e-3 is
drawn, of the others at most ``MAX_BACKGROUND`` (evenly spaced in genome order for the Manhattan plot, in rank
order for the QQ plot, whose expected quantiles and lambda come from all p-values). At these sizes the
points below 1e-3 form a solid band, so the figure looks the same and is drawn several times faster.
"""

from __future__ import annotations

import re
from pathlib import Path

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


def manhattan_plot(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """-log10 p along the genome (chromosomes side by side, alternating colours), genome-wide line at 5e-8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = table[np.isfinite(table["LOG10_P"].to_numpy(float))]
    data = data.iloc[thinned(data["LOG10_P"].to_numpy(float))]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    offset, ticks, labels = 0.0, [], []
    for k, chrom in enumerate(_chrom_order(data["#CHROM"])):
        part = data[data["#CHROM"].astype(str) == chrom]
        pos = part["POS"].to_numpy(float)
        x = offset + pos - pos.min()
        ax.scatter(x, part["LOG10_P"], s=4, color=("#1f4e79", "#7fa7d1")[k % 2], rasterized=True, linewidths=0)
        ticks.append(offset + (pos.max() - pos.min()) / 2)
        labels.append(chrom)
        offset += pos.max() - pos.min() + max(1.0, 0.02 * (pos.max() - pos.min()))
    ax.axhline(-np.log10(GENOME_WIDE), color="#c0392b", lw=0.8, ls="--")
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("-log10 p")
    ax.set_title(title)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.16, top=0.9)
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def qq_plot(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Observed vs expected -log10 p under the null (uniform p), with the genomic-control lambda."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    observed = np.sort(table["LOG10_P"].to_numpy(float))
    observed = observed[np.isfinite(observed)][::-1]
    n = observed.size
    expected = -np.log10((np.arange(1, n + 1) - 0.5) / max(n, 1))
    shown = thinned(np.maximum(observed, expected))
    observed, expected = observed[shown], expected[shown]
    lam = genomic_inflation(table["P"].to_numpy(float))
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    top = float(max(expected.max(initial=1.0), observed.max(initial=1.0)))
    ax.plot([0, top], [0, top], color="#888888", lw=0.8)
    ax.scatter(expected, observed, s=5, color="#1f4e79", rasterized=True, linewidths=0)
    ax.set_xlabel("expected -log10 p")
    ax.set_ylabel("observed -log10 p")
    ax.set_title(f"{title}  lambda = {lam:.3f}".strip())
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.12, top=0.91)
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def gwas_plots(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``manhattan_<trait>.png`` and ``qq_<trait>.png`` for every trait of ``table`` in ``out_dir``."""
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for trait, part in table.groupby("TRAIT", sort=False, observed=True):
        name = plot_name(str(trait))
        paths.append(manhattan_plot(part, out_dir / f"manhattan_{name}.png", str(trait)))
        paths.append(qq_plot(part, out_dir / f"qq_{name}.png", str(trait)))
    return paths
