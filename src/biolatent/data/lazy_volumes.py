"""Volumes read from their files when a batch needs them (``data.lazy``), with an optional on-disk cache of the
preprocessed grid (``data.cache_dir``).

``LazyVolumes`` is the (N, 1, S, S, S) float32 matrix of a volume cohort (``biolatent.data.volume_sets``) that
reads, resamples and normalises only the rows it is indexed with, exactly as ``load_volume`` does for the whole
cohort, so that pre-training and embedding need memory for a batch, not for the cohort. With a cache folder, each
preprocessed volume is written there once as ``.npy`` (atomically) under a key of its file (path, size,
modification time) and of the preprocessing settings: a changed file or setting is a new key, never a stale hit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biolatent.data.lazy_rows import LazyRows

# the data settings that change a preprocessed volume (their values are part of the cache key)
GRID_SETTINGS = ("image_size", "spacing", "normalise", "ct_center", "ct_width")


def grid_settings(cfg: Any) -> str:
    """The cache-key text of a data section's grid settings."""
    return "|".join(f"{key}={getattr(cfg, key)!r}" for key in GRID_SETTINGS)


class LazyVolumes(LazyRows):
    """(N, 1, S, S, S) float32 volumes read and preprocessed when indexed (module docstring). Picklable."""

    dtype = torch.float32
    ndim = 5

    def __init__(self, paths: list[Path], ids: list[str], size: int, preprocess: Callable[[Path, str], np.ndarray],
                 settings: str, cache_dir: Path | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.ids = list(ids)
        self.size = int(size)
        self.preprocess = preprocess  # (file, id) -> (S, S, S) float32; a module-level function or partial (pickled)
        self.settings = settings  # the grid settings, part of the cache key
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), 1, self.size, self.size, self.size))

    def __repr__(self) -> str:
        return f"LazyVolumes({len(self)} volumes at {self.size}^3, cache {self.cache_dir})"

    def take(self, positions: np.ndarray | torch.Tensor) -> LazyVolumes:
        rows = self.positions(positions)
        return LazyVolumes([self.paths[i] for i in rows], [self.ids[i] for i in rows], self.size, self.preprocess,
                           self.settings, self.cache_dir)

    def numpy(self) -> np.ndarray:
        """Every volume in memory: for the analyses that need all values at once."""
        return self.read(np.arange(len(self))).numpy()

    def read(self, rows: np.ndarray) -> torch.Tensor:
        out = np.empty((rows.size, 1, self.size, self.size, self.size), dtype=np.float32)
        for k, row in enumerate(rows.tolist()):
            out[k, 0] = self.volume(int(row))
        return torch.from_numpy(out)

    # -- one volume ----------------------------------------------------------------------------------------------
    def cache_key(self, row: int) -> str:
        path = self.paths[row].resolve()
        stat = path.stat()
        text = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{self.settings}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def volume(self, row: int) -> np.ndarray:
        """(S, S, S) float32: the cached grid, or the file read and preprocessed (and cached)."""
        cached = None if self.cache_dir is None else self.cache_dir / f"{self.cache_key(row)}.npy"
        if cached is not None and cached.is_file():
            try:
                grid = np.load(cached, allow_pickle=False)
                if grid.shape == (self.size,) * 3 and grid.dtype == np.float32:
                    return grid
            except (OSError, ValueError):
                pass  # an unreadable cache entry is recomputed
        grid = self.preprocess(self.paths[row], self.ids[row])
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=".", suffix=".npy", dir=cached.parent)
            with os.fdopen(handle, "wb") as out:
                np.save(out, grid, allow_pickle=False)
            os.replace(tmp, cached)
        return grid
