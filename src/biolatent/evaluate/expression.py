"""Predicting spatial gene expression from the image alone (RNAPath-style per-gene heads on frozen features).

Neighbouring Visium spots share cells and expression, so a random split of spots leaks the test set into
training (the tiles of neighbours even overlap). ``spatial_block_split`` holds out whole square regions of
the tissue and drops the training spots within ``buffer`` of any test spot (Roberts et al. 2017, "Cross-
validation strategies for data with temporal, spatial, hierarchical, or phylogenetic structure").

``run_expression_efficiency`` fits one multi-output regression probe per representation (``linear`` = ridge
with one penalty per gene chosen by leave-one-out on the labelled spots, ``knn``; ``evaluate.probes``) on a
fraction of the training spots, predicts every selected gene of the test spots and scores each gene by its
Pearson r across the test spots (RNAPath, Weitz et al. 2023; BLEEP, Xie et al. 2023). The ``mean_gene_pearson_r``
of a seed is the mean over the genes whose test values vary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.evaluate.probes import REGRESSION_PROBES
from biolatent.evaluate.splits import label_subset
from biolatent.progress import eta_text

MEAN_METRIC = "mean_gene_pearson_r"
GENE_COLUMNS = ["representation", "probe", "fraction", "seed", "gene", "pearson_r"]
SPLIT_BLOCKS = 25  # the tissue's bounding box is cut into about this many square blocks
BUFFER_SPACINGS = 1.5  # training spots closer than this many spot spacings to a test spot are dropped


def spot_spacing(coords: np.ndarray) -> float:
    """Median distance from a spot to its nearest neighbour (the grid's spacing, in the units of ``coords``)."""
    from scipy.spatial import cKDTree

    coords = np.asarray(coords, dtype=np.float64)
    if coords.shape[0] < 2:
        raise DataError(f"need at least 2 spots for a spatial split, got {coords.shape[0]}")
    distance, _ = cKDTree(coords).query(coords, k=2)
    return float(np.median(distance[:, 1]))


def spatial_block_split(
    coords: np.ndarray, test_fraction: float = 0.2, seed: int = 0, *, n_blocks: int = SPLIT_BLOCKS,
    buffer: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train_idx, test_idx, buffer_idx)``: whole square regions held out, a buffer ring dropped.

    The bounding box of ``coords`` (N, 2) is tiled with squares of side ``sqrt(area / n_blocks)``; blocks
    are taken in a seeded random order into the test set until it holds at least ``test_fraction`` of the
    spots. Training spots within ``buffer`` (default ``BUFFER_SPACINGS`` x the median nearest-neighbour
    spacing) of a test spot go to ``buffer_idx`` and are used by nothing. All three are sorted.
    """
    from scipy.spatial import cKDTree

    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.isfinite(coords).all():
        raise DataError("spot coordinates must be a finite (N, 2) array")
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    n = coords.shape[0]
    buffer = BUFFER_SPACINGS * spot_spacing(coords) if buffer is None else float(buffer)
    low = coords.min(axis=0)
    extent = np.maximum(coords.max(axis=0) - low, 1e-9)
    side = math.sqrt(float(extent[0] * extent[1]) / n_blocks) if extent.min() > 1e-9 else float(extent.max()) / n_blocks
    block_of = np.floor((coords - low) / side).astype(np.int64)
    keys = block_of[:, 0] * (int(block_of[:, 1].max()) + 1) + block_of[:, 1]
    blocks = np.unique(keys)
    if blocks.size < 2:
        raise DataError("the spots fall into a single block: cannot hold out a region")
    order = np.random.default_rng(seed).permutation(blocks)
    test = np.zeros(n, dtype=bool)
    for block in order[:-1]:  # at least one block stays for training
        test |= keys == block
        if test.sum() >= test_fraction * n:
            break
    test_idx = np.flatnonzero(test)
    rest = np.flatnonzero(~test)
    near = np.zeros(rest.size, dtype=bool)
    if buffer > 0:
        distance, _ = cKDTree(coords[test_idx]).query(coords[rest], k=1)
        near = distance <= buffer
    train_idx, buffer_idx = rest[~near], rest[near]
    if train_idx.size < 2:
        raise DataError(f"the spatial split leaves {train_idx.size} training spots (buffer {buffer:g} too wide "
                        f"for {n} spots)")
    return train_idx, test_idx, buffer_idx


def log_normalise(values: np.ndarray, is_counts: bool) -> np.ndarray:
    """Counts -> ``log1p(count / library_size * median library size)``; other values are returned as given
    (already normalised). A spot with no counts stays at 0."""
    values = np.asarray(values, dtype=np.float64)
    if not is_counts:
        return values
    library = values.sum(axis=1, keepdims=True)
    scale = float(np.median(library[library > 0])) if np.any(library > 0) else 1.0
    return np.log1p(np.divide(values, library, out=np.zeros_like(values), where=library > 0) * scale)


def select_genes(targets: np.ndarray, pool_idx: np.ndarray, n_genes: int) -> np.ndarray:
    """The ``n_genes`` genes with the largest variance over the training pool (the test spots are not looked
    at), in decreasing order; genes constant on the pool are never chosen."""
    if n_genes < 1:
        raise DataError(f"--genes must be at least 1, got {n_genes}")
    variance = np.asarray(targets, dtype=np.float64)[pool_idx].var(axis=0)
    order = np.argsort(-variance, kind="stable")
    order = order[variance[order] > 0]
    if order.size == 0:
        raise DataError("every gene is constant on the training spots: nothing to predict")
    return order[:n_genes]


def gene_pearson(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Pearson r of every column (gene) across rows (spots). A constant prediction of a varying gene scores 0
    (no association); a gene constant on the test spots has no r (NaN)."""
    truth = np.asarray(truth, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    t = truth - truth.mean(axis=0)
    p = predicted - predicted.mean(axis=0)
    t_norm, p_norm = np.sqrt((t**2).sum(axis=0)), np.sqrt((p**2).sum(axis=0))
    r = np.full(truth.shape[1], np.nan)
    varies = t_norm > 1e-12
    defined = varies & (p_norm > 1e-12)
    r[varies & ~defined] = 0.0
    r[defined] = (t[:, defined] * p[:, defined]).sum(axis=0) / (t_norm[defined] * p_norm[defined])
    return np.clip(r, -1.0, 1.0)


Predict = Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (labelled_idx, test_idx, seed) -> (T, G)


def run_expression_efficiency(
    representations: dict[str, np.ndarray],
    targets: np.ndarray,
    genes: Sequence[str],
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    fractions: Sequence[float],
    seeds: Sequence[int],
    *,
    probes: Sequence[str] = ("linear", "knn"),
    predictors: dict[tuple[str, str], Predict] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-gene and per-seed results of predicting ``targets`` (N, G) of the test spots.

    Every representation (N, D) gets each regression probe, fitted on ``fraction`` of ``train_idx`` (seeded,
    nested across fractions); ``predictors`` maps ``(representation, probe)`` to a callable that predicts
    the test spots itself (the supervised baseline, BLEEP retrieval), trained on the same labelled spots.
    Returns ``(per_gene, per_seed)``: ``GENE_COLUMNS`` rows, and rows ``representation, probe, fraction,
    seed, metric, value`` with ``metric = mean_gene_pearson_r`` (the mean over genes with a defined r).
    """
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or targets.shape[1] != len(genes):
        raise DataError(f"targets {targets.shape} do not match {len(genes)} genes")
    for name, array in representations.items():
        if array.shape[0] != targets.shape[0]:
            raise DataError(f"representation {name!r} has {array.shape[0]} rows for {targets.shape[0]} spots")
        if not np.isfinite(array).all():
            raise DataError(f"representation {name!r} holds NaN or inf values")
    unknown = [p for p in probes if p not in REGRESSION_PROBES]
    if unknown:
        raise DataError(f"unknown probe(s) {unknown}; known: {', '.join(REGRESSION_PROBES)}")
    predictors = predictors or {}
    y_test = targets[test_idx]
    dummy = np.zeros(targets.shape[0])  # label_subset without stratification ignores the values
    gene_rows: list[tuple] = []
    seed_rows: list[tuple] = []

    def record(rep: str, probe: str, fraction: float, seed: int, predicted: np.ndarray) -> None:
        predicted = np.asarray(predicted, dtype=np.float64)
        if predicted.shape != y_test.shape:
            raise DataError(f"{rep}/{probe} predicted shape {predicted.shape}; expected {y_test.shape}")
        r = gene_pearson(y_test, predicted)
        gene_rows.extend((rep, probe, float(fraction), int(seed), g, float(v)) for g, v in zip(genes, r, strict=True))
        mean = float(np.nanmean(r)) if np.isfinite(r).any() else math.nan
        seed_rows.append((rep, probe, float(fraction), int(seed), MEAN_METRIC, mean))

    total, done, started = len(fractions) * len(seeds), 0, time.perf_counter()
    for fraction in fractions:
        for seed in seeds:
            labelled = label_subset(train_idx, dummy, fraction, seed, stratify=False)
            if progress:
                progress(f"[{done + 1}/{total}] fraction {fraction:g}, seed {seed}: {labelled.size} labelled spots, "
                         f"{test_idx.size} test{eta_text(time.perf_counter() - started, done, total)}")
            done += 1
            for rep, x in representations.items():
                for probe in probes:
                    model = REGRESSION_PROBES[probe]().fit(x[labelled], targets[labelled])
                    record(rep, probe, fraction, seed, model.predict(x[test_idx]))
            for (rep, probe), predict in predictors.items():
                record(rep, probe, fraction, seed, predict(labelled, test_idx, seed))
    per_gene = pd.DataFrame(gene_rows, columns=GENE_COLUMNS)
    per_seed = pd.DataFrame(seed_rows, columns=["representation", "probe", "fraction", "seed", "metric", "value"])
    return per_gene, per_seed


def summarise_genes(per_gene: pd.DataFrame) -> pd.DataFrame:
    """``expression_prediction.tsv``: ``representation, probe, fraction, gene, pearson_r, n_seeds`` (mean r over
    the seeds where it is defined)."""
    grouped = per_gene.groupby(["representation", "probe", "fraction", "gene"], sort=False)["pearson_r"]
    out = grouped.agg(pearson_r="mean", n_seeds="count").reset_index()
    return out[["representation", "probe", "fraction", "gene", "pearson_r", "n_seeds"]]
