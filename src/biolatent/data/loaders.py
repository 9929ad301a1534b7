"""Data config -> SampleSet, one loader per modality (explicit registry ``LOADERS``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from biolatent.config import (
    CineData,
    CountsData,
    DnaData,
    FeaturesData,
    Image2dData,
    RecordsData,
    SeriesData,
    SpatialData,
    VolumeData,
)
from biolatent.data.backed import BackedCounts, open_backed
from biolatent.data.batches import BATCH_FIELD, batch_codes
from biolatent.data.image_sets import META, load_image_set
from biolatent.data.inputs import expression_matrix, join_metadata, require_path, resize_tiles
from biolatent.data.records import load_records
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.data.sequence import encode_bases, pad_bases
from biolatent.data.series_sets import load_series_set, series_layout
from biolatent.data.slide_tiles import lazy_slide_tiles
from biolatent.data.spatial import load_spatial
from biolatent.data.tabular import load_features, load_series
from biolatent.data.volume_sets import load_cine, load_volume
from biolatent.errors import DataError
from biolatent.io.fasta import read_fasta
from biolatent.io.h5ad import read_h5ad
from biolatent.io.images import read_image_folder
from biolatent.io.slide import read_slide_tiles

SLIDE_SUFFIXES = (".svs", ".tif", ".tiff")
DataCfg = (CountsData | DnaData | Image2dData | VolumeData | CineData | SpatialData | RecordsData | SeriesData
           | FeaturesData)


def _describe_non_counts(x: np.ndarray) -> str:
    if (x < 0).any():
        return f"negative value {float(x[x < 0].min()):g}"
    bad = x[x != np.round(x)]
    return f"non-integer value {float(bad[0]):g}"


def load_counts(cfg: CountsData) -> SampleSet:
    """An .h5ad file -> float32 (N, G): dense in memory, or read from the file batch by batch (``data.backed``,
    ``biolatent.data.backed``); samples with total <= min_total dropped (count data only)."""
    path = require_path(cfg.path, "counts")
    where = f"{path} ({cfg.layer or 'X'})"
    backed = open_backed(path, cfg.layer, cfg.backed)
    if backed is None:
        adata = read_h5ad(path)
        dense, genes = expression_matrix(adata, cfg.layer, path)
        obs = adata.obs.copy()
        integral, totals = _check_values(dense, where, adata.obs_names, genes, cfg.values)
        x: torch.Tensor | BackedCounts = torch.from_numpy(np.ascontiguousarray(dense))
    else:
        x, obs, genes = backed
        integral, totals = _check_backed_values(x, where, obs.index, genes, cfg.values)
    is_counts = integral if cfg.values == "auto" else cfg.values == "counts"
    obs.index = obs.index.astype(str)
    if obs.index.has_duplicates:
        raise DataError(f"{path}: duplicate cell id {obs.index[obs.index.duplicated()][0]!r} in obs_names")
    if is_counts:
        keep = totals > cfg.min_total
        if not keep.any():
            raise DataError(f"{path}: empty dataset after filtering (no sample has a total > "
                            f"{cfg.min_total:g})")
        if not keep.all():
            rows = np.flatnonzero(keep)
            x, obs = (x.take(rows) if isinstance(x, BackedCounts) else x[torch.from_numpy(rows)]), obs.iloc[rows]
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    fields, categories = {}, None
    if cfg.batch_column is not None:
        fields[BATCH_FIELD], categories = batch_codes(obs, cfg.batch_column, str(path))
    info = DataInfo(modality="counts", n_features=int(x.shape[1]), is_counts=is_counts, batch_categories=categories)
    return SampleSet(info, x, obs, genes, fields=fields)


def _check_values(x: np.ndarray, where: str, cells: pd.Index, genes: list[str],
                  values: str) -> tuple[bool, np.ndarray]:
    """Refuse NaN/inf (and non-counts when ``values`` is 'counts'); (integral, per-sample totals)."""
    finite = np.isfinite(x)
    if not finite.all():
        row, col = (int(v[0]) for v in np.nonzero(~finite))
        raise DataError(f"{where} has {int((~finite).sum()):,} NaN or infinite values of {x.size:,} (first: cell "
                        f"{cells[row]!r}, gene {genes[col]!r}); impute or drop them before training")
    integral = bool((x >= 0).all() and (x == np.round(x)).all())
    if values == "counts" and not integral:
        raise DataError(f"{where}: data.values = 'counts' needs non-negative integer counts; found "
                        f"{_describe_non_counts(x)}")
    return integral, x.sum(axis=1, dtype=np.float64)


def _check_backed_values(x: BackedCounts, where: str, cells: pd.Index, genes: list[str],
                         values: str) -> tuple[bool, np.ndarray]:
    """:func:`_check_values` read block by block from the file (one pass, the same errors)."""
    n_bad, first_bad, non_counts = 0, None, None
    totals = np.empty(len(x), dtype=np.float64)
    for start, block in x.blocks():
        stored = block.data if sp.issparse(block) else block
        stored = stored.astype(np.float32, copy=False)
        finite = np.isfinite(stored)
        if not finite.all():
            n_bad += int((~finite).sum())
            if first_bad is None:
                dense = block.toarray() if sp.issparse(block) else block
                row, col = (int(v[0]) for v in np.nonzero(~np.isfinite(dense)))
                first_bad = (start + row, col)
        elif non_counts is None and not bool((stored >= 0).all() and (stored == np.round(stored)).all()):
            non_counts = _describe_non_counts(stored)
        totals[start : start + block.shape[0]] = np.asarray(block.sum(axis=1, dtype=np.float64)).ravel()
    if first_bad is not None:
        row, col = first_bad
        raise DataError(f"{where} has {n_bad:,} NaN or infinite values of {len(x) * x.n_cols:,} (first: cell "
                        f"{cells[row]!r}, gene {genes[col]!r}); impute or drop them before training")
    if values == "counts" and non_counts is not None:
        raise DataError(f"{where}: data.values = 'counts' needs non-negative integer counts; found {non_counts}")
    return non_counts is None, totals


def load_dna(cfg: DnaData) -> SampleSet:
    """A FASTA file -> int64 base codes (N, L) padded/truncated to max_length (default: the longest); with
    ``data.window``, the genome's windows read from the file when indexed (``biolatent.data.genome``)."""
    if cfg.window is not None:
        return load_genome_windows(cfg)
    records = read_fasta(require_path(cfg.path, "dna"))
    encoded = [encode_bases(seq) for _, seq in records]
    length = cfg.max_length or max(codes.size for codes in encoded)
    ids = [record_id for record_id, _ in records]
    obs = pd.DataFrame(index=pd.Index(ids))
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    obs["length"] = np.array([codes.size for codes in encoded], dtype=np.int64)
    info = DataInfo(modality="dna", max_length=int(length), kmer=cfg.kmer)
    return SampleSet(info, pad_bases(encoded, length), obs)


def load_genome_windows(cfg: DnaData) -> SampleSet:
    """A genome FASTA cut into windows (``data.window``, ``window_stride``, ``max_n_fraction``, ``exclude_regions``)."""
    from biolatent.data.genome import genome_windows

    assert cfg.window is not None
    path = require_path(cfg.path, "dna")
    windows, obs, counts = genome_windows(path, cfg.window, cfg.window_stride, max_n_fraction=cfg.max_n_fraction,
                                          exclude=cfg.exclude_regions)
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    info = DataInfo(modality="dna", max_length=cfg.window, kmer=cfg.kmer)
    return SampleSet(info, windows, obs, extra={"windows": counts})  # type: ignore[arg-type]


def load_image2d(cfg: Image2dData) -> SampleSet:
    """A folder of images (those its meta.tsv lists, ``data.image_sets``, else all), or a slide (.svs/.tif/.tiff)
    cut into tissue tiles -> float32 (N, C, S, S); with ``data.lazy`` the slide's tiles are cut when a batch needs
    them (``biolatent.data.slide_tiles.SlideTiles``)."""
    path = require_path(cfg.path, "image2d")
    if cfg.lazy and (path.is_dir() or path.suffix.lower() not in SLIDE_SUFFIXES):
        raise DataError(f"data.lazy reads a slide (.svs/.tif/.tiff) tile by tile; {path} is not one: set data.lazy: "
                        "false")
    if path.is_dir() and (path / META).is_file():
        return load_image_set(cfg, path)
    if cfg.lesion_column is not None:
        raise DataError(f"data.lesion_column needs a {META} in {path} naming each image's lesion mask")
    if path.is_dir():
        ids, pixels = read_image_folder(path, cfg.image_size)
        if cfg.max_samples is not None:
            ids, pixels = ids[: cfg.max_samples], pixels[: cfg.max_samples]
        x = torch.from_numpy(np.ascontiguousarray(pixels))
        obs = pd.DataFrame(index=pd.Index(ids))
    elif path.suffix.lower() in SLIDE_SUFFIXES and cfg.lazy:
        x, obs = lazy_slide_tiles(path, cfg.tile_size, cfg.min_tissue_fraction, cfg.max_samples, cfg.image_size)
        obs.index.name = None
    elif path.suffix.lower() in SLIDE_SUFFIXES:
        ids, tiles, obs = read_slide_tiles(path, cfg.tile_size, cfg.min_tissue_fraction, cfg.max_samples)
        x = resize_tiles(tiles, cfg.image_size)
        obs.index.name = None
    else:
        raise DataError(f"image2d data.path must be a folder of images or a .svs/.tif/.tiff slide: {path}")
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    info = DataInfo(modality="image2d", channels=int(x.shape[1]), image_size=cfg.image_size, spatial_dims=2)
    return SampleSet(info, x, obs)


def load_series_data(cfg: SeriesData) -> SampleSet:
    """``series``: one series with its time points as samples (``tabular.load_series``, the anomaly detectors'
    layout) or one sample per series (``series_sets.load_series_set``), as ``data.layout`` says."""
    path = require_path(cfg.path, "series")
    return load_series_set(cfg) if series_layout(cfg, path) == "samples" else load_series(cfg)


LOADERS: dict[str, Callable[..., SampleSet]] = {
    "counts": load_counts,
    "dna": load_dna,
    "image2d": load_image2d,
    "volume": load_volume,
    "cine": load_cine,
    "spatial": load_spatial,
    "records": load_records,
    "series": load_series_data,
    "features": load_features,
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
    if getattr(cfg, "records", None) is not None:
        from biolatent.data.paired import attach_records

        samples = attach_records(samples, load_samples(cfg.records))
    return samples
