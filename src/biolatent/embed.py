"""Embeddings: model + samples -> (N, D) array -> ``embeddings.h5ad`` readable by scanpy as is.

The file is an AnnData: ``obs`` = sample ids (index) + every metadata column, ``obsm["X_biolatent"]`` = the
embeddings, ``uns["biolatent"]`` = provenance and config (JSON/YAML text).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from biolatent.errors import DataError
from biolatent.io.h5ad import write_h5ad
from biolatent.progress import StepProgress

EMBEDDING_KEY = "X_biolatent"


@torch.no_grad()
def compute_embeddings(method: torch.nn.Module, x: torch.Tensor, batch_size: int = 256,
                       say: Callable[[str], None] | None = None,
                       fields: Mapping[str, torch.Tensor] | None = None) -> np.ndarray:
    """``method.embed`` over all samples in eval mode, batch by batch -> float32 (N, D); with ``say``, a
    progress line with an ETA every few seconds (``progress.StepProgress``). A method whose representation needs
    paired parts (``embed_fields``, e.g. an image <-> records model embedding both) gets them from ``fields``
    (per-sample tensors aligned with ``x``) as keyword arguments."""
    method.eval()
    device = next(method.parameters()).device
    needed = tuple(getattr(method, "embed_fields", ()))
    missing = [name for name in needed if fields is None or name not in fields]
    if missing:
        raise DataError(f"this model embeds {', '.join(needed)} with the images: the data has no {missing[0]!r} "
                        "part (pair it as at pre-training)")
    n = int(x.shape[0])
    starts = range(0, n, batch_size)
    progress = StepProgress(len(starts), say, "embedding batches")
    # one (N, D) array filled batch by batch: no list of small chunks kept alive between the batches' large
    # temporaries (those pin the heap: the process grows with N when ``x`` is read from a file per batch)
    embeddings = np.empty((n, 0), dtype=np.float32)
    for start in starts:
        parts = {name: fields[name][start : start + batch_size].to(device) for name in needed}  # type: ignore[index]
        chunk = method.embed(x[start : start + batch_size].to(device), **parts).float().cpu()
        if start == 0:
            embeddings = np.empty((n, *chunk.shape[1:]), dtype=np.float32)
        embeddings[start : start + chunk.shape[0]] = chunk.numpy()
        del chunk
        progress.step(f" ({min(start + batch_size, n)} samples)")
    if not np.isfinite(embeddings).all():
        raise DataError("the model produced non-finite embeddings (NaN/inf): training diverged; lower train.lr")
    return embeddings


def write_embeddings(
    path: Path, embeddings: np.ndarray, obs: pd.DataFrame, provenance: dict[str, Any], config_yaml: str = ""
) -> Path:
    import anndata

    if embeddings.shape[0] != len(obs):
        raise ValueError(f"{embeddings.shape[0]} embeddings for {len(obs)} samples")
    adata = anndata.AnnData(obs=obs, var=pd.DataFrame(index=pd.Index([], dtype=object)))
    adata.obsm[EMBEDDING_KEY] = embeddings
    adata.uns["biolatent"] = {"provenance": json.dumps(provenance, default=str), "config": config_yaml}
    return write_h5ad(adata, path)


def read_embeddings(path: str | Path, key: str = EMBEDDING_KEY):
    """Read an embeddings file (ours or any AnnData with ``obsm[key]``, or X when obsm lacks it)."""
    from biolatent.io.h5ad import read_h5ad

    adata = read_h5ad(Path(path))
    where = f"obsm[{key!r}]"
    if key not in adata.obsm:
        if adata.X is None or adata.n_vars == 0:
            raise DataError(f"{path} has no obsm[{key!r}] and no X to use as embeddings")
        x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        adata.obsm[key] = x.astype(np.float32)
        where = f"X (used as embeddings: the file has no obsm[{key!r}])"
    values = np.asarray(adata.obsm[key], dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise DataError(f"{path}: {where} holds {int((~finite).sum())} NaN or inf value(s) (first in sample "
                        f"{adata.obs_names[row]!r})")
    return adata
