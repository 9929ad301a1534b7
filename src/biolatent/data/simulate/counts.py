"""Simulated expression: single-cell counts (negative-binomial draws around type-specific gene programmes) and
continuous log-expression cohorts (microarray-like)."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd

from biolatent.io.h5ad import write_h5ad


def simulate_counts(
    n_cells: int = 200, n_genes: int = 50, n_types: int = 3, seed: int = 0, dispersion: float = 5.0
) -> anndata.AnnData:
    """Integer counts (float32 X) of ``n_cells`` cells in ``n_types`` types and two batches.

    Each type up-regulates its own block of genes 6-fold (its programme); each batch scales genes by a mild
    log-normal factor; library sizes vary log-normally (sd 0.4). Counts are NB(mean, ``dispersion``)
    drawn as Poisson(Gamma). obs: ``cell_type`` (type0..), ``batch`` (batch0, batch1), ``library_size``.
    """
    if n_types < 1 or n_genes < n_types:
        raise ValueError(f"need 1 <= n_types <= n_genes, got n_types={n_types}, n_genes={n_genes}")
    rng = np.random.default_rng(seed)
    types = np.arange(n_cells) % n_types
    rng.shuffle(types)
    batches = rng.integers(0, 2, size=n_cells)
    base = rng.lognormal(mean=1.0, sigma=0.5, size=n_genes)  # per-gene mean expression
    programmes = np.ones((n_types, n_genes))
    for t, block in enumerate(np.array_split(rng.permutation(n_genes), n_types)):
        programmes[t, block] = 6.0
    batch_effect = rng.lognormal(mean=0.0, sigma=0.2, size=(2, n_genes))
    library = rng.lognormal(mean=0.0, sigma=0.4, size=n_cells)
    mean = base * programmes[types] * batch_effect[batches] * library[:, None]
    rate = rng.gamma(shape=dispersion, scale=mean / dispersion)
    counts = rng.poisson(rate)
    empty = counts.sum(axis=1) == 0
    counts[empty, rng.integers(0, n_genes, size=int(empty.sum()))] = 1  # every cell has >= 1 count
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([f"type{t}" for t in types]),
            "batch": pd.Categorical([f"batch{b}" for b in batches]),
            "library_size": library.astype(np.float32),
        },
        index=pd.Index([f"cell{i:04d}" for i in range(n_cells)]),
    )
    var = pd.DataFrame(index=pd.Index([f"gene{j:03d}" for j in range(n_genes)]))
    return anndata.AnnData(X=counts.astype(np.float32), obs=obs, var=var)


def write_counts_dataset(folder: str | Path, **kwargs: object) -> Path:
    """Simulate counts (``simulate_counts(**kwargs)``) and write ``folder/counts.h5ad`` atomically."""
    path = Path(folder) / "counts.h5ad"
    adata = simulate_counts(**kwargs)  # type: ignore[arg-type]
    return write_h5ad(adata, path)


def add_batch_effect(counts: np.ndarray, labels: np.ndarray, n_batches: int = 3, gene_sd: float = 0.5,
                     depth_sd: float = 0.3, composition: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A known batch effect on (real) counts: cells split into ``n_batches`` batches and each batch's counts
    redrawn -> (integer counts (N, G) float32, batch names (N,) ``batch0..``).

    Each cell type's cells go to the batches with proportions drawn from a symmetric Dirichlet(``composition``)
    (batches differ in composition, as labs and donors do); batch b scales gene g by a capture efficiency
    ``exp(N(0, gene_sd))`` and all its genes by a depth ``exp(N(0, depth_sd))``, and the new counts are
    ``Poisson(counts * depth_b * efficiency_bg)``: the cell's biology (its own counts) is kept, the batch
    multiplies every gene by its own factor, as differences in chemistry and capture do (the log-normal
    gene-wise batch factors of Splatter; Zappia et al. 2017, Genome Biology 18:174).
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels).astype(str)
    batches = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        batches[rows] = rng.choice(n_batches, size=rows.size, p=rng.dirichlet(np.full(n_batches, composition)))
    efficiency = np.exp(rng.normal(0.0, gene_sd, size=(n_batches, counts.shape[1])))
    depth = np.exp(rng.normal(0.0, depth_sd, size=n_batches))
    redrawn = rng.poisson(np.asarray(counts, dtype=np.float64) * depth[batches, None] * efficiency[batches])
    empty = redrawn.sum(axis=1) == 0
    redrawn[empty, rng.integers(0, counts.shape[1], size=int(empty.sum()))] = 1  # every cell keeps >= 1 count
    return redrawn.astype(np.float32), np.asarray([f"batch{b}" for b in batches])
