"""Data config -> SampleSet, one loader per modality (explicit registry ``LOADERS``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from biolatent.config import CineData, CountsData, DnaData, Image2dData, SpatialData, VolumeData
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.data.sequence import encode_bases, pad_bases
from biolatent.data.spatial import load_spatial
from biolatent.data.volume_sets import load_cine, load_volume
from biolatent.errors import DataError
from biolatent.io.fasta import read_fasta
from biolatent.io.h5ad import read_h5ad
from biolatent.io.images import read_image_folder
from biolatent.io.slide import read_slide_tiles
from biolatent.io.tables import read_table

SLIDE_SUFFIXES = (".svs", ".tif", ".tiff")
DataCfg = CountsData | DnaData | Image2dData | VolumeData | CineData | SpatialData


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


def _matrix(adata, layer: str | None, path: Path) -> tuple[np.ndarray, list[str]]:
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


def _describe_non_counts(x: np.ndarray) -> str:
    if (x < 0).any():
        return f"negative value {float(x[x < 0].min()):g}"
    bad = x[x != np.round(x)]
    return f"non-integer value {float(bad[0]):g}"


def load_counts(cfg: CountsData) -> SampleSet:
    """An .h5ad file -> dense float32 (N, G); samples with total <= min_total dropped (count data only)."""
    path = require_path(cfg.path, "counts")
    adata = read_h5ad(path)
    x, genes = _matrix(adata, cfg.layer, path)
    where = f"{path} ({cfg.layer or 'X'})"
    finite = np.isfinite(x)
    if not finite.all():
        row, col = (int(v[0]) for v in np.nonzero(~finite))
        raise DataError(f"{where} has a NaN or infinite value (cell {adata.obs_names[row]!r}, "
                        f"gene {genes[col]!r})")
    integral = bool((x >= 0).all() and (x == np.round(x)).all())
    if cfg.values == "counts" and not integral:
        raise DataError(f"{where}: data.values = 'counts' needs non-negative integer counts; found "
                        f"{_describe_non_counts(x)}")
    is_counts = integral if cfg.values == "auto" else cfg.values == "counts"
    obs = adata.obs.copy()
    obs.index = obs.index.astype(str)
    if obs.index.has_duplicates:
        raise DataError(f"{path}: duplicate cell id {obs.index[obs.index.duplicated()][0]!r} in obs_names")
    if is_counts:
        keep = x.sum(axis=1) > cfg.min_total
        if not keep.any():
            raise DataError(f"{path}: empty dataset after filtering (no sample has a total > "
                            f"{cfg.min_total:g})")
        x, obs = x[keep], obs.iloc[np.flatnonzero(keep)]
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    info = DataInfo(modality="counts", n_features=int(x.shape[1]), is_counts=is_counts)
    return SampleSet(info, torch.from_numpy(np.ascontiguousarray(x)), obs, genes)


def load_dna(cfg: DnaData) -> SampleSet:
    """A FASTA file -> int64 base codes (N, L) padded/truncated to max_length (default: the longest)."""
    records = read_fasta(require_path(cfg.path, "dna"))
    encoded = [encode_bases(seq) for _, seq in records]
    length = cfg.max_length or max(codes.size for codes in encoded)
    ids = [record_id for record_id, _ in records]
    obs = pd.DataFrame(index=pd.Index(ids))
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    obs["length"] = np.array([codes.size for codes in encoded], dtype=np.int64)
    info = DataInfo(modality="dna", max_length=int(length), kmer=cfg.kmer)
    return SampleSet(info, pad_bases(encoded, length), obs)


def resize_tiles(tiles: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N, H, W, C) tiles -> float32 (N, C, size, size) in [0, 1] (bilinear, antialiased)."""
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp_(0.0, 1.0).contiguous()


def load_image2d(cfg: Image2dData) -> SampleSet:
    """A folder of images, or a slide (.svs/.tif/.tiff) cut into tissue tiles -> float32 (N, C, S, S)."""
    path = require_path(cfg.path, "image2d")
    if path.is_dir():
        ids, pixels = read_image_folder(path, cfg.image_size)
        if cfg.max_samples is not None:
            ids, pixels = ids[: cfg.max_samples], pixels[: cfg.max_samples]
        x = torch.from_numpy(np.ascontiguousarray(pixels))
        obs = pd.DataFrame(index=pd.Index(ids))
    elif path.suffix.lower() in SLIDE_SUFFIXES:
        ids, tiles, obs = read_slide_tiles(path, cfg.tile_size, cfg.min_tissue_fraction, cfg.max_samples)
        x = resize_tiles(tiles, cfg.image_size)
        obs.index.name = None
    else:
        raise DataError(f"image2d data.path must be a folder of images or a .svs/.tif/.tiff slide: {path}")
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    info = DataInfo(modality="image2d", channels=int(x.shape[1]), image_size=cfg.image_size, spatial_dims=2)
    return SampleSet(info, x, obs)


LOADERS: dict[str, Callable[..., SampleSet]] = {
    "counts": load_counts,
    "dna": load_dna,
    "image2d": load_image2d,
    "volume": load_volume,
    "cine": load_cine,
    "spatial": load_spatial,
}


def load_samples(cfg: DataCfg) -> SampleSet:
    """Load the data a config section describes (a registry dataset is fetched and resolved first)."""
    if cfg.dataset is not None:
        from biolatent.datasets import resolve_data_config

        cfg = resolve_data_config(cfg)
    loader = LOADERS.get(cfg.modality)
    if loader is None:
        raise DataError(f"no loader for modality {cfg.modality!r} (known: {', '.join(LOADERS)})")
    samples = loader(cfg)
    if getattr(cfg, "paired_parts", None):
        from biolatent.data.paired import attach_genetics

        samples = attach_genetics(samples, cfg.genotypes, cfg.genetic_tables, id_column=cfg.id_column,
                                  max_variants=cfg.max_variants)
    return samples
