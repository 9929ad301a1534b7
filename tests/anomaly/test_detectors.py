"""Every registered detector: separates shifted samples, saves/loads as weights only; each against an oracle."""

from __future__ import annotations

import numpy as np
import pytest

from biolatent.anomaly.detectors import FEATURE_DETECTORS, build_detector, load_detector
from biolatent.anomaly.metrics import ranking_metrics
from biolatent.errors import ConfigError, DataError

RNG = np.random.default_rng(0)
MIXING = RNG.normal(size=(6, 6))
HEALTHY = RNG.normal(size=(300, 6)) @ MIXING
TEST = np.r_[RNG.normal(size=(100, 6)) @ MIXING, RNG.normal(4.0, 1.0, size=(20, 6))]  # new healthy, then outliers
LABELS = np.r_[np.zeros(100), np.ones(20)]


@pytest.mark.parametrize("name", [n for n, cls in FEATURE_DETECTORS.items() if not cls.windows_only])
def test_contract_separates_outliers_and_round_trips(name, tmp_path):
    """Detectors of any feature vectors (window-only ones have their own tests, e.g. the Anomaly Transformer)."""
    detector = build_detector(name).fit(HEALTHY)
    scores = detector.score(TEST)
    assert scores.shape == (120,) and np.isfinite(scores).all()
    assert ranking_metrics(scores, LABELS)["auroc"] > 0.9
    detector.save(tmp_path / name)
    assert not list((tmp_path / name).glob("*.pkl"))
    np.testing.assert_allclose(load_detector(tmp_path / name).score(TEST), scores, rtol=1e-12)
    with pytest.raises(DataError, match="5 features, the detector was fitted on 6"):
        detector.score(TEST[:, :5])


def test_mahalanobis_equals_sklearn():
    from sklearn.covariance import LedoitWolf

    scores = build_detector("mahalanobis").fit(HEALTHY).score(TEST)
    np.testing.assert_allclose(scores, LedoitWolf().fit(HEALTHY).mahalanobis(TEST), rtol=1e-9)


def test_knn_equals_brute_force():
    scores = build_detector("knn", k=3).fit(HEALTHY).score(TEST)
    mean, sd = HEALTHY.mean(0), HEALTHY.std(0)
    ref, z = (HEALTHY - mean) / sd, (TEST - mean) / sd
    distances = np.sqrt(((z[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(scores, np.sort(distances, axis=1)[:, :3].mean(1), rtol=1e-9)


def test_iforest_equals_sklearn_with_the_same_seed():
    from sklearn.ensemble import IsolationForest

    scores = build_detector("iforest", n_estimators=50, seed=3).fit(HEALTHY).score(TEST)
    reference = -IsolationForest(n_estimators=50, random_state=3).fit(HEALTHY).score_samples(TEST)
    np.testing.assert_allclose(scores, reference, rtol=1e-12)


def test_bad_names_parameters_and_inputs():
    with pytest.raises(ConfigError, match="unknown detector 'lof'"):
        build_detector("lof")
    with pytest.raises(ConfigError, match="knn has no parameter kk"):
        build_detector("knn", kk=3)
    with pytest.raises(DataError, match="NaN"):
        build_detector("knn").fit(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(DataError, match="holds no fitted detector"):
        load_detector("/nonexistent")
