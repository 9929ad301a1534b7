"""Probes on frozen embeddings: a linear classifier and a cosine kNN vote, sklearn style.

``predict_proba(X, n_classes)`` always returns one column per class of the whole problem, with zeros for
classes that the (possibly tiny) training subset did not contain, so that metrics are comparable.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from biolatent.errors import DataError


def _check_xy(x: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"features must be a non-empty 2-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("features hold NaN or inf values")
    if y is not None:
        y = np.asarray(y)
        if y.shape != (x.shape[0],):
            raise DataError(f"{y.shape[0] if y.ndim else 0} labels for {x.shape[0]} samples")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise DataError("labels must be non-negative integer class codes")
    return x, y


class _Probe:
    """Shared fit/predict_proba logic: a single training class predicts that class with probability 1."""

    classes_: np.ndarray
    model_: Pipeline | KNeighborsClassifier | None

    def _make(self, n_train: int) -> Pipeline | KNeighborsClassifier:
        raise NotImplementedError

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Probe:
        """Fit on features ``x`` (n, d) and integer class codes ``y`` (n,)."""
        x, y = _check_xy(x, y)
        self.classes_ = np.unique(y)
        self.n_features_ = x.shape[1]
        self.model_ = None if self.classes_.size == 1 else self._make(x.shape[0]).fit(x, y)
        return self

    def predict_proba(self, x: np.ndarray, n_classes: int) -> np.ndarray:
        """Class probabilities (n, n_classes); classes unseen in training get probability 0."""
        if not hasattr(self, "classes_"):
            raise RuntimeError("call fit before predict_proba")
        x, _ = _check_xy(x)
        if x.shape[1] != self.n_features_:
            raise DataError(f"probe was fitted on {self.n_features_} features, got {x.shape[1]}")
        if self.classes_.max() >= n_classes:
            raise DataError(f"training labels go up to {self.classes_.max()}, beyond n_classes={n_classes}")
        out = np.zeros((x.shape[0], n_classes))
        if self.model_ is None:
            out[:, self.classes_[0]] = 1.0
        else:
            out[:, self.classes_] = self.model_.predict_proba(x)
        return out


class LinearProbe(_Probe):
    """Standardised features + multinomial logistic regression (L2, inverse strength ``C``)."""

    def __init__(self, C: float = 1.0, max_iter: int = 2000) -> None:
        self.C = C
        self.max_iter = max_iter

    def _make(self, n_train: int) -> Pipeline:
        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter))


class KnnProbe(_Probe):
    """Vote of the ``k`` nearest training samples by cosine distance (``k`` clipped to n_train).

    Votes are weighted by inverse distance: with few labels ``k`` often covers most of the training set,
    and an unweighted vote would then predict the majority class for every sample.
    """

    def __init__(self, k: int = 20) -> None:
        if k < 1:
            raise DataError(f"k must be at least 1, got {k}")
        self.k = k

    def _make(self, n_train: int) -> KNeighborsClassifier:
        return KNeighborsClassifier(n_neighbors=min(self.k, n_train), metric="cosine", algorithm="brute",
                                    weights="distance")


PROBES: dict[str, type[_Probe]] = {"linear": LinearProbe, "knn": KnnProbe}
