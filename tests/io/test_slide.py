"""Slides: Otsu's threshold against a brute-force search, tiling, filtering and errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from biolatent.errors import DataError
from biolatent.io.slide import otsu_threshold, read_slide_tiles, saturation


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
