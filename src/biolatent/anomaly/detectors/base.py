"""The contract of a feature-space anomaly detector and its weights-only persistence (safetensors + json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from biolatent.errors import DataError


def check_features(x: np.ndarray, what: str, n_features: int | None = None) -> np.ndarray:
    """float64 (N, D) without NaN/inf, N >= 1 (and D == n_features when given); DataError otherwise."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise DataError(f"{what}: expected a (samples, features) matrix, got shape {a.shape}")
    finite = np.isfinite(a)
    if not finite.all():
        raise DataError(f"{what}: features hold {int(a.size - finite.sum())} NaN or inf value(s) in "
                        f"{int((~finite).any(axis=1).sum())} sample(s)")
    if n_features is not None and a.shape[1] != n_features:
        raise DataError(f"{what}: {a.shape[1]} features, the detector was fitted on {n_features}")
    return a


class FeatureDetector:
    """Fitted on healthy feature vectors (N, D); ``score`` returns (N,) anomaly scores.

    Subclasses set ``name``, take keyword hyper-parameters, implement ``_fit(x)``, ``score(x)`` and
    ``arrays()`` (everything ``restore`` needs, as numpy arrays), so a fitted detector is saved as weights
    only (``save``/``load``: safetensors + the hyper-parameters in json; no pickle).
    """

    name: ClassVar[str] = "detector"
    citation: ClassVar[str] = ""
    windows_only: ClassVar[bool] = False  # True: accepts only series window features (anomaly.series)

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.n_features: int | None = None

    def fit(self, x: np.ndarray) -> FeatureDetector:
        x = check_features(x, f"{self.name} fit")
        self.n_features = x.shape[1]
        self._fit(x)
        return self

    def _fit(self, x: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _checked(self, x: np.ndarray) -> np.ndarray:
        if self.n_features is None:
            raise DataError(f"{self.name}: score() before fit()")
        return check_features(x, f"{self.name} score", self.n_features)

    def arrays(self) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def restore(self, arrays: dict[str, np.ndarray]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, folder: str | Path) -> Path:
        from safetensors.numpy import save_file

        from biolatent.rundir import atomic_path, write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "detector.safetensors") as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in self.arrays().items()}, str(tmp))
        write_json(folder / "detector.json", {"name": self.name, "params": self.params,
                                              "n_features": self.n_features})
        return folder
