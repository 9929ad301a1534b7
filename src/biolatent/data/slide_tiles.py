"""A whole slide's tissue tiles cut from level 0 when a batch needs them (``data.lazy`` for a slide).

``SlideTiles`` is the (N, 3, S, S) float32 matrix of the tiles ``biolatent.io.slide.find_slide_tiles`` keeps, cut
from level 0 only when indexed (a batch decodes only the TIFF tiles/strips its tiles overlap) and resized with
``resize_tiles`` exactly as the eager path (``read_slide_tiles`` + ``resize_tiles``) does, so that pre-training and
embedding need memory for a batch, not for a 100,000 x 100,000 px slide. A slide modified during the run is
refused (``io.file_stamp``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biolatent.data.inputs import resize_tiles
from biolatent.data.lazy_rows import LazyRows
from biolatent.io.slide import SlideReader, find_slide_tiles

CUT_CHUNK = 64  # tiles resized at once: bounds the float copy of the level-0 crops


class SlideTiles(LazyRows):
    """(N, 3, S, S) float32 tiles in [0, 1] at level-0 offsets ``xs``, ``ys`` (module docstring). Picklable."""

    dtype = torch.float32
    ndim = 4

    def __init__(self, reader: SlideReader, xs: np.ndarray, ys: np.ndarray, tile_size: int, image_size: int) -> None:
        self.reader = reader
        self.xs = np.asarray(xs, dtype=np.int64)
        self.ys = np.asarray(ys, dtype=np.int64)
        self.tile_size = int(tile_size)
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return int(self.xs.size)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), 3, self.image_size, self.image_size))

    def __repr__(self) -> str:
        return (f"SlideTiles({self.reader.path.name}, {len(self):,} tiles of {self.tile_size} px -> "
                f"{self.image_size})")

    def check_unchanged(self) -> None:
        self.reader.check_unchanged()

    def take(self, positions: np.ndarray | torch.Tensor) -> SlideTiles:
        """The tiles at ``positions`` as another lazy matrix (nothing read)."""
        rows = self.positions(positions)
        return SlideTiles(self.reader, self.xs[rows], self.ys[rows], self.tile_size, self.image_size)

    def numpy(self) -> np.ndarray:
        """Every tile in memory: for the analyses that need all values at once."""
        return self.read(np.arange(len(self))).numpy()

    def crops(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (len(rows), tile, tile, 3) level-0 pixels of the tiles ``rows``; TIFF tiles decoded once per call."""
        side, cache = self.tile_size, {}
        out = np.empty((rows.size, side, side, 3), dtype=np.uint8)
        for k, row in enumerate(rows.tolist()):
            out[k] = self.reader.region(int(self.xs[row]), int(self.ys[row]), side, side, cache)
        return out

    def read(self, rows: np.ndarray) -> torch.Tensor:
        """float32 (len(rows), 3, S, S) tiles of ``rows`` (non-negative positions)."""
        self.check_unchanged()
        if rows.size == 0:
            return torch.empty((0, 3, self.image_size, self.image_size))
        parts = [resize_tiles(self.crops(rows[i : i + CUT_CHUNK]), self.image_size)
                 for i in range(0, rows.size, CUT_CHUNK)]
        return torch.cat(parts)


def lazy_slide_tiles(path: Path, tile_size: int, min_tissue_fraction: float, max_samples: int | None,
                     image_size: int) -> tuple[SlideTiles, pd.DataFrame]:
    """The tissue tiles of a slide as ``SlideTiles`` and their table (index = ids; x, y, tissue_fraction)."""
    reader, _, coords = find_slide_tiles(path, tile_size, min_tissue_fraction, max_samples)
    tiles = SlideTiles(reader, coords["x"].to_numpy(), coords["y"].to_numpy(), tile_size, image_size)
    return tiles, coords
