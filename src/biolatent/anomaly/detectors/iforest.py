"""Isolation forest (Liu, Ting & Zhou 2008, ICDM): anomalies are isolated by few random splits.

scikit-learn's ``IsolationForest``; the score is ``-score_samples`` (higher = more anomalous). A forest is not
a set of weights: ``save`` stores the healthy training features and the seed, and ``load`` refits the same
forest from them (deterministic), so nothing is unpickled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from biolatent.anomaly.detectors.base import FeatureDetector
from biolatent.errors import DataError

if TYPE_CHECKING:
    from biolatent.config import TrainConfig


class IsolationForestDetector(FeatureDetector):
    name: ClassVar[str] = "iforest"
    citation: ClassVar[str] = "Liu, Ting & Zhou 2008"

    def __init__(self, *, n_estimators: int = 200, seed: int = 0) -> None:
        if n_estimators < 1:
            raise DataError(f"iforest: n_estimators must be >= 1, got {n_estimators}")
        super().__init__(n_estimators=n_estimators, seed=seed)
        self.n_estimators, self.seed = n_estimators, seed

    def _fit(self, x: np.ndarray, train: TrainConfig | None = None) -> None:
        from sklearn.ensemble import IsolationForest

        self.training = x
        self.forest = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(x)

    def score(self, x: np.ndarray) -> np.ndarray:
        return -self.forest.score_samples(self._checked(x))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"training": self.training}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._fit(arrays["training"])
