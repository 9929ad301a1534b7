"""Clusterers recover separated blobs; resampling stability tells blobs from uniform noise."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from biolatent.discover.clusters import CLUSTERERS, cluster, cluster_stability, relabel_by_size
from biolatent.errors import DataError

PARAMS = {"leiden": {}, "kmeans": {"k": 3}, "gmm": {"k": 3}}


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_blobs(n_samples=150, centers=3, n_features=10, cluster_std=1.0, center_box=(-20, 20),
                      random_state=0)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(150, 10)).astype(np.float32)


def test_registry_lists_the_three_methods():
    assert set(CLUSTERERS) == {"leiden", "kmeans", "gmm"}


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m == "leiden" else m for m in PARAMS])
def test_each_method_recovers_three_separated_blobs(blobs, method):
    x, truth = blobs
    labels = cluster(x, method, seed=0, **PARAMS[method])
    assert labels.dtype.kind == "i" and labels.shape == truth.shape
    assert adjusted_rand_score(truth, labels) > 0.95
    assert np.array_equal(labels, cluster(x, method, seed=0, **PARAMS[method]))  # seeded: reproducible


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m == "leiden" else m for m in PARAMS])
def test_stability_is_high_on_blobs_and_low_on_noise(blobs, noise, method):
    on_blobs = cluster_stability(blobs[0], method, n_repeats=5, seed=0, **PARAMS[method])
    on_noise = cluster_stability(noise, method, n_repeats=5, seed=0, **PARAMS[method])
    assert on_blobs["subsample_ari_mean"] > 0.9 and on_blobs["seed_ari_mean"] > 0.9
    assert on_noise["subsample_ari_mean"] < 0.5
    assert on_blobs["n_clusters_subsample"] == [3] * 5
    assert on_blobs["subsample_ari_sd"] >= 0 and on_blobs["n_repeats"] == 5


def test_stability_compares_runs_on_their_shared_samples_only():
    """A clusterer whose labels depend only on the sample itself is perfectly stable under subsampling."""
    x = np.repeat(np.arange(4, dtype=np.float32), 10)[:, None] * 100 + np.random.default_rng(0).normal(size=(40, 1))
    result = cluster_stability(x, "kmeans", k=4, n_repeats=4, subsample=0.5, seed=2)
    assert result["subsample_ari_mean"] == pytest.approx(1.0)
    assert result["seed_ari_mean"] == pytest.approx(1.0)


def test_relabel_by_size_numbers_clusters_from_the_largest():
    assert relabel_by_size(np.array([5, 5, 2, 9, 9, 9])).tolist() == [1, 1, 2, 0, 0, 0]
    assert relabel_by_size(np.array([7, 3, 3, 7])).tolist() == [0, 1, 1, 0]  # tie: first seen first


@pytest.mark.parametrize(("method", "params", "message"), [
    ("kmeans", {}, "needs the number of clusters k"),
    ("gmm", {"k": 1}, "k must be between 2"),
    ("leiden", {"k": 3}, "unexpected keyword"),
    ("dbscan", {}, "unknown clustering method"),
])
def test_bad_requests_raise_data_error(method, params, message):
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(DataError, match=message):
        cluster(x, method, **params)


def test_stability_refuses_bad_settings():
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(DataError, match="n_repeats"):
        cluster_stability(x, "kmeans", k=2, n_repeats=1)
    with pytest.raises(DataError, match="subsample"):
        cluster_stability(x, "kmeans", k=2, subsample=1.5)
    with pytest.raises(DataError, match="NaN"):
        cluster(np.full((10, 2), np.nan), "kmeans", k=2)
