"""What every matrix read from its file when indexed shares (backed counts, genome windows, lazy volumes): tensor-
style row indexing that turns an int, a slice, an index array or a boolean mask into row positions for ``read``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class LazyRows:
    """Mixin: ``x[key]`` -> ``self.read(positions)`` (non-negative int64 rows; an int gives one row, without its
    batch axis). Subclasses define ``__len__`` and ``read``."""

    def __len__(self) -> int:  # pragma: no cover - defined by every subclass
        raise NotImplementedError

    def read(self, rows: np.ndarray) -> torch.Tensor:  # pragma: no cover - defined by every subclass
        raise NotImplementedError

    def _positions(self, rows: np.ndarray) -> np.ndarray:
        n = len(self)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        return rows % n if n else rows

    def positions(self, key: Any) -> np.ndarray:
        """The rows ``key`` selects (an index tensor or array, a list, or a boolean mask of every row)."""
        rows = np.asarray(key.cpu() if isinstance(key, torch.Tensor) else key)
        if rows.dtype == bool:
            if rows.shape != (len(self),):
                raise IndexError(f"boolean index of shape {rows.shape} for {len(self)} rows")
            return np.flatnonzero(rows)
        return self._positions(rows.astype(np.int64).ravel())

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, torch.Tensor) and key.ndim == 0:
            key = int(key)
        if isinstance(key, int | np.integer):
            return self.read(self._positions(np.array([int(key)])))[0]
        if isinstance(key, slice):
            return self.read(np.arange(len(self), dtype=np.int64)[key])
        return self.read(self.positions(key))
