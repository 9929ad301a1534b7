"""Simulated continuous expression (microarray / log-scale bulk RNA): few samples, many features, batches.

The shape of the data a new user met: 57 samples x 22,283 probes of RMA log-expression, three diagnosis
classes, five processing batches partly confounded with the diagnosis. Features sit on very different scales
(per-gene means 4-12, SDs 0.05-1.5), so an encoder that sees raw values is dominated by the gene means.
"""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd

from biolatent.io.h5ad import write_h5ad


def simulate_expression(
    n_samples: int = 57,
    n_genes: int = 2000,
    n_classes: int = 3,
    n_batches: int = 5,
    n_signal_genes: int = 60,
    effect: float = 1.0,
    confounding: float = 0.5,
    seed: int = 0,
) -> anndata.AnnData:
    """Log-expression (float32 X) with a known class structure, batches and missing-free values.

    Each gene has a mean ``U(4, 12)`` and a noise SD ``logU(0.05, 1.5)``. ``n_signal_genes`` genes carry the
    class: class ``c`` shifts its own block of them by ``effect`` noise SDs. Each batch adds a gene-wise
    offset of 0.5 noise SDs (normal). With probability ``confounding`` a sample's batch is tied to its class
    (batch = class mod n_batches), otherwise uniform. obs: ``diagnosis`` (class0..), ``batch`` (1..n_batches,
    integer codes as processing logs record them).
    """
    if not 1 <= n_classes <= n_signal_genes <= n_genes:
        raise ValueError(f"need 1 <= n_classes <= n_signal_genes <= n_genes, got {n_classes}, {n_signal_genes}, "
                         f"{n_genes}")
    rng = np.random.default_rng(seed)
    classes = np.arange(n_samples) % n_classes
    rng.shuffle(classes)
    tied = rng.random(n_samples) < confounding
    batches = np.where(tied, classes % n_batches, rng.integers(0, n_batches, size=n_samples))
    means = rng.uniform(4.0, 12.0, size=n_genes)
    sds = np.exp(rng.uniform(np.log(0.05), np.log(1.5), size=n_genes))
    shift = np.zeros((n_classes, n_genes))
    signal = rng.choice(n_genes, size=n_signal_genes, replace=False)
    for c, block in enumerate(np.array_split(signal, n_classes)):
        shift[c, block] = effect
    batch_offset = rng.normal(0.0, 0.5, size=(n_batches, n_genes))
    z = rng.normal(size=(n_samples, n_genes)) + shift[classes] + batch_offset[batches]
    x = means + sds * z
    obs = pd.DataFrame(
        {"diagnosis": pd.Categorical([f"class{c}" for c in classes]), "batch": (batches + 1).astype(np.int64)},
        index=pd.Index([f"sample{i:03d}" for i in range(n_samples)]),
    )
    var = pd.DataFrame(index=pd.Index([f"probe{j:05d}" for j in range(n_genes)]))
    return anndata.AnnData(X=x.astype(np.float32), obs=obs, var=var)


def write_expression_dataset(folder: str | Path, **kwargs: object) -> Path:
    """Simulate (``simulate_expression(**kwargs)``) and write ``folder/expression.h5ad`` atomically."""
    path = Path(folder) / "expression.h5ad"
    adata = simulate_expression(**kwargs)  # type: ignore[arg-type]
    return write_h5ad(adata, path)
