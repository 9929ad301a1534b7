"""Folders of 2D images (PNG/TIFF/JPEG) as one float32 (N, C, H, W) array in [0, 1], and PNG writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from biolatent.errors import DataError
from biolatent.rundir import atomic_path

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
_COLOUR_MODES = {"RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA"}


def list_images(folder: str | Path) -> list[Path]:
    """Image files of ``folder`` (not recursive), sorted by name; DataError if none or stems repeat."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images (.png, .tif, .tiff, .jpg, .jpeg) in folder {folder}")
    seen: dict[str, Path] = {}
    for file in files:
        if file.stem in seen:
            raise DataError(f"two images share the id {file.stem!r} in {folder}: {seen[file.stem].name} and "
                            f"{file.name}")
        seen[file.stem] = file
    return files


def _open(file: Path) -> Image.Image:
    try:
        with Image.open(file) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {file} (corrupt or not an image): {exc}") from None


def _to_planes(image: Image.Image) -> list[Image.Image]:
    """An image as float ('F' mode) planes in [0, 1]: one plane for grayscale, three for colour."""
    mode = image.mode
    if mode in _COLOUR_MODES:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return [Image.fromarray(np.ascontiguousarray(rgb[..., c]), mode="F") for c in range(3)]
    if mode in {"1", "L", "LA"}:
        gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    elif mode.startswith("I;16") or mode == "I":
        gray = np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0.0, 1.0)
    elif mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    else:
        raise DataError(f"image {getattr(image, 'filename', '')} has an unsupported mode {mode!r}")
    return [Image.fromarray(np.ascontiguousarray(gray), mode="F")]


def read_image_folder(folder: str | Path, image_size: int) -> tuple[list[str], np.ndarray]:
    """Read every image of ``folder`` -> (ids = file stems, float32 (N, C, image_size, image_size) in [0, 1]).

    C is 1 only if every image is grayscale, else 3 (grayscale images are repeated, RGBA drops alpha).
    Images are resized with bilinear interpolation; 16-bit images are scaled by 1/65535.
    """
    files = list_images(folder)
    return [f.stem for f in files], read_image_files(files, image_size)


def read_image_files(files: list[Path], image_size: int) -> np.ndarray:
    """float32 (N, C, image_size, image_size) in [0, 1] of the listed image files (as ``read_image_folder``)."""
    planes = [_to_planes(_open(file)) for file in files]
    channels = 1 if all(len(p) == 1 for p in planes) else 3
    out = np.empty((len(files), channels, image_size, image_size), dtype=np.float32)
    size = (image_size, image_size)
    for row, image_planes in enumerate(planes):
        if len(image_planes) < channels:
            image_planes = image_planes * channels
        for c, plane in enumerate(image_planes):
            if plane.size != size:
                plane = plane.resize(size, resample=Image.Resampling.BILINEAR)
            out[row, c] = np.asarray(plane, dtype=np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def read_mask_file(file: Path, image_size: int, shape: tuple[int, int]) -> np.ndarray:
    """bool (image_size, image_size) of a mask image (foreground > half its range), resized with nearest
    neighbours; DataError when its (width, height) differs from ``shape``, its image's."""
    image = _open(file)
    if image.size != shape:
        raise DataError(f"mask {file} is {image.size[0]}x{image.size[1]} but its image is {shape[0]}x{shape[1]} "
                        "(shape mismatch)")
    mask = image.convert("L")
    if mask.size != (image_size, image_size):
        mask = mask.resize((image_size, image_size), Image.Resampling.NEAREST)
    return np.asarray(mask) > 127


def image_size_of(file: Path) -> tuple[int, int]:
    """(width, height) of an image file (its header only)."""
    try:
        with Image.open(file) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {file} (corrupt or not an image): {exc}") from None


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array as a PNG, atomically."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"write_png expects (H, W[, 1|3|4]) pixels, got shape {array.shape}")
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
    return path
