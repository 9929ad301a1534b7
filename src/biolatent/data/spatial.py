"""Spatial transcriptomics (10x Visium) as a SampleSet: one sample per in-tissue spot, with an H&E tile centred on
the spot (``x``, cut lazily) and the spot's raw expression (``fields["expression"]``).

Inputs: a Space Ranger output folder, or an ``.h5ad`` with ``obsm["spatial"]`` (spot centres in full-resolution
pixels, x then y) and its images in ``uns["spatial"][library]`` (the scanpy/squidpy convention); ``data.image``
swaps in another image (e.g. the full-resolution whole slide) whose pixels the positions are in, ``data.positions``
another positions table. The tile side is ``tile_diameters`` spot diameters, or ``tile_um`` micrometres using the
spot's physical diameter (``spot_um``; Visium spots are 55 um across).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from biolatent.config import SpatialData
from biolatent.data.inputs import expression_matrix, join_metadata, require_path, resize_tiles
from biolatent.data.lazy_rows import LazyRows
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.errors import ConfigError, DataError
from biolatent.io import visium

if TYPE_CHECKING:
    import anndata

CUT_CHUNK = 64  # tiles resized at once: bounds the float copy of full-resolution crops
BACKGROUND = 255  # white glass beyond the image border


class SpotTiles(LazyRows):
    """(N, 3, S, S) float32 tiles in [0, 1], cut around the spot centres only when indexed.

    Indexed like a read-only tensor (``LazyRows``: ``x[i]``, ``x[a:b]``, ``x[index]``, ``x[bool_mask]`` each return a
    real tensor); ``take`` gives the tiles of some spots as another lazy matrix (pre-training's held-out spots). A
    tile is the ``side`` x ``side`` pixel square around its centre (pixels beyond the image border are white
    background), resized to ``image_size``. Only the image is held.
    """

    dtype = torch.float32
    ndim = 4

    def __init__(self, image: np.ndarray, centres: np.ndarray, side: int, image_size: int) -> None:
        self.image = image
        self.centres = np.asarray(centres, dtype=np.float64)
        self.side = int(side)
        self.image_size = int(image_size)
        self.origins = np.floor(self.centres - self.side / 2 + 0.5).astype(np.int64)  # (N, 2): x0, y0

    def __len__(self) -> int:
        return int(self.centres.shape[0])

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), 3, self.image_size, self.image_size))

    def __repr__(self) -> str:
        return f"SpotTiles(n={len(self)}, side={self.side} px -> {self.image_size}, image={self.image.shape})"

    def take(self, positions: np.ndarray | torch.Tensor) -> SpotTiles:
        """The tiles of the spots at ``positions`` as another lazy matrix (the same image, nothing cut)."""
        return SpotTiles(self.image, self.centres[self.positions(positions)], self.side, self.image_size)

    def numpy(self) -> np.ndarray:
        """Every tile in memory: for the analyses that need all values at once."""
        return self.read(np.arange(len(self))).numpy()

    def read(self, rows: np.ndarray) -> torch.Tensor:
        """The tiles of ``rows`` (non-negative positions) as float32 (len(rows), 3, S, S)."""
        if rows.size == 0:
            return torch.empty((0, 3, self.image_size, self.image_size))
        parts = [resize_tiles(self.crops(rows[i : i + CUT_CHUNK]), self.image_size)
                 for i in range(0, rows.size, CUT_CHUNK)]
        return torch.cat(parts)

    def crops(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (len(rows), side, side, 3) pixel squares, white where they reach beyond the image."""
        height, width = self.image.shape[:2]
        side = self.side
        out = np.full((rows.size, side, side, 3), BACKGROUND, dtype=np.uint8)
        for k, (x0, y0) in enumerate(self.origins[rows]):
            xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
            if xa < xb and ya < yb:
                out[k, ya - y0 : yb - y0, xa - x0 : xb - x0] = self.image[ya:yb, xa:xb]
        return out


@dataclass
class SpotSource:
    """What a spatial input holds before selection: all matrix spots, their positions, the image to tile."""

    expression: anndata.AnnData  # spots x genes, every barcode of the matrix
    positions: pd.DataFrame  # index barcode; in_tissue, array_row, array_col, pxl_row/col_in_fullres
    positions_name: str  # for messages
    image: np.ndarray  # uint8 (H, W, 3)
    image_name: str
    scale: float  # image pixels per position pixel
    spot_diameter_px: float  # in image pixels


def _image_from_folder(cfg: SpatialData, folder: Path) -> tuple[np.ndarray, str, float]:
    """The Space Ranger image chosen by data.resolution and its scale factor (full-res px -> image px)."""
    if cfg.resolution == "fullres":
        raise DataError("data.resolution fullres needs data.image (the full-resolution image): a Space Ranger "
                        "folder holds only the hires and lowres images")
    resolution = cfg.resolution
    if resolution == "auto":
        resolution = "hires" if (folder / "spatial" / "tissue_hires_image.png").is_file() else "lowres"
    path = folder / "spatial" / f"tissue_{resolution}_image.png"
    if not path.is_file():
        raise DataError(f"{folder} has no {resolution} image (spatial/{path.name})")
    factors = visium.read_scalefactors(folder)
    where = str(folder / "spatial" / visium.SCALEFACTORS_FILE)
    return visium.read_rgb(path), str(path), visium.scale_factor(factors, f"tissue_{resolution}_scalef", where)


def _check_own_image(cfg: SpatialData) -> None:
    if cfg.image is not None and cfg.resolution in ("hires", "lowres"):
        raise ConfigError(f"data.resolution {cfg.resolution} picks the input's own image, but data.image is set "
                          "(its pixels are the positions' pixels): use resolution auto or fullres")


def from_space_ranger(cfg: SpatialData, folder: Path) -> SpotSource:
    _check_own_image(cfg)
    expression = visium.read_matrix(visium.find_matrix(folder))
    positions_path = Path(cfg.positions) if cfg.positions is not None else visium.find_positions(folder)
    positions = visium.read_positions(positions_path)
    if cfg.image is not None:
        image, image_name, scale = visium.read_rgb(cfg.image), str(cfg.image), 1.0
    else:
        image, image_name, scale = _image_from_folder(cfg, folder)
    diameter = cfg.spot_diameter_px
    if diameter is None:
        where = str(folder / "spatial" / visium.SCALEFACTORS_FILE)
        diameter = visium.scale_factor(visium.read_scalefactors(folder), "spot_diameter_fullres", where) * scale
    return SpotSource(expression, positions, positions_path.name, image, image_name, scale, diameter)


def _library(adata: anndata.AnnData, name: str | None, path: Path) -> tuple[str, dict]:
    libraries = adata.uns.get("spatial")
    if not isinstance(libraries, dict) or not libraries:
        raise DataError(f"{path} has no uns['spatial'] images: set data.image (and data.spot_diameter_px)")
    if name is None:
        if len(libraries) > 1:
            raise DataError(f"{path} holds {len(libraries)} libraries in uns['spatial'] ({', '.join(libraries)}): "
                            "choose one with data.library")
        name = next(iter(libraries))
    if name not in libraries:
        raise DataError(f"{path} has no library {name!r} in uns['spatial'] (found: {', '.join(libraries)})")
    return name, dict(libraries[name])


def _obsm_positions(adata: anndata.AnnData, path: Path) -> pd.DataFrame:
    """Positions from ``obsm["spatial"]`` (x, y in full-res px) + in_tissue / array_row / array_col of obs."""
    if "spatial" not in adata.obsm:
        raise DataError(f"{path} has no obsm['spatial'] (spot centres) and data.positions is not set")
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise DataError(f"{path}: obsm['spatial'] must be (spots, 2) x/y pixels, got shape {xy.shape}")
    obs = adata.obs
    columns = {key: (pd.to_numeric(obs[key]).to_numpy() if key in obs else np.full(len(obs), default))
               for key, default in (("in_tissue", 1), ("array_row", np.nan), ("array_col", np.nan))}
    return pd.DataFrame({**columns, "pxl_row_in_fullres": xy[:, 1], "pxl_col_in_fullres": xy[:, 0]},
                        index=adata.obs_names.astype(str))


def from_h5ad(cfg: SpatialData, path: Path) -> SpotSource:
    from biolatent.io.h5ad import read_h5ad

    _check_own_image(cfg)
    adata = read_h5ad(path)
    adata.obs_names = adata.obs_names.astype(str)
    if cfg.positions is not None:
        positions, positions_name = visium.read_positions(cfg.positions), Path(cfg.positions).name
    else:
        positions, positions_name = _obsm_positions(adata, path), "obsm['spatial']"
    if cfg.image is not None:
        image, image_name, scale = visium.read_rgb(cfg.image), str(cfg.image), 1.0
        diameter = cfg.spot_diameter_px
        if diameter is None:
            raise DataError(f"data.spot_diameter_px is needed with data.image ({path} gives no scale for it)")
        return SpotSource(adata, positions, positions_name, image, image_name, scale, diameter)
    if cfg.resolution == "fullres":
        raise DataError("data.resolution fullres needs data.image (the full-resolution image)")
    library, entry = _library(adata, cfg.library, path)
    images = entry.get("images") or {}
    resolution = cfg.resolution if cfg.resolution != "auto" else ("hires" if "hires" in images else "lowres")
    where = f"{path} uns['spatial'][{library!r}]"
    if resolution not in images:
        raise DataError(f"{where} has no {resolution} image (found: {', '.join(images) or 'none'})")
    image = visium.as_rgb(np.asarray(images[resolution]), f"{where}['images'][{resolution!r}]")
    factors = dict(entry.get("scalefactors") or {})
    scale = visium.scale_factor(factors, f"tissue_{resolution}_scalef", f"{where}['scalefactors']")
    diameter = cfg.spot_diameter_px or visium.scale_factor(factors, "spot_diameter_fullres",
                                                            f"{where}['scalefactors']") * scale
    return SpotSource(adata, positions, positions_name, image, f"{where}['images'][{resolution!r}]", scale, diameter)


def _example(ids: pd.Index) -> str:
    return ", ".join(repr(str(i)) for i in ids[:3])


def in_tissue_spots(source: SpotSource) -> np.ndarray:
    """Positions (in the matrix) of the in-tissue spots; barcodes that disagree with the positions -> DataError."""
    barcodes = source.expression.obs_names
    positions = source.positions
    unknown = barcodes[~barcodes.isin(positions.index)]
    if len(unknown):
        raise DataError(f"{len(unknown):,} barcodes of the matrix are not in {source.positions_name} (e.g. "
                        f"{_example(unknown)}): the positions and the matrix are not from the same run")
    tissue = positions.index[positions["in_tissue"].to_numpy() == 1]
    absent = tissue[~tissue.isin(barcodes)]
    if len(absent):
        raise DataError(f"{len(absent):,} in-tissue spots of {source.positions_name} are not in the matrix (e.g. "
                        f"{_example(absent)}): the positions and the matrix are not from the same run")
    keep = np.flatnonzero(positions.loc[barcodes, "in_tissue"].to_numpy() == 1)
    if keep.size == 0:
        raise DataError(f"no spot of the matrix is in tissue (in_tissue = 1 in {source.positions_name})")
    return keep


def check_inside(ids: pd.Index, x_px: np.ndarray, y_px: np.ndarray, image: np.ndarray, name: str) -> None:
    height, width = image.shape[:2]
    outside = (x_px < 0) | (x_px >= width) | (y_px < 0) | (y_px >= height)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise DataError(f"{int(outside.sum()):,} of {len(ids):,} spots lie outside the {width} x {height} image "
                        f"{name} (e.g. {str(ids[first])!r} at x={x_px[first]:.1f}, y={y_px[first]:.1f} px): do the "
                        "positions and scale factors belong to this image?")


def check_expression(values: np.ndarray, genes: list[str], ids: pd.Index, where: str) -> bool:
    """DataError for an empty, all-zero or non-finite matrix; True when the values are integer counts."""
    if values.size == 0:
        raise DataError(f"the expression matrix {where} is empty ({values.shape[0]:,} spots x "
                        f"{values.shape[1]:,} genes)")
    finite = np.isfinite(values)
    if not finite.all():
        row, col = (int(v[0]) for v in np.nonzero(~finite))
        raise DataError(f"the expression matrix {where} has a NaN or infinite value (spot {str(ids[row])!r}, "
                        f"gene {genes[col]!r})")
    if not values.any():
        raise DataError(f"the expression matrix {where} has no counts: all {values.shape[0]:,} x "
                        f"{values.shape[1]:,} values of the in-tissue spots are 0")
    return bool((values >= 0).all() and (values == np.round(values)).all())


def tile_side(cfg: SpatialData, spot_diameter_px: float) -> int:
    """Tile side in image pixels: tile_um (through the spot's physical diameter) or tile_diameters spots."""
    side = cfg.tile_um * spot_diameter_px / cfg.spot_um if cfg.tile_um is not None \
        else cfg.tile_diameters * spot_diameter_px
    return max(1, round(side))


def load_spatial(cfg: SpatialData) -> SampleSet:
    """A Space Ranger folder or spatial .h5ad -> lazily cut tiles (N, 3, S, S) + expression (N, G) per spot."""
    path = require_path(cfg.path, "spatial")
    if path.is_dir():
        source = from_space_ranger(cfg, path)
    elif path.suffix.lower() == ".h5ad":
        source = from_h5ad(cfg, path)
    else:
        raise DataError(f"spatial data.path must be a Space Ranger output folder or an .h5ad file: {path}")
    keep = in_tissue_spots(source)
    ids = source.expression.obs_names[keep]
    rows = source.positions.loc[ids]
    x_px = rows["pxl_col_in_fullres"].to_numpy(dtype=np.float64) * source.scale
    y_px = rows["pxl_row_in_fullres"].to_numpy(dtype=np.float64) * source.scale
    check_inside(ids, x_px, y_px, source.image, source.image_name)
    values, genes = expression_matrix(source.expression, cfg.layer, path)
    values = np.ascontiguousarray(values[keep])
    is_counts = check_expression(values, genes, ids, str(path))
    obs = pd.DataFrame({"array_row": rows["array_row"].to_numpy(), "array_col": rows["array_col"].to_numpy(),
                        "x_px": x_px, "y_px": y_px}, index=pd.Index([str(i) for i in ids]))
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    side = tile_side(cfg, source.spot_diameter_px)
    tiles = SpotTiles(source.image, np.stack([x_px, y_px], axis=1), side, cfg.image_size)
    info = DataInfo(modality="spatial", channels=3, image_size=cfg.image_size, spatial_dims=2,
                    n_features=len(genes), is_counts=is_counts)
    extra = {"image": source.image_name, "spot_diameter_px": float(source.spot_diameter_px), "tile_px": side}
    return SampleSet(info, tiles, obs, genes, extra=extra,  # type: ignore[arg-type]
                     fields={"expression": torch.from_numpy(values)})
