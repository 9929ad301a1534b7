"""Whole-slide crops (SVS/TIFF, level 0) cut into a grid of tiles, background tiles dropped.

Tissue is found by Otsu's threshold (N. Otsu 1979, "A threshold selection method from gray-level
histograms", IEEE Trans. Systems, Man, and Cybernetics 9(1):62-66) on the HSV saturation of the whole
slide: stained tissue is saturated, glass background is near white (low saturation).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from PIL import Image

from biolatent.errors import DataError


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the bin centre maximising the between-class variance; foreground = values > t."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("otsu_threshold needs at least one finite value")
    low, high = float(values.min()), float(values.max())
    if low == high:
        return low
    hist, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weights = hist / hist.sum()
    omega = np.cumsum(weights)  # class-0 probability for a cut after each bin
    mu = np.cumsum(weights * centres)
    mu_total = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_total * omega - mu) ** 2 / (omega * (1.0 - omega))
    between = np.nan_to_num(between[:-1], nan=-1.0, posinf=-1.0)  # the last cut leaves class 1 empty
    return float(centres[int(np.argmax(between))])


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation (max - min) / max of uint8 RGB pixels, float32 in [0, 1] (0 where max is 0)."""
    high = rgb.max(axis=-1).astype(np.float32)
    low = rgb.min(axis=-1).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(high > 0, (high - low) / np.maximum(high, 1), 0.0).astype(np.float32)


def _read_level0(path: Path) -> np.ndarray:
    try:
        with tifffile.TiffFile(path) as tif:
            try:
                return tif.series[0].levels[0].asarray()
            except ValueError as exc:
                if "imagecodecs" not in str(exc):
                    raise
        # tifffile needs the optional imagecodecs package for JPEG tiles: let Pillow's libtiff decode them
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore")
            image.seek(0)
            return np.asarray(image.convert("RGB"))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read slide {path} (not a readable SVS/TIFF?): {exc}") from None


def _as_rgb(pixels: np.ndarray, path: Path) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[0] in (3, 4) and pixels.shape[-1] not in (3, 4):
        pixels = np.moveaxis(pixels, 0, -1)  # planar (C, H, W) storage
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    if pixels.ndim != 3 or pixels.shape[-1] not in (3, 4):
        raise DataError(f"slide {path} has pixel shape {pixels.shape}; expected (H, W, 3) RGB")
    pixels = pixels[..., :3]
    if pixels.dtype != np.uint8:
        top = float(np.iinfo(pixels.dtype).max) if np.issubdtype(pixels.dtype, np.integer) else 1.0
        pixels = np.clip(pixels.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels)


def read_slide_tiles(
    path: str | Path, tile_size: int, min_tissue_fraction: float, max_samples: int | None = None
) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """Cut level 0 of a slide into non-overlapping ``tile_size`` tiles and keep those with enough tissue.

    Returns ids ``"x{X}_y{Y}"`` (pixel offsets), uint8 tiles (N, tile, tile, 3) in row-major order and a
    table (index = ids) with columns x, y, tissue_fraction. ``max_samples`` keeps the first N tiles.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"slide not found: {path}")
    rgb = _as_rgb(_read_level0(path), path)
    height, width = rgb.shape[:2]
    if height < tile_size or width < tile_size:
        raise DataError(f"slide {path} ({width}x{height} px) is smaller than one tile of {tile_size} px")
    sat = saturation(rgb)
    tissue = sat > otsu_threshold(sat)
    ny, nx = height // tile_size, width // tile_size
    grid = tissue[: ny * tile_size, : nx * tile_size].reshape(ny, tile_size, nx, tile_size)
    fraction = grid.mean(axis=(1, 3))
    rows, cols = np.nonzero(fraction >= min_tissue_fraction)  # row-major order
    if rows.size == 0:
        raise DataError(f"slide {path}: empty dataset after filtering (no tile of {tile_size} px has a "
                        f"tissue fraction >= {min_tissue_fraction}; the highest is {fraction.max():.3f})")
    if max_samples is not None:
        rows, cols = rows[:max_samples], cols[:max_samples]
    xs, ys = cols * tile_size, rows * tile_size
    tiles = np.stack([rgb[y : y + tile_size, x : x + tile_size] for x, y in zip(xs, ys, strict=True)])
    ids = [f"x{x}_y{y}" for x, y in zip(xs, ys, strict=True)]
    coords = pd.DataFrame(
        {"x": xs.astype(np.int64), "y": ys.astype(np.int64), "tissue_fraction": fraction[rows, cols]},
        index=pd.Index(ids, name="id"),
    )
    return ids, tiles, coords
