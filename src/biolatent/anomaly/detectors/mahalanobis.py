"""Gaussian (Mahalanobis) detector: distance of a sample from the healthy mean under the healthy covariance.

Covariance by Ledoit-Wolf shrinkage (Ledoit & Wolf 2004, J Multivar Anal 88:365; scikit-learn's
``LedoitWolf``), so it stays invertible with few samples; the score is the squared Mahalanobis distance
(Mahalanobis 1936), the detector of Lee et al. 2018 (NeurIPS) on learned features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from biolatent.anomaly.detectors.base import FeatureDetector

if TYPE_CHECKING:
    from biolatent.config import TrainConfig


class MahalanobisDetector(FeatureDetector):
    name: ClassVar[str] = "mahalanobis"
    citation: ClassVar[str] = "Mahalanobis 1936; Ledoit & Wolf 2004; Lee et al. 2018"

    def __init__(self) -> None:
        super().__init__()

    def _fit(self, x: np.ndarray, train: TrainConfig | None = None) -> None:
        from sklearn.covariance import LedoitWolf

        model = LedoitWolf().fit(x)
        self.mean, self.precision = model.location_, model.precision_

    def score(self, x: np.ndarray) -> np.ndarray:
        d = self._checked(x) - self.mean
        return np.einsum("nd,de,ne->n", d, self.precision, d)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "precision": self.precision}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean, self.precision = arrays["mean"], arrays["precision"]
