"""What several modality loaders share: a data path that must exist, a metadata table joined by sample id, the
matrix of an AnnData, image tiles resized for the encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from biolatent.errors import DataError
from biolatent.io.tables import read_table


def join_metadata(obs: pd.DataFrame, metadata: Path | None, id_column: str) -> pd.DataFrame:
    """Add the columns of the metadata table to ``obs`` (data order kept; extra table rows ignored).

    Every sample id must be in the table. Columns already in ``obs`` are replaced by the table's.
    """
    if metadata is None:
        return obs
    table = read_table(metadata, id_column=id_column)
    ids = obs.index.astype(str)
    missing = [i for i in ids if i not in table.index]
    if missing:
        example = ", ".join(missing[:3])
        raise DataError(f"{len(missing)} of {len(ids)} sample ids are not in the metadata table {metadata} "
                        f"(e.g. {example})")
    rows = table.loc[list(ids)]
    rows.index = obs.index
    return pd.concat([obs.drop(columns=[c for c in rows.columns if c in obs.columns]), rows], axis=1)


def require_path(path: Path | None, what: str) -> Path:
    if path is None:
        raise DataError(f"data.path is not set for the {what} data")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    return path


def expression_matrix(adata, layer: str | None, path: Path) -> tuple[np.ndarray, list[str]]:
    """The chosen matrix as dense float32 and its gene names (raw may hold other genes than X)."""
    names = [str(v) for v in adata.var_names]
    if layer is None:
        values = adata.X
    elif layer == "raw":
        if adata.raw is None:
            raise DataError(f"{path} has no raw matrix (data.layer = 'raw')")
        values, names = adata.raw.X, [str(v) for v in adata.raw.var_names]
    elif layer in adata.layers:
        values = adata.layers[layer]
    else:
        layers = ", ".join(["raw"] * (adata.raw is not None) + list(adata.layers)) or "none"
        raise DataError(f"{path} has no layer {layer!r} (layers: {layers})")
    if values is None:
        raise DataError(f"{path} has no X matrix")
    values = values.toarray() if sp.issparse(values) else np.asarray(values)
    if not np.issubdtype(values.dtype, np.number):
        raise DataError(f"{path}: matrix {layer or 'X'} is not numeric ({values.dtype})")
    return values.astype(np.float32, copy=False), names


def resize_tiles(tiles: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N, H, W, C) tiles -> float32 (N, C, size, size) in [0, 1] (bilinear, antialiased)."""
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp_(0.0, 1.0).contiguous()


META = "meta.tsv"  # the sample table of an image or volume folder: ``id``, ``path`` and optional columns


def read_meta(folder: Path, text_columns: list[str], what: str = "samples") -> pd.DataFrame:
    """``folder/meta.tsv`` with its ``id`` and ``path`` columns checked (ids unique, at least one row; ``what`` names
    the rows in the error); ``text_columns`` are read as text."""
    dtypes = {column: str for column in ("id", "path", *text_columns)}
    meta = pd.read_csv(folder / META, sep="\t", dtype=dtypes, keep_default_na=False)
    for column in ("id", "path"):
        if column not in meta.columns:
            raise DataError(f"{folder / META} has no {column!r} column")
    if meta.empty:
        raise DataError(f"{folder / META} lists no {what}")
    if meta["id"].duplicated().any():
        raise DataError(f"{folder / META}: duplicate id {meta['id'][meta['id'].duplicated()].iloc[0]!r}")
    return meta
