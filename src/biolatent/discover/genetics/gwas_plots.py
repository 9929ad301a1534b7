"""Manhattan and QQ plots of a ``linear_gwas`` table: one PNG of each per trait, written atomically.

Genome-wide tables are thinned before drawing, as large GWAS plots usually are: every point with p < 1e-3 is
drawn, of the others at most ``MAX_BACKGROUND`` (evenly spaced in genome order for the Manhattan plot, in rank
order for the QQ plot, whose expected quantiles and lambda come from all p-values); each figure says how many
of its points it draws. At these sizes the points below 1e-3 form a solid band, so the figure looks the same
and is drawn several times faster.

Drawing is ``gwas_figures`` (figures reused across traits, axes cached per axis top).

Thinning (``plot_points``) and drawing (``draw_plots``) are separate steps: the points are small, so
``start_gwas_plots`` draws them in ``PLOT_WORKERS`` other processes (spawned: they do not inherit the parent's
memory) while the caller writes the table and clumps.
"""

from __future__ import annotations

from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biolatent.discover.genetics.gwas import genomic_inflation
from biolatent.discover.genetics.gwas_figures import draw_plots, warm_up

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


def _chrom_order(chrom: pd.Series) -> list[str]:
    names = chrom.astype(str).unique().tolist()
    return sorted(names, key=lambda c: (0, int(c), "") if c.isdigit() else (1, 0, c))


def _manhattan_arrays(codes: np.ndarray, names: np.ndarray, pos: np.ndarray, log10_p: np.ndarray) -> dict[str, Any]:
    """The thinned Manhattan points of one trait (chromosome codes into ``names``, positions, -log10 p): chromosome,
    position and -log10 p arrays, and every chromosome's position range over all rows (not only the thinned)."""
    finite = np.isfinite(log10_p)
    codes, pos, log10_p = codes[finite], pos[finite], log10_p[finite]
    shown = thinned(log10_p)
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    spans = {str(names[k]): (float(pos[codes == k].min()), float(pos[codes == k].max())) for k in present}
    return {"chrom": np.asarray(names, dtype=object)[codes[shown]], "pos": pos[shown], "log10_p": log10_p[shown],
            "n_points": int(finite.sum()),
            "spans": tuple((c, *spans[c]) for c in _chrom_order(pd.Series(list(spans))))}


def _qq_arrays(log10_p: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """The thinned QQ points of one trait (expected quantiles from all its p-values) and its lambda."""
    observed = np.sort(log10_p)
    observed = observed[np.isfinite(observed)][::-1]
    n = observed.size
    expected = -np.log10((np.arange(1, n + 1) - 0.5) / max(n, 1))
    shown = thinned(np.maximum(observed, expected))
    return {"expected": expected[shown], "observed": observed[shown], "n_points": n,
            "lambda_gc": genomic_inflation(p)}


def plot_points(table: pd.DataFrame) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(trait, Manhattan points, QQ points) of every trait of ``table``: all that drawing needs."""
    codes, names = pd.factorize(table["#CHROM"].astype(str))  # a category's text once, not once per row
    names = np.asarray(names)
    pos, log10_p, p = (table[c].to_numpy(float) for c in ("POS", "LOG10_P", "P"))
    groups = table.groupby("TRAIT", sort=False, observed=True).indices  # row positions, no copies of the table
    return [(str(trait), _manhattan_arrays(codes[rows], names, pos[rows], log10_p[rows]),
             _qq_arrays(log10_p[rows], p[rows])) for trait, rows in sorted(groups.items(), key=lambda item: item[1][0])]


PLOT_WORKERS = 1  # drawing processes (once axes are cached per top, one keeps up with writing and clumping)


def plot_workers() -> ProcessPoolExecutor:
    """``PLOT_WORKERS`` spawned drawing processes (they do not inherit the parent's memory), already importing
    pyplot: started at the beginning of a command, they get ready while it reads its inputs and runs QC."""
    executor = ProcessPoolExecutor(max_workers=PLOT_WORKERS, mp_context=get_context("spawn"))
    for _ in range(PLOT_WORKERS):
        executor.submit(warm_up)
    return executor


def start_gwas_plots(table: pd.DataFrame, out_dir: str | Path, executor: ProcessPoolExecutor | None = None,
                     ) -> tuple[list[Future], ProcessPoolExecutor]:
    """The Manhattan and QQ plots of every trait of ``table`` (``manhattan_<trait>.png``, ``qq_<trait>.png`` in
    ``out_dir``) drawn by ``executor`` (default: new ``plot_workers``), the traits shared out between its
    ``PLOT_WORKERS`` processes: (their futures, the executor to shut down after ``result()``). The thinning runs
    here; only the thinned points travel to the drawing processes."""
    executor = plot_workers() if executor is None else executor
    points = plot_points(table)
    parts = [points[i::PLOT_WORKERS] for i in range(PLOT_WORKERS)]
    return [executor.submit(draw_plots, part, Path(out_dir)) for part in parts if part], executor
