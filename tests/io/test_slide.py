"""Slides: Otsu's threshold against a brute-force search, tiling, filtering and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from biolatent.errors import DataError
from biolatent.io.slide import (
    SlideReader,
    find_slide_tiles,
    grid_fractions,
    otsu_threshold,
    pyramid_levels,
    read_slide_tiles,
    saturation,
)


def _between_class_variance(values: np.ndarray, threshold: float) -> float:
    low, high = values[values <= threshold], values[values > threshold]
    if low.size == 0 or high.size == 0:
        return 0.0
    w0, w1 = low.size / values.size, high.size / values.size
    return w0 * w1 * (low.mean() - high.mean()) ** 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0.1, 0.05, 700), rng.normal(0.6, 0.1, 300)])
    brute = max(_between_class_variance(values, t) for t in np.unique(values))
    ours = _between_class_variance(values, otsu_threshold(values))
    assert ours >= 0.995 * brute
    assert 0.15 < otsu_threshold(values) < 0.5


def test_otsu_integers_exact_and_constant():
    values = np.array([0] * 50 + [1] * 10 + [8] * 30 + [9] * 10, dtype=float)
    t = otsu_threshold(values, bins=10)
    assert 1 <= t < 8  # splits {0,1} from {8,9}
    assert otsu_threshold(np.full(10, 0.3)) == pytest.approx(0.3)


def test_saturation_values():
    rgb = np.array([[[255, 255, 255], [255, 0, 0], [0, 0, 0], [200, 100, 100]]], dtype=np.uint8)
    np.testing.assert_allclose(saturation(rgb)[0], [0.0, 1.0, 0.0, 0.5])


def _slide(path, height=96, width=160, tissue=((0, 64, 32, 96),)):
    pixels = np.full((height, width, 3), 240, dtype=np.uint8)  # white glass
    for y0, y1, x0, x1 in tissue:
        pixels[y0:y1, x0:x1] = (180, 60, 140)  # saturated pink tissue
    tifffile.imwrite(path, pixels, photometric="rgb")
    return pixels


def test_tiles_kept_by_tissue_fraction(tmp_path):
    pixels = _slide(tmp_path / "s.tif")
    ids, tiles, coords = read_slide_tiles(tmp_path / "s.tif", 32, 0.5)
    # grid 3 rows x 5 cols of 32 px; tissue covers rows 0-1, columns 1-2 fully
    assert ids == ["x32_y0", "x64_y0", "x32_y32", "x64_y32"]
    assert tiles.shape == (4, 32, 32, 3) and tiles.dtype == np.uint8
    np.testing.assert_array_equal(tiles[2], pixels[32:64, 32:64])
    assert list(coords.columns) == ["x", "y", "tissue_fraction"]
    assert coords.loc["x64_y32", "y"] == 32 and (coords["tissue_fraction"] == 1.0).all()
    ids_half, _, coords_half = read_slide_tiles(tmp_path / "s.tif", 64, 0.25, max_samples=1)
    assert ids_half == ["x0_y0"] and coords_half["tissue_fraction"].iloc[0] == pytest.approx(0.5)


def test_slide_errors(tmp_path):
    with pytest.raises(DataError, match="slide not found"):
        read_slide_tiles(tmp_path / "none.svs", 32, 0.5)
    (tmp_path / "junk.svs").write_bytes(b"II*\x00garbage")
    with pytest.raises(DataError, match=r"cannot read slide .*junk\.svs"):
        read_slide_tiles(tmp_path / "junk.svs", 32, 0.5)
    _slide(tmp_path / "small.tif", height=20, width=40, tissue=())
    with pytest.raises(DataError, match=r"\(40x20 px\) is smaller than one tile of 32 px"):
        read_slide_tiles(tmp_path / "small.tif", 32, 0.5)
    _slide(tmp_path / "speck.tif", tissue=((0, 4, 0, 4),))
    with pytest.raises(DataError, match="empty dataset after filtering"):
        read_slide_tiles(tmp_path / "speck.tif", 32, 0.5)


# -- region reads, tissue from a low-resolution view, lazy cutting -------------------------------------------------

def _noisy_slide(height=200, width=232, seed=0):
    """Glass with noise and two tissue blobs: Otsu's threshold is not trivial and tiles have partial tissue."""
    rng = np.random.default_rng(seed)
    pixels = np.full((height, width, 3), 235, dtype=np.int64) + rng.integers(-12, 12, (height, width, 3))
    yy, xx = np.mgrid[:height, :width]
    blob = ((yy - 70) ** 2 + (xx - 80) ** 2 < 55**2) | ((yy - 150) ** 2 / 4 + (xx - 180) ** 2 < 30**2)
    pixels[blob] = np.array([175, 70, 140]) + rng.integers(-30, 30, (int(blob.sum()), 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _write(path, pixels, **kwargs):
    tifffile.imwrite(path, pixels, photometric="rgb", **kwargs)
    return path


@pytest.mark.parametrize("layout", [{"tile": (64, 64)}, {"rowsperstrip": 24},
                                    {"tile": (48, 80), "compression": "zlib"}])
def test_regions_equal_level0_and_decode_only_what_they_overlap(tmp_path, layout):
    pixels = _noisy_slide()
    reader = SlideReader(_write(tmp_path / "s.tif", pixels, **layout))
    assert (reader.height, reader.width) == pixels.shape[:2]
    for x, y, w, h in [(0, 0, 232, 200), (5, 7, 33, 40), (190, 150, 42, 50), (64, 64, 1, 1)]:
        seen = []
        original = reader.segment
        reader.segment = lambda index, seen=seen, original=original: seen.append(index) or original(index)
        np.testing.assert_array_equal(reader.region(x, y, w, h), pixels[y : y + h, x : x + w])
        rows = range(y // reader.seg_h, (y + h - 1) // reader.seg_h + 1)
        cols = range(x // reader.seg_w, (x + w - 1) // reader.seg_w + 1)
        assert sorted(seen) == sorted(r * reader.per_row + c for r in rows for c in cols)
        del reader.segment
    with pytest.raises(ValueError, match="outside"):
        reader.region(200, 0, 40, 10)


@pytest.mark.parametrize("strip_pixels", [1 << 24, 232 * 40])
@pytest.mark.parametrize("tile_size", [32, 40])
def test_streamed_tissue_equals_level0_read_whole(tmp_path, monkeypatch, strip_pixels, tile_size):
    """Without pyramid levels the mask is level 0's own: the strips (several when STRIP_PIXELS is small, not aligned
    with the TIFF tiles) give the tiles and fractions of the whole-level read exactly."""
    import biolatent.io.slide as slide

    monkeypatch.setattr(slide, "STRIP_PIXELS", strip_pixels)
    path = _write(tmp_path / "s.tif", _noisy_slide(), tile=(64, 64))
    ids, _, coords = read_slide_tiles(path, tile_size, 0.3)
    decoded = []
    segment = SlideReader.segment
    monkeypatch.setattr(SlideReader, "segment", lambda self, index: decoded.append(index) or segment(self, index))
    _, lazy_ids, lazy_coords = find_slide_tiles(path, tile_size, 0.3)
    assert sorted(decoded) == sorted(list(range(16)) * 2)  # 4 x 4 TIFF tiles, each decoded once per pass
    assert lazy_ids == ids and 3 < len(ids)
    assert 0.3 <= coords["tissue_fraction"].min() < 1.0  # partial tiles kept: the fractions are compared too
    pd.testing.assert_frame_equal(lazy_coords, coords)
    sat = saturation(_noisy_slide())
    full = grid_fractions(sat > otsu_threshold(sat), tile_size)
    assert coords["tissue_fraction"].tolist() == full[full >= 0.3].tolist()


def _centre_rule(mask, level0, tile_size):
    """Independent loop: each level-0 tile's mean of the low-resolution mask at the pixels whose scaled centres lie in
    the tile, else the pixel holding the tile's centre; and how many tiles took that fallback."""
    height, width = level0
    sy, sx = height / mask.shape[0], width / mask.shape[1]
    out, fallbacks = np.zeros((height // tile_size, width // tile_size)), 0
    for ty in range(out.shape[0]):
        for tx in range(out.shape[1]):
            values = [mask[r, c] for r in range(mask.shape[0]) for c in range(mask.shape[1])
                      if ty * tile_size <= (r + 0.5) * sy < (ty + 1) * tile_size
                      and tx * tile_size <= (c + 0.5) * sx < (tx + 1) * tile_size]
            if values:
                out[ty, tx] = np.mean(values)
            else:
                out[ty, tx] = mask[int((ty + 0.5) * tile_size / sy), int((tx + 0.5) * tile_size / sx)]
                fallbacks += 1
    return out, fallbacks


@pytest.mark.parametrize(("shapes", "tile_size"), [([(67, 77)], 32), ([(50, 58), (13, 15)], 8)])
def test_pyramid_tissue_comes_from_the_smallest_level(tmp_path, shapes, tile_size):
    """Non-integer scales (200 / 67, 232 / 77); with tiles of 8 px on the 13 x 15 level some tiles hold no scaled
    centre (the fallback); tissue painted on the smallest level only (level 0 would not choose those tiles)."""
    pixels = _noisy_slide()
    levels = [np.asarray(Image.fromarray(pixels).resize(shape[::-1], Image.BILINEAR)).copy() for shape in shapes]
    low = levels[-1]
    low[: low.shape[0] // 3, -low.shape[1] // 3 :] = (170, 50, 150)
    path = tmp_path / "p.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(pixels, tile=(64, 64), subifds=len(levels), photometric="rgb")
        for level in levels:
            tif.write(level, subfiletype=1, photometric="rgb", rowsperstrip=5)
    assert pyramid_levels(path) == 1 + len(levels)
    sat = saturation(low)
    expected, fallbacks = _centre_rule(sat > otsu_threshold(sat), pixels.shape[:2], tile_size)
    assert (fallbacks > 0) == (tile_size == 8)
    _, ids, coords = find_slide_tiles(path, tile_size, 0.5)
    rows, cols = np.nonzero(expected >= 0.5)
    assert ids == [f"x{c * tile_size}_y{r * tile_size}" for r, c in zip(rows, cols, strict=True)]
    np.testing.assert_allclose(coords["tissue_fraction"], expected[rows, cols], rtol=0, atol=1e-12)
    level0_sat = saturation(pixels)
    level0 = grid_fractions(level0_sat > otsu_threshold(level0_sat), tile_size)
    assert ((expected >= 0.5) & (level0 < 0.5)).any()  # the small level decides, not level 0
    eager_ids, tiles, eager_coords = read_slide_tiles(path, tile_size, 0.5)
    assert eager_ids == ids  # the eager read chooses the same tiles from the same level
    pd.testing.assert_frame_equal(eager_coords, coords)
    x, y = int(coords["x"].iloc[-1]), int(coords["y"].iloc[-1])
    np.testing.assert_array_equal(tiles[-1], pixels[y : y + tile_size, x : x + tile_size])


def test_jpeg_tiles_without_imagecodecs_and_unreadable_compressions(tmp_path):
    pixels = _noisy_slide()
    Image.fromarray(pixels).save(tmp_path / "j.tif", compression="jpeg", quality=90)  # tifffile needs imagecodecs
    ids, tiles, coords = read_slide_tiles(tmp_path / "j.tif", 32, 0.5)  # Pillow decodes level 0 whole
    reader, lazy_ids, lazy_coords = find_slide_tiles(tmp_path / "j.tif", 32, 0.5)
    assert lazy_ids == ids
    pd.testing.assert_frame_equal(lazy_coords, coords)
    for k, (x, y) in enumerate(zip(coords["x"], coords["y"], strict=True)):
        np.testing.assert_array_equal(reader.region(x, y, 32, 32), tiles[k])
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        Image.fromarray(pixels).save(tmp_path / "lzw.tif", compression="tiff_lzw")
        assert read_slide_tiles(tmp_path / "lzw.tif", 32, 0.5)[0] == ids  # eager: Pillow reads it
        with pytest.raises(DataError, match=r"region by region .*LZW.*pip install imagecodecs.*data\.lazy: false"):
            find_slide_tiles(tmp_path / "lzw.tif", 32, 0.5)


def test_a_slide_modified_during_the_run_is_refused(tmp_path):
    import os

    path = _write(tmp_path / "s.tif", _noisy_slide(), tile=(64, 64))
    reader, _, _ = find_slide_tiles(path, 32, 0.5)
    reader.region(0, 0, 32, 32)
    reader.check_unchanged()
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="was modified during the run"):
        reader.check_unchanged()


def test_a_corrupt_tile_is_one_line(tmp_path):
    path = _write(tmp_path / "z.tif", _noisy_slide(), tile=(64, 64), compression="zlib")
    reader = SlideReader(path)
    offset = int(reader.page.dataoffsets[5])
    reader.close()
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 16] = b"\xff" * 16
    path.write_bytes(bytes(raw))
    reader = SlideReader(path)
    np.testing.assert_array_equal(reader.region(0, 0, 64, 64), _noisy_slide()[:64, :64])  # tile 0 is intact
    with pytest.raises(DataError, match=r"z\.tif: tile/strip 5 of level 0 is corrupt"):
        reader.region(64, 64, 10, 10)
