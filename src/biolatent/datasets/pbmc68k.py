"""pbmc68k: 700 peripheral blood cells x 765 genes (10x PBMC 68k, reduced), shipped inside scanpy.

The file stores log-normalised values; raw integer counts are recovered as
``round(expm1(raw.X) * n_counts / 1e4)`` (raw.X = log1p(counts / n_counts * 1e4)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.datasets.recipe import DatasetRecipe
from biolatent.errors import DataError

MEMBER = "scanpy/datasets/10x_pbmc68k_reduced.h5ad"
OBS_COLUMNS = (
    "bulk_labels", "louvain", "phase", "n_counts", "n_genes", "percent_mito", "S_score", "G2M_score",
)


def recover_counts(log_norm: np.ndarray, n_counts: np.ndarray) -> np.ndarray:
    """Invert log1p(counts / n_counts * 1e4) and round to integers (float32)."""
    counts = np.expm1(log_norm.astype(np.float64)) * n_counts.astype(np.float64)[:, None] / 1e4
    return np.round(counts).astype(np.float32)


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """Write ``pbmc68k.h5ad``: X = integer counts (float32), obs labels and QC, var = gene names."""
    import anndata
    import scipy.sparse as sp

    from biolatent.io.h5ad import read_h5ad

    source = read_h5ad(members[MEMBER])
    if source.raw is None:
        raise DataError(f"{members[MEMBER]} has no raw matrix to recover counts from")
    raw = source.raw.X
    raw = raw.toarray() if sp.issparse(raw) else np.asarray(raw)
    counts = recover_counts(raw, source.obs["n_counts"].to_numpy())
    obs = source.obs[[c for c in OBS_COLUMNS if c in source.obs.columns]].copy()
    obs.index = obs.index.astype(str)
    var = pd.DataFrame(index=pd.Index([str(g) for g in source.raw.var_names]))
    adata = anndata.AnnData(X=counts, obs=obs, var=var)
    from biolatent.io.h5ad import write_h5ad  # anndata: only when converting (`data list` stays light)

    write_h5ad(adata, out_dir / "pbmc68k.h5ad")


RECIPE = DatasetRecipe(
    name="pbmc68k",
    description="700 PBMCs x 765 genes, integer counts, 10 cell types (bulk_labels)",
    modality="counts",
    package="scanpy",
    version="1.11.5",
    members=(MEMBER,),
    sha256={MEMBER: "e71d41e737c941559b7c57c9243bdb3d2c889c2adfdf00e3422ac6b46783676f"},
    convert=convert,
    data_config={"modality": "counts", "path": "pbmc68k.h5ad"},
    labels=["bulk_labels", "louvain", "phase"],
)
