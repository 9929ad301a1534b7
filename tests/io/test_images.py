"""Image folders: channels, resizing, value range, order, and errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from biolatent.errors import DataError
from biolatent.io.images import read_image_folder, write_png


def _gray(value: int, size: int = 8) -> np.ndarray:
    return np.full((size, size), value, dtype=np.uint8)


def test_grayscale_folder_has_one_channel_sorted_by_name(tmp_path):
    write_png(tmp_path / "b.png", _gray(255))
    write_png(tmp_path / "a.png", _gray(0))
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(tmp_path / "c.tif")
    ids, x = read_image_folder(tmp_path, 4)
    assert ids == ["a", "b", "c"]
    assert x.shape == (3, 1, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0, 0], [0.0, 1.0, 1.0], atol=1e-6)


def test_mixed_folder_is_rgb_rgba_drops_alpha_and_resizes(tmp_path):
    rgba = np.zeros((10, 6, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 0  # fully transparent: alpha must not change the colour
    write_png(tmp_path / "red.png", rgba)
    write_png(tmp_path / "gray.png", _gray(51))
    Image.fromarray(np.full((8, 8, 3), 102, dtype=np.uint8)).save(tmp_path / "j.jpg", quality=100)
    ids, x = read_image_folder(tmp_path, 16)
    assert ids == ["gray", "j", "red"]
    assert x.shape == (3, 3, 16, 16)
    np.testing.assert_allclose(x[0], 0.2, atol=1e-6)  # gray repeated on 3 channels
    np.testing.assert_allclose(x[1], 0.4, atol=0.02)
    np.testing.assert_allclose(x[2, :, 5, 5], [1.0, 0.0, 0.0], atol=1e-6)
    assert x.min() >= 0 and x.max() <= 1


def test_bilinear_resize_averages(tmp_path):
    checker = np.kron([[0, 255] * 4, [255, 0] * 4] * 4, np.ones((1, 1))).astype(np.uint8)
    write_png(tmp_path / "c.png", checker)
    _, x = read_image_folder(tmp_path, 4)
    assert abs(float(x.mean()) - 0.5) < 0.05
    assert float(x.std()) < 0.2  # neighbouring pixels were blended


def test_errors(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        read_image_folder(tmp_path / "none", 8)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no images"):
        read_image_folder(tmp_path, 8)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match=r"cannot read image .*bad\.png"):
        read_image_folder(tmp_path, 8)
    (tmp_path / "bad.png").unlink()
    write_png(tmp_path / "x.png", _gray(1))
    write_png(tmp_path / "x.tif", _gray(1))
    with pytest.raises(DataError, match=r"two images share the id 'x'.*x\.png and x\.tif"):
        read_image_folder(tmp_path, 8)


def test_write_png_rejects_non_uint8(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "f.png", np.zeros((4, 4), dtype=np.float32))
