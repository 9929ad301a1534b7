"""k-nearest-neighbour distance detector: mean Euclidean distance to the k closest healthy samples.

Ramaswamy, Rastogi & Shim 2000 (SIGMOD) score outliers by their k-NN distance; on self-supervised features it
is the detector of Bergman, Cohen & Hoshen 2020 ("Deep nearest neighbor anomaly detection"). Features are
standardised with the healthy mean and SD; neighbours by scikit-learn's ``NearestNeighbors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from biolatent.anomaly.detectors.base import FeatureDetector
from biolatent.errors import DataError

if TYPE_CHECKING:
    from biolatent.config import TrainConfig


class KnnDetector(FeatureDetector):
    name: ClassVar[str] = "knn"
    citation: ClassVar[str] = "Ramaswamy et al. 2000; Bergman et al. 2020"

    def __init__(self, *, k: int = 5) -> None:
        if k < 1:
            raise DataError(f"knn: k must be >= 1, got {k}")
        super().__init__(k=k)
        self.k = k

    def _fit(self, x: np.ndarray, train: TrainConfig | None = None) -> None:
        if x.shape[0] < self.k:
            raise DataError(f"knn: {x.shape[0]} healthy samples for k = {self.k} neighbours")
        self.mean, self.scale = x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        self.reference = (x - self.mean) / self.scale

    def score(self, x: np.ndarray) -> np.ndarray:
        from sklearn.neighbors import NearestNeighbors

        z = (self._checked(x) - self.mean) / self.scale
        distances, _ = NearestNeighbors(n_neighbors=self.k).fit(self.reference).kneighbors(z)
        return distances.mean(axis=1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "reference": self.reference}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean, self.scale, self.reference = arrays["mean"], arrays["scale"], arrays["reference"]
