"""Clusters of samples in embedding space, and how stable they are.

Clusterers (all return integer labels, 0 = largest cluster):

- ``leiden``: Leiden community detection (Traag, Waltman & van Eck 2019) on the UMAP-weighted kNN graph
  of the embeddings (scanpy ``pp.neighbors`` + ``tl.leiden(flavor="igraph")``), as in single-cell practice;
- ``kmeans``: k-means++ (Arthur & Vassilvitskii 2007), best of 10 starts;
- ``gmm``: Gaussian mixture with full covariances fitted by EM (Dempster, Laird & Rubin 1977).

Stability (``cluster_stability``) follows the resampling idea of Lange et al. 2004 and Hennig 2007: cluster
repeated random subsamples and compare every pair of runs on the samples they share with the adjusted Rand
index (Hubert & Arabie 1985); the same is done across seeds on the full data.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

from biolatent.errors import DataError

MIN_SAMPLES = 5


def _check_embeddings(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < MIN_SAMPLES or x.shape[1] < 1:
        raise DataError(f"clustering needs a (samples, dimensions) array with {MIN_SAMPLES}+ samples, "
                        f"got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("embeddings hold NaN or inf values")
    return x


def _check_k(k: int | None, n: int, method: str) -> int:
    if k is None:
        raise DataError(f"{method} clustering needs the number of clusters k")
    if not 2 <= int(k) < n:
        raise DataError(f"k must be between 2 and {n - 1} (the number of samples minus one), got {k}")
    return int(k)


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Integer labels renumbered so that 0 is the largest cluster (ties: the one seen first)."""
    values, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))  # by size descending, then first appearance
    new = np.empty(len(values), dtype=np.int64)
    new[order] = np.arange(len(values))
    return new[inverse.ravel()]


def leiden_clusters(
    embeddings: np.ndarray, *, n_neighbors: int = 15, resolution: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Leiden communities of the kNN graph of the embeddings (scanpy neighbors + igraph Leiden)."""
    import anndata
    import scanpy as sc

    x = _check_embeddings(embeddings)
    if n_neighbors < 2 or resolution <= 0:
        raise DataError(f"leiden needs n_neighbors >= 2 and resolution > 0, got {n_neighbors} and {resolution}")
    adata = anndata.AnnData(X=x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.neighbors(adata, n_neighbors=min(n_neighbors, x.shape[0] - 1), use_rep="X", random_state=seed)
        sc.tl.leiden(adata, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2,
                     directed=False)
    return relabel_by_size(adata.obs["leiden"].astype(int).to_numpy())


def kmeans_clusters(embeddings: np.ndarray, k: int | None = None, seed: int = 0) -> np.ndarray:
    """k-means++ with 10 restarts (lowest inertia kept)."""
    from sklearn.cluster import KMeans

    x = _check_embeddings(embeddings)
    k = _check_k(k, x.shape[0], "kmeans")
    return relabel_by_size(KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x))


def gmm_clusters(embeddings: np.ndarray, k: int | None = None, seed: int = 0) -> np.ndarray:
    """Gaussian mixture (full covariances, k-means initialisation, 3 restarts): most probable component."""
    from sklearn.mixture import GaussianMixture

    x = _check_embeddings(embeddings).astype(np.float64)
    k = _check_k(k, x.shape[0], "gmm")
    model = GaussianMixture(n_components=k, covariance_type="full", n_init=3, reg_covar=1e-5, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return relabel_by_size(model.fit(x).predict(x))


CLUSTERERS: dict[str, Callable[..., np.ndarray]] = {
    "leiden": leiden_clusters,
    "kmeans": kmeans_clusters,
    "gmm": gmm_clusters,
}


def cluster(embeddings: np.ndarray, method: str, *, seed: int = 0, **params: Any) -> np.ndarray:
    """Labels from ``CLUSTERERS[method]``; DataError for an unknown method or parameter."""
    if method not in CLUSTERERS:
        raise DataError(f"unknown clustering method {method!r} (choose from {', '.join(CLUSTERERS)})")
    try:
        return CLUSTERERS[method](embeddings, seed=seed, **params)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise DataError(f"{method}: {exc}") from None
        raise


def _pairwise_ari(runs: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """ARI of every pair of (sample index, labels) runs on the samples both runs clustered."""
    scores = []
    for (idx_a, lab_a), (idx_b, lab_b) in combinations(runs, 2):
        shared, in_a, in_b = np.intersect1d(idx_a, idx_b, assume_unique=True, return_indices=True)
        if shared.size >= 2:
            scores.append(float(adjusted_rand_score(lab_a[in_a], lab_b[in_b])))
    return scores


def _summary(scores: list[float]) -> tuple[float, float]:
    return (float(np.mean(scores)), float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0)


def cluster_stability(
    embeddings: np.ndarray,
    method: str,
    *,
    n_repeats: int = 10,
    subsample: float = 0.8,
    seed: int = 0,
    **params: Any,
) -> dict[str, Any]:
    """Mean / sd ARI between clusterings of random subsamples (on shared samples) and across seeds.

    Subsample run ``r`` clusters ``round(subsample * n)`` samples drawn without replacement with seed
    ``seed + r``; the seed runs cluster all samples with seeds ``seed .. seed + n_repeats - 1``.
    """
    x = _check_embeddings(embeddings)
    n = x.shape[0]
    if n_repeats < 2:
        raise DataError(f"stability needs n_repeats >= 2, got {n_repeats}")
    if not 0 < subsample <= 1:
        raise DataError(f"subsample must be a fraction in (0, 1], got {subsample}")
    size = round(subsample * n)
    if size < MIN_SAMPLES:
        raise DataError(f"subsample {subsample} of {n} samples leaves {size}: too few to cluster")
    rng = np.random.default_rng(seed)
    sub_runs, seed_runs = [], []
    for r in range(n_repeats):
        index = np.sort(rng.choice(n, size=size, replace=False))
        sub_runs.append((index, cluster(x[index], method, seed=seed + r, **params)))
        seed_runs.append((np.arange(n), cluster(x, method, seed=seed + r, **params)))
    sub_mean, sub_sd = _summary(_pairwise_ari(sub_runs))
    seed_mean, seed_sd = _summary(_pairwise_ari(seed_runs))
    return {
        "method": method, "params": dict(params), "n_repeats": n_repeats, "subsample": subsample, "seed": seed,
        "subsample_ari_mean": sub_mean, "subsample_ari_sd": sub_sd,
        "seed_ari_mean": seed_mean, "seed_ari_sd": seed_sd,
        "n_clusters_subsample": [int(labels.max()) + 1 for _, labels in sub_runs],
        "n_clusters_seed": [int(labels.max()) + 1 for _, labels in seed_runs],
    }
