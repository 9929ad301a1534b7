"""Simulated expression: single-cell counts (negative-binomial draws around type-specific gene programmes) and
continuous log-expression cohorts (microarray-like)."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd

from biolatent.rundir import atomic_path


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


def simulate_log_expression(
    n_samples: int = 57, n_genes: int = 2000, n_classes: int = 3, n_batches: int = 5, seed: int = 0
) -> anndata.AnnData:
    """Continuous log-expression (float32 X) like an RMA-normalised microarray cohort.

    Each gene has its own offset ``U(5, 12)`` and a small SD (log-normal, median 0.2); a tenth of the genes
    move by ``+-1.5`` of their SD per class; each batch shifts every gene by ``N(0, 0.5 SD)``. Batches are
    partly confounded with the class (a sample's batch is ``class mod n_batches`` with probability 0.6, else
    random). obs: ``label`` (class0..), ``batch`` (batch0..).
    """
    if n_classes < 1 or n_batches < 1 or n_genes < 10:
        raise ValueError(f"need n_classes, n_batches >= 1 and n_genes >= 10, got {n_classes}, {n_batches}, {n_genes}")
    rng = np.random.default_rng(seed)
    classes = np.arange(n_samples) % n_classes
    rng.shuffle(classes)
    batches = np.where(rng.random(n_samples) < 0.6, classes % n_batches, rng.integers(0, n_batches, n_samples))
    offset = rng.uniform(5.0, 12.0, size=n_genes)
    sd = rng.lognormal(mean=np.log(0.2), sigma=0.5, size=n_genes)
    signal = np.zeros((n_classes, n_genes))
    marked = rng.choice(n_genes, size=n_genes // 10, replace=False)
    signal[:, marked] = rng.choice([-1.5, 1.5], size=(n_classes, marked.size))
    batch_shift = rng.normal(0.0, 0.5, size=(n_batches, n_genes))
    z = signal[classes] + batch_shift[batches] + rng.normal(size=(n_samples, n_genes))
    obs = pd.DataFrame(
        {"label": pd.Categorical([f"class{c}" for c in classes]),
         "batch": pd.Categorical([f"batch{b}" for b in batches])},
        index=pd.Index([f"sample{i:03d}" for i in range(n_samples)]),
    )
    var = pd.DataFrame(index=pd.Index([f"probe{j:05d}" for j in range(n_genes)]))
    return anndata.AnnData(X=(offset + sd * z).astype(np.float32), obs=obs, var=var)


def write_counts_dataset(folder: str | Path, **kwargs: object) -> Path:
    """Simulate counts (``simulate_counts(**kwargs)``) and write ``folder/counts.h5ad`` atomically."""
    path = Path(folder) / "counts.h5ad"
    adata = simulate_counts(**kwargs)  # type: ignore[arg-type]
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return path
