"""Whole-slide crops (SVS/TIFF, level 0) cut into a grid of tiles, background tiles dropped; level 0 read whole
(``read_slide_tiles``) or region by region (``SlideReader``, ``find_slide_tiles``: memory for a tile, not a slide).

Tissue is found by Otsu's threshold (N. Otsu 1979, "A threshold selection method from gray-level
histograms", IEEE Trans. Systems, Man, and Cybernetics 9(1):62-66) on the HSV saturation of the slide:
stained tissue is saturated, glass background is near white (low saturation). The mask is computed on
a low-resolution view (``tissue_fractions``):

* a slide without pyramid levels: level 0 itself, read in row strips (two passes: the counts of each pixel's
  (max, min) RGB pair, which fix the saturation histogram and threshold exactly, then the tissue pixels of each
  tile), so the mask and every tile's tissue fraction are exactly those of level 0 read whole;
* a pyramidal slide (tifffile ``series[0].levels``): its smallest level. A level-0 tile's tissue fraction is the
  mean of the low-resolution mask over the low-resolution pixels whose centres, scaled to level-0 pixels
  (``((col + 0.5) * sx, (row + 0.5) * sy)`` with ``sx, sy`` = level-0 width / level width, height / level height),
  lie inside the tile; a tile holding no such centre (a tile smaller than a low-resolution pixel) takes the mask
  value of the low-resolution pixel holding its own centre.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile
from PIL import Image, ImageFile

from biolatent.errors import DataError
from biolatent.io.file_stamp import check_unchanged, file_stamp

STRIP_PIXELS = 1 << 22  # level-0 pixels per row strip of the streamed tissue passes (12 MiB of RGB)
OTSU_BINS = 256


def otsu_from_histogram(hist: np.ndarray, low: float, high: float) -> float:
    """Otsu's threshold of values whose histogram over ``(low, high)`` is ``hist``: the bin centre maximising the
    between-class variance."""
    edges = np.linspace(low, high, hist.size + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    weights = hist / hist.sum()
    omega = np.cumsum(weights)  # class-0 probability for a cut after each bin
    mu = np.cumsum(weights * centres)
    mu_total = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_total * omega - mu) ** 2 / (omega * (1.0 - omega))
    between = np.nan_to_num(between[:-1], nan=-1.0, posinf=-1.0)  # the last cut leaves class 1 empty
    return float(centres[int(np.argmax(between))])


def otsu_threshold(values: np.ndarray, bins: int = OTSU_BINS) -> float:
    """Otsu's threshold: the bin centre maximising the between-class variance; foreground = values > t."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("otsu_threshold needs at least one finite value")
    low, high = float(values.min()), float(values.max())
    if low == high:
        return low
    hist, _ = np.histogram(values, bins=bins, range=(low, high))
    return otsu_from_histogram(hist, low, high)


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


def _rgb8(pixels: np.ndarray, path: Path) -> np.ndarray:
    """(H, W[, C]) pixels -> uint8 (H, W, 3): grey repeated, alpha dropped, other types scaled to 0-255."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    if pixels.ndim != 3 or pixels.shape[-1] not in (3, 4):
        raise DataError(f"slide {path} has pixel shape {pixels.shape}; expected (H, W, 3) RGB")
    pixels = pixels[..., :3]
    if pixels.dtype != np.uint8:
        top = float(np.iinfo(pixels.dtype).max) if np.issubdtype(pixels.dtype, np.integer) else 1.0
        pixels = np.clip(pixels.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels)


def _as_rgb(pixels: np.ndarray, path: Path) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[0] in (3, 4) and pixels.shape[-1] not in (3, 4):
        pixels = np.moveaxis(pixels, 0, -1)  # planar (C, H, W) storage
    return _rgb8(pixels, path)


def _lazy_error(path: Path, why: str, level: int = 0) -> DataError:
    """The one-line error of a slide whose tiles cannot be decoded one by one; level 0 can still be read whole
    (Pillow's libtiff), a lower pyramid level (tissue detection) cannot."""
    other = " or set data.lazy: false to read level 0 whole" if level == 0 else ""
    return DataError(f"cannot read slide {path} region by region (level {level}: {why}): install imagecodecs (pip "
                     f"install imagecodecs){other}")


def _pillow_jpeg(page: Any, data: bytes, path: Path, level: int) -> np.ndarray:
    """One JPEG tile/strip decoded by Pillow (tifffile needs imagecodecs for JPEG): the page's JPEGTables
    prepended to the abbreviated stream; Aperio's RGB-coded JPEG (photometric RGB, no JFIF marker) decoded
    without a YCbCr conversion, as tifffile's ``jpeg_decode_colorspace`` does."""
    if page.photometric == 2 and not page.is_jfif:
        jpegmode = "RGB"
    elif page.photometric in (2, 6):
        jpegmode = ""
    else:
        raise _lazy_error(path, f"JPEG with photometric {page.photometric}", level)
    tables = page.jpegtables
    stream = data if not tables else bytes(tables[:-2]) + data[2:]  # tables without EOI + tile without SOI
    try:
        with Image.open(io.BytesIO(stream)) as image:
            codec, extents, offset, args = image.tile[0]
            image.tile = [ImageFile._Tile(codec, extents, offset, (args[0], jpegmode))]
            return np.asarray(image.convert("RGB"))
    except DataError:
        raise
    except Exception as exc:
        raise _lazy_error(path, f"Pillow cannot decode its JPEG tiles: {exc}", level) from None


class SlideReader:
    """Rectangles of one pyramid level of a slide (``level`` 0 = full resolution), decoding only the TIFF tiles
    or strips they overlap. ``segments_read`` counts the tiles/strips decoded. Picklable (the file is reopened in
    each process); a file that changed since the reader was made is refused (``io.file_stamp``)."""

    def __init__(self, path: str | Path, level: int = 0, stamp: tuple[int, int, int] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"slide not found: {self.path}")
        self.level = int(level)
        self.stamp = stamp or file_stamp(self.path)
        self.segments_read = 0
        self._tif: tifffile.TiffFile | None = None
        self._page: Any = None
        page = self.page
        if page.planarconfig != 1 or page.imagedepth != 1:
            raise _lazy_error(self.path, "planar or 3D storage", self.level)
        self.height, self.width = int(page.imagelength), int(page.imagewidth)
        if page.is_tiled:
            self.seg_w, self.seg_h = int(page.tilewidth), int(page.tilelength)
        else:
            self.seg_w, self.seg_h = self.width, int(page.rowsperstrip or self.height)
        self.per_row = -(-self.width // self.seg_w)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tif": None, "_page": None}

    @property
    def page(self) -> Any:
        """The level's first page (tifffile ``TiffPage``)."""
        if self._tif is None:
            try:
                self._tif = tifffile.TiffFile(self.path)
                levels = self._tif.series[0].levels
                self._page = levels[self.level].keyframe
                if len(levels[self.level].pages) != 1:
                    raise ValueError(f"series 0 has {len(levels[self.level].pages)} pages per level")
            except Exception as exc:
                self.close()
                raise DataError(f"cannot read slide {self.path} (not a readable SVS/TIFF?): {exc}") from None
        return self._page

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()
            self._tif = None

    def check_unchanged(self) -> None:
        check_unchanged(self.path, self.stamp)

    def segment(self, index: int) -> np.ndarray:
        """The decoded tile/strip ``index`` (row-major) as (rows, cols, samples), edge tiles uncropped."""
        page = self.page
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        self.segments_read += 1
        rows = min(self.seg_h, self.height - (index // self.per_row) * self.seg_h) if not page.is_tiled else self.seg_h
        if count == 0:  # a missing segment: tifffile's fill value 0
            return np.zeros((rows, self.seg_w, page.samplesperpixel), dtype=page.dtype)
        handle = self._tif.filehandle  # type: ignore[union-attr]
        with handle.lock:
            handle.seek(offset)
            data = handle.read(count)
        try:
            decoded, _, shape = page.decode(data, index, jpegtables=page.jpegtables)
        except (ValueError, NotImplementedError) as exc:
            if page.compression != 7 or "imagecodecs" not in str(exc):
                raise _lazy_error(self.path, str(exc), self.level) from None
            return _pillow_jpeg(page, data, self.path, self.level)
        except Exception as exc:
            raise DataError(f"cannot read slide {self.path}: tile/strip {index} of level {self.level} is corrupt "
                            f"({exc})") from None
        return np.asarray(decoded).reshape(shape[1], shape[2], shape[3])

    def region(self, x: int, y: int, width: int, height: int, cache: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """uint8 (height, width, 3) pixels of the rectangle at (x, y) (inside the level); ``cache`` keeps decoded
        segments between calls (one batch's tiles often share a TIFF tile)."""
        if x < 0 or y < 0 or x + width > self.width or y + height > self.height:
            raise ValueError(f"region {width}x{height} at ({x}, {y}) outside the {self.width}x{self.height} level")
        cache = {} if cache is None else cache
        out: np.ndarray | None = None
        for row in range(y // self.seg_h, (y + height - 1) // self.seg_h + 1):
            for col in range(x // self.seg_w, (x + width - 1) // self.seg_w + 1):
                index = row * self.per_row + col
                if index not in cache:
                    cache[index] = self.segment(index)
                seg = cache[index]
                y0, x0 = row * self.seg_h, col * self.seg_w
                ya, yb = max(y, y0), min(y + height, y0 + self.seg_h)
                xa, xb = max(x, x0), min(x + width, x0 + self.seg_w)
                if out is None:
                    out = np.zeros((height, width, seg.shape[-1]), dtype=seg.dtype)
                out[ya - y : yb - y, xa - x : xb - x] = seg[ya - y0 : yb - y0, xa - x0 : xb - x0]
        assert out is not None
        return _rgb8(out[..., 0] if out.shape[-1] == 1 else out, self.path)

    def whole(self) -> np.ndarray:
        """The whole level as uint8 (H, W, 3): for a small (low-resolution) level."""
        return self.region(0, 0, self.width, self.height)


def pyramid_levels(path: Path) -> int:
    """The number of resolution levels of the slide's first series (1: no pyramid)."""
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.series[0].levels)
    except Exception as exc:
        raise DataError(f"cannot read slide {path} (not a readable SVS/TIFF?): {exc}") from None


def _strips(reader: SlideReader, tile_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Level 0 in row strips (a multiple of the tile side high): (y, uint8 strip). The TIFF tiles a strip shares
    with the next one are kept, not decoded twice."""
    rows = max(tile_size, STRIP_PIXELS // max(reader.width, 1) // tile_size * tile_size)
    cache: dict[int, np.ndarray] = {}
    for y in range(0, reader.height, rows):
        yield y, reader.region(0, y, reader.width, min(rows, reader.height - y), cache)
        first_needed = (y + rows) // reader.seg_h * reader.per_row  # segments of rows the next strip still needs
        for index in [i for i in cache if i < first_needed]:
            del cache[index]


def _pair_counts(strip: np.ndarray) -> np.ndarray:
    """How often each (max, min) pair of a pixel's RGB values occurs, as counts over ``max * 256 + min``: all that a
    pixel's saturation depends on."""
    code = strip.max(axis=-1).astype(np.uint16) * 256 + strip.min(axis=-1)
    return np.bincount(code.ravel(), minlength=256 * 256)


def _streamed_threshold(reader: SlideReader, tile_size: int) -> float:
    """``otsu_threshold(saturation(level0))`` from one pass over the strips: a uint8 pixel's saturation depends only
    on its (max, min) pair, so the counts of the 65,536 pairs give the exact histogram of the saturation values."""
    counts = np.zeros(256 * 256, dtype=np.int64)
    for _, strip in _strips(reader, tile_size):
        counts += _pair_counts(strip)
    codes = np.flatnonzero(counts)
    high, low = codes // 256, codes % 256
    values = saturation(np.stack([high, low, low], axis=-1).astype(np.uint8)).astype(np.float64)
    first, last = float(values.min()), float(values.max())
    if first == last:
        return first
    hist, _ = np.histogram(values, bins=OTSU_BINS, range=(first, last), weights=counts[codes].astype(np.float64))
    return otsu_from_histogram(hist, first, last)


def streamed_fractions(reader: SlideReader, tile_size: int) -> np.ndarray:
    """(ny, nx) tissue fractions of level 0's tiles from its full-resolution mask, read in strips twice (the
    threshold, then each tile's tissue pixels): equal to ``grid_fractions(saturation(level0) >
    otsu_threshold(saturation(level0)))`` without level 0 in memory."""
    threshold = _streamed_threshold(reader, tile_size)
    ny, nx = reader.height // tile_size, reader.width // tile_size
    counts = np.zeros((ny, nx), dtype=np.int64)
    for y, strip in _strips(reader, tile_size):
        tissue = saturation(strip) > threshold
        rows = min(tissue.shape[0], ny * tile_size - y) // tile_size
        if rows > 0:
            part = tissue[: rows * tile_size, : nx * tile_size].reshape(rows, tile_size, nx, tile_size)
            counts[y // tile_size : y // tile_size + rows] = part.sum(axis=(1, 3))
    return counts / float(tile_size * tile_size)


def grid_fractions(tissue: np.ndarray, tile_size: int) -> np.ndarray:
    """(ny, nx) tissue fractions of the whole tiles of a full-resolution mask."""
    ny, nx = tissue.shape[0] // tile_size, tissue.shape[1] // tile_size
    grid = tissue[: ny * tile_size, : nx * tile_size].reshape(ny, tile_size, nx, tile_size)
    return grid.mean(axis=(1, 3))


def low_resolution_fractions(mask: np.ndarray, level0: tuple[int, int], tile_size: int) -> np.ndarray:
    """(ny, nx) tissue fractions of level-0 tiles from a low-resolution mask (module docstring: the low-resolution
    pixels whose scaled centres lie in the tile; else the pixel holding the tile's centre)."""
    height, width = level0
    sy, sx = height / mask.shape[0], width / mask.shape[1]
    ny, nx = height // tile_size, width // tile_size
    tile_row = np.floor((np.arange(mask.shape[0]) + 0.5) * sy / tile_size).astype(np.int64)
    tile_col = np.floor((np.arange(mask.shape[1]) + 0.5) * sx / tile_size).astype(np.int64)
    rows_ok, cols_ok = tile_row < ny, tile_col < nx
    sub = mask[np.ix_(rows_ok, cols_ok)].astype(np.int64)
    flat = tile_row[rows_ok][:, None] * nx + tile_col[cols_ok][None, :]
    tissue = np.bincount(flat.ravel(), weights=sub.ravel(), minlength=ny * nx).reshape(ny, nx)
    pixels = np.bincount(flat.ravel(), minlength=ny * nx).reshape(ny, nx).astype(np.float64)
    fraction = np.divide(tissue, pixels, out=np.zeros((ny, nx)), where=pixels > 0)
    empty_rows, empty_cols = np.nonzero(pixels == 0)
    if empty_rows.size:
        centre_y = ((empty_rows + 0.5) * tile_size / sy).astype(np.int64).clip(0, mask.shape[0] - 1)
        centre_x = ((empty_cols + 0.5) * tile_size / sx).astype(np.int64).clip(0, mask.shape[1] - 1)
        fraction[empty_rows, empty_cols] = mask[centre_y, centre_x]
    return fraction


def _pyramid_fractions(path: Path, stamp: tuple[int, int, int], level0: tuple[int, int], tile_size: int,
                       levels: int) -> np.ndarray:
    low = SlideReader(path, levels - 1, stamp)
    try:
        sat = saturation(low.whole())
    finally:
        low.close()
    return low_resolution_fractions(sat > otsu_threshold(sat), level0, tile_size)


def _check_size(path: Path, height: int, width: int, tile_size: int) -> None:
    if height < tile_size or width < tile_size:
        raise DataError(f"slide {path} ({width}x{height} px) is smaller than one tile of {tile_size} px")


def _select(path: Path, fraction: np.ndarray, tile_size: int, min_tissue_fraction: float,
            max_samples: int | None) -> tuple[list[str], pd.DataFrame]:
    """The tiles with enough tissue in row-major order: ids ``"x{X}_y{Y}"`` and the table x, y, tissue_fraction."""
    rows, cols = np.nonzero(fraction >= min_tissue_fraction)  # row-major order
    if rows.size == 0:
        raise DataError(f"slide {path}: empty dataset after filtering (no tile of {tile_size} px has a "
                        f"tissue fraction >= {min_tissue_fraction}; the highest is {fraction.max():.3f})")
    if max_samples is not None:
        rows, cols = rows[:max_samples], cols[:max_samples]
    xs, ys = cols * tile_size, rows * tile_size
    ids = [f"x{x}_y{y}" for x, y in zip(xs, ys, strict=True)]
    coords = pd.DataFrame(
        {"x": xs.astype(np.int64), "y": ys.astype(np.int64), "tissue_fraction": fraction[rows, cols]},
        index=pd.Index(ids, name="id"),
    )
    return ids, coords


def find_slide_tiles(
    path: str | Path, tile_size: int, min_tissue_fraction: float, max_samples: int | None = None
) -> tuple[SlideReader, list[str], pd.DataFrame]:
    """The tissue tiles of a slide as ``read_slide_tiles`` chooses them, without reading level 0 whole: a level-0
    ``SlideReader`` (to cut them later), their ids and table (x, y, tissue_fraction)."""
    reader = SlideReader(path)
    _check_size(reader.path, reader.height, reader.width, tile_size)
    levels = pyramid_levels(reader.path)
    if levels > 1:
        fraction = _pyramid_fractions(reader.path, reader.stamp, (reader.height, reader.width), tile_size, levels)
    else:
        fraction = streamed_fractions(reader, tile_size)
    reader.check_unchanged()
    ids, coords = _select(reader.path, fraction, tile_size, min_tissue_fraction, max_samples)
    return reader, ids, coords


def read_slide_tiles(
    path: str | Path, tile_size: int, min_tissue_fraction: float, max_samples: int | None = None
) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """Cut level 0 of a slide into non-overlapping ``tile_size`` tiles and keep those with enough tissue.

    Returns ids ``"x{X}_y{Y}"`` (pixel offsets), uint8 tiles (N, tile, tile, 3) in row-major order and a
    table (index = ids) with columns x, y, tissue_fraction. ``max_samples`` keeps the first N tiles. Level 0 is
    read whole; the tissue mask is level 0's own, or a pyramidal slide's smallest level (module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"slide not found: {path}")
    rgb = _as_rgb(_read_level0(path), path)
    height, width = rgb.shape[:2]
    _check_size(path, height, width, tile_size)
    levels = pyramid_levels(path)
    if levels > 1:
        fraction = _pyramid_fractions(path, file_stamp(path), (height, width), tile_size, levels)
    else:
        sat = saturation(rgb)
        fraction = grid_fractions(sat > otsu_threshold(sat), tile_size)
    ids, coords = _select(path, fraction, tile_size, min_tissue_fraction, max_samples)
    xs, ys = coords["x"].to_numpy(), coords["y"].to_numpy()
    tiles = np.stack([rgb[y : y + tile_size, x : x + tile_size] for x, y in zip(xs, ys, strict=True)])
    return ids, tiles, coords
