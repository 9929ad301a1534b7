"""Probes on frozen embeddings, sklearn style: linear and cosine kNN, for classes and for continuous targets.

Classification (``PROBES``): ``predict_proba(X, n_classes)`` always returns one column per class of the
whole problem, with zeros for classes that the (possibly tiny) training subset did not contain, so that
metrics are comparable. Regression (``REGRESSION_PROBES``): ``predict(X) -> (n,)`` float targets.

Every probe treats every representation alike, and adapts to the number of labelled samples:

* linear probes centre the features and divide them by one global scale (:class:`GlobalScaler`), which keeps
  the relative variance of the dimensions: a per-dimension standardisation would blow the noise dimensions of
  a PCA (its last components) or a collapsed embedding up to the variance of the informative ones;
* the L2 strength of the linear probes is chosen on the labelled subset only: leave-one-out for ridge, a
  stratified k-fold over a log grid for logistic regression when every class has at least
  ``CV_MIN_PER_CLASS`` labels (otherwise sklearn's default ``C = 1``, whose penalty relative to the summed
  loss already grows as labels get fewer);
* kNN probes use ``k = min(k_max, round(sqrt(n_train)))`` neighbours (the square-root rule, e.g. Duda, Hart &
  Stork 2001, "Pattern Classification", section 4.5), so a handful of labels is not outvoted by the whole
  training set.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline

from biolatent.errors import DataError

LOGISTIC_CS = tuple(float(c) for c in np.logspace(-3, 2, 6))  # grid of inverse L2 strengths
CV_MIN_PER_CLASS = 3  # tune C by cross-validation only when every labelled class has this many samples
CV_MAX_FOLDS = 5


def knn_neighbours(k_max: int, n_train: int) -> int:
    """``min(k_max, round(sqrt(n_train)))``, at least 1: the square-root rule for the number of neighbours."""
    return int(max(1, min(k_max, n_train, round(np.sqrt(n_train)))))


class GlobalScaler(TransformerMixin, BaseEstimator):
    """Centre each feature; divide all features by one scale, the root mean feature variance.

    Unlike a per-feature standardisation this keeps the relative variance of the dimensions (a PCA's ordering,
    an embedding's geometry); the single scale only puts every representation on the same footing for the L2
    penalty of the probe. A constant input keeps scale 1.
    """

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> GlobalScaler:
        x = np.asarray(x, dtype=np.float64)
        self.mean_ = x.mean(axis=0)
        scale = float(np.sqrt(x.var(axis=0).mean()))
        self.scale_ = scale if scale > 0 else 1.0
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_


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

    def _make(self, n_train: int, y: np.ndarray | None = None) -> Pipeline | KNeighborsClassifier:
        raise NotImplementedError

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Probe:
        """Fit on features ``x`` (n, d) and integer class codes ``y`` (n,)."""
        x, y = _check_xy(x, y)
        self.classes_ = np.unique(y)
        self.n_features_ = x.shape[1]
        self.model_ = None if self.classes_.size == 1 else self._make(x.shape[0], y).fit(x, y)
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
    """Globally scaled features + multinomial logistic regression with an L2 penalty.

    ``C`` (inverse strength) is picked from ``Cs`` by stratified k-fold log-loss on the labelled subset (k =
    the smallest class count, at most 5) when every class has at least ``CV_MIN_PER_CLASS`` labels; otherwise
    ``C = default_C``. The chosen value is ``chosen_C_``. ``class_weight="balanced"`` weights every class by the
    inverse of its labelled count (sklearn's rule), so that a rare class is predicted at all: what the balanced
    accuracy of a rare disease needs (probe ``linear_balanced``).
    """

    def __init__(self, Cs: tuple[float, ...] = LOGISTIC_CS, default_C: float = 1.0, max_iter: int = 2000,
                 class_weight: str | None = None) -> None:
        if not Cs or min(Cs) <= 0 or default_C <= 0:
            raise DataError(f"logistic C values must be positive, got {list(Cs)} and {default_C}")
        if class_weight not in (None, "balanced"):
            raise DataError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        self.Cs = tuple(Cs)
        self.default_C = default_C
        self.max_iter = max_iter
        self.class_weight = class_weight

    def _make(self, n_train: int, y: np.ndarray | None = None) -> Pipeline:
        smallest = 0 if y is None else int(np.unique(y, return_counts=True)[1].min())
        if smallest >= CV_MIN_PER_CLASS:
            folds = StratifiedKFold(min(CV_MAX_FOLDS, smallest), shuffle=True, random_state=0)
            model = GridSearchCV(LogisticRegression(max_iter=self.max_iter, class_weight=self.class_weight),
                                 {"C": list(self.Cs)}, cv=folds, scoring="neg_log_loss")
        else:
            model = LogisticRegression(C=self.default_C, max_iter=self.max_iter, class_weight=self.class_weight)
        return make_pipeline(GlobalScaler(), model)

    @property
    def chosen_C_(self) -> float | None:
        if self.model_ is None:
            return None
        model = self.model_[-1]
        return float(model.best_params_["C"]) if hasattr(model, "best_params_") else float(model.C)


class KnnProbe(_Probe):
    """Vote of the nearest training samples by cosine distance: ``knn_neighbours(k, n_train)`` of them.

    Votes are weighted by inverse distance, so that a tie between classes goes to the nearer samples.
    """

    def __init__(self, k: int = 20) -> None:
        if k < 1:
            raise DataError(f"k must be at least 1, got {k}")
        self.k = k

    def _make(self, n_train: int, y: np.ndarray | None = None) -> KNeighborsClassifier:
        return KNeighborsClassifier(n_neighbors=knn_neighbours(self.k, n_train), metric="cosine", algorithm="brute",
                                    weights="distance")


class BalancedLinearProbe(LinearProbe):
    """``LinearProbe`` with classes weighted by the inverse of their labelled counts (rare classes, e.g. a rare
    disease scored by balanced accuracy)."""

    def __init__(self, Cs: tuple[float, ...] = LOGISTIC_CS, default_C: float = 1.0, max_iter: int = 2000) -> None:
        super().__init__(Cs, default_C, max_iter, class_weight="balanced")


PROBES: dict[str, type[_Probe]] = {"linear": LinearProbe, "knn": KnnProbe, "linear_balanced": BalancedLinearProbe}


RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 5, 17))  # log grid of L2 strengths for RidgeCV


class _RegressionProbe:
    """Shared fit/predict logic of regression probes: a constant training target predicts that constant."""

    model_: Pipeline | KNeighborsRegressor | None

    def _make(self, n_train: int) -> Pipeline | KNeighborsRegressor:
        raise NotImplementedError

    def fit(self, x: np.ndarray, y: np.ndarray) -> _RegressionProbe:
        """Fit on features ``x`` (n, d) and float targets ``y``: (n,) or (n, t) for t targets at once (e.g. genes).

        Each target is standardised inside; a constant target is predicted as its constant.
        """
        x, _ = _check_xy(x)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
            raise DataError(f"{y.shape[0] if y.ndim else 0} targets for {x.shape[0]} samples")
        if not np.isfinite(y).all():
            raise DataError("targets hold NaN or inf values")
        self.n_features_ = x.shape[1]
        self.y_mean_ = y.mean(axis=0)
        scale = y.std(axis=0)
        self.varies_ = scale > 0
        self.y_scale_ = np.where(self.varies_, scale, 1.0)
        if not np.any(self.varies_):
            self.model_ = None
        else:
            self.model_ = self._make(x.shape[0]).fit(x, (y - self.y_mean_) / self.y_scale_)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted targets, (n,) or (n, t) like the training targets, in their units."""
        if not hasattr(self, "model_"):
            raise RuntimeError("call fit before predict")
        x, _ = _check_xy(x)
        if x.shape[1] != self.n_features_:
            raise DataError(f"probe was fitted on {self.n_features_} features, got {x.shape[1]}")
        shape = (x.shape[0], *np.shape(self.y_mean_))
        if self.model_ is None:
            return np.broadcast_to(self.y_mean_, shape).astype(np.float64).copy()
        z = np.asarray(self.model_.predict(x), dtype=np.float64).reshape(shape)
        return np.where(self.varies_, z * self.y_scale_ + self.y_mean_, self.y_mean_)


class RidgeProbe(_RegressionProbe):
    """Globally scaled features (:class:`GlobalScaler`) + ridge regression, the L2 strength chosen by leave-one-out.

    Ridge regression: Hoerl & Kennard (1970), Technometrics 12(1), "Ridge regression: biased estimation for
    nonorthogonal problems". The strength is picked from ``alphas`` (a log grid) by sklearn's ``RidgeCV``
    closed-form leave-one-out error on the labelled subset only (Golub, Heath & Wahba 1979, Technometrics
    21(2), "Generalized cross-validation as a method for choosing a good ridge parameter"), so that a
    handful of labels gets strong shrinkage and many labels get little.
    """

    def __init__(self, alphas: tuple[float, ...] = RIDGE_ALPHAS) -> None:
        if not alphas or min(alphas) <= 0:
            raise DataError(f"ridge alphas must be positive, got {list(alphas)}")
        self.alphas = tuple(alphas)

    def _make(self, n_train: int) -> Pipeline:
        return make_pipeline(GlobalScaler(), RidgeCV(alphas=self.alphas, alpha_per_target=True))


class KnnRegressionProbe(_RegressionProbe):
    """Inverse-distance-weighted mean target of the ``k`` nearest training samples by cosine distance.

    The weighted kNN evaluation of self-supervised features follows Wu et al. (2018), CVPR, "Unsupervised
    feature learning via non-parametric instance discrimination"; distance weighting as in Dudani (1976),
    IEEE Trans. SMC 6(4), "The distance-weighted k-nearest-neighbor rule". The number of neighbours is
    ``knn_neighbours(k, n_train)``.
    """

    def __init__(self, k: int = 20) -> None:
        if k < 1:
            raise DataError(f"k must be at least 1, got {k}")
        self.k = k

    def _make(self, n_train: int) -> KNeighborsRegressor:
        return KNeighborsRegressor(n_neighbors=knn_neighbours(self.k, n_train), metric="cosine", algorithm="brute",
                                   weights="distance")


REGRESSION_PROBES: dict[str, type[_RegressionProbe]] = {"linear": RidgeProbe, "knn": KnnRegressionProbe}
