"""Simulated RGB images: two classes of distinct textures (stripes vs dots) with random phase and tint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.io.images import write_png
from biolatent.io.tables import write_table

LABELS = ("stripes", "dots")


def _stripes(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(size / 6, size / 4)
    phase = rng.uniform(0, 2 * np.pi)
    return 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + phase)


def _dots(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    pattern = np.zeros((size, size))
    radius = rng.uniform(size / 16, size / 10)
    for _ in range(int(rng.integers(4, 9))):
        cy, cx = rng.uniform(0, size, size=2)
        pattern = np.maximum(pattern, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)))
    return pattern


def simulate_images(n: int = 64, size: int = 32, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """``n`` uint8 (size, size, 3) images, half oriented stripes, half Gaussian dots, with pixel noise.

    Returns the images (N, H, W, 3) and a table with columns ``id`` (img0000..) and ``label``.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(LABELS)
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        pattern = (_stripes if label == 0 else _dots)(rng, yy, xx, size)
        tint = rng.uniform(0.6, 1.0, size=3)
        pixels = pattern[..., None] * tint + rng.normal(0, 0.05, size=(size, size, 3))
        images[i] = np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8)
    meta = pd.DataFrame({"id": [f"img{i:04d}" for i in range(n)], "label": [LABELS[k] for k in labels]})
    return images, meta


def write_image_dataset(folder: str | Path, **kwargs: object) -> tuple[Path, Path]:
    """Simulate (``simulate_images(**kwargs)``) and write ``folder/images/<id>.png`` + ``folder/meta.tsv``."""
    folder = Path(folder)
    images, meta = simulate_images(**kwargs)  # type: ignore[arg-type]
    image_dir = folder / "images"
    for image_id, image in zip(meta["id"], images, strict=True):
        write_png(image_dir / f"{image_id}.png", image)
    table = write_table(folder / "meta.tsv", meta.set_index("id"))
    return image_dir, table
