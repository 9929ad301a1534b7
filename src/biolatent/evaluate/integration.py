"""Batch integration metrics of an embedding (Luecken et al. 2022, Nature Methods 19:41, "Benchmarking atlas-level
data integration in single-cell genomics"), computed by scib-metrics (the scverse implementation of that benchmark).

Batch mixing (higher = batches better mixed): ``ilisi`` (integration LISI, Korsunsky et al. 2019, scaled to
[0, 1]), ``kbet`` (kBET acceptance rate, Buttner et al. 2019, at alpha 0.05), ``batch_asw`` (1 - |silhouette| of
the batches within each cell type, scaled). Conservation of the biology (higher = cell types kept apart):
``label_asw`` (cell-type silhouette, scaled to [0, 1]), ``nmi`` and ``ari`` of Leiden clusters against the cell
types (resolution optimised for NMI, as scib). ``batch_correction`` and ``bio_conservation`` are the means of their
three metrics and ``total`` = 0.4 x batch + 0.6 x bio, the weighting of scib's overall score (scib also counts graph
connectivity, isolated labels, cLISI and PC regression, which are not computed here). Neighbours: exact Euclidean
k-nearest neighbours (scikit-learn), ``n_neighbors`` = 90 as scib-metrics' Benchmarker.
"""

from __future__ import annotations

import numpy as np

from biolatent.errors import DataError

BATCH_METRICS = ("ilisi", "kbet", "batch_asw")
BIO_METRICS = ("label_asw", "nmi", "ari")
SUMMARY = ("batch_correction", "bio_conservation", "total")
N_NEIGHBORS = 90


def check_integration_inputs(batches: np.ndarray, labels: np.ndarray, what: str = "the data") -> None:
    """One-line errors for what the metrics cannot use: fewer than two batches or labels, or too few samples."""
    if len(np.unique(batches)) < 2:
        raise DataError(f"{what} has one batch: integration metrics compare two or more")
    if len(np.unique(labels)) < 2:
        raise DataError(f"{what} has one label: conservation metrics compare two or more cell types")
    if len(batches) < 10:
        raise DataError(f"{what} has {len(batches)} samples: integration metrics need at least 10")


def integration_metrics(embedding: np.ndarray, batches: np.ndarray, labels: np.ndarray,
                        n_neighbors: int = N_NEIGHBORS, seed: int = 0) -> dict[str, float]:
    """The six metrics and the three summaries of ``embedding`` (N, D) with batch and label names (N,)."""
    import scib_metrics
    from scib_metrics.nearest_neighbors import NeighborsResults
    from sklearn.neighbors import NearestNeighbors

    x = np.ascontiguousarray(embedding, dtype=np.float32)
    batches, labels = np.asarray(batches).astype(str), np.asarray(labels).astype(str)
    check_integration_inputs(batches, labels)
    k = min(n_neighbors, len(x) - 1)
    distances, indices = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    neighbours = NeighborsResults(indices=indices, distances=distances)
    batch_codes = np.unique(batches, return_inverse=True)[1]
    clusters = scib_metrics.nmi_ari_cluster_labels_leiden(neighbours, labels, optimize_resolution=True, seed=seed)
    values = {
        "ilisi": float(scib_metrics.ilisi_knn(neighbours, batch_codes)),
        "kbet": float(scib_metrics.kbet(neighbours, batch_codes)[0]),
        "batch_asw": float(scib_metrics.silhouette_batch(x, labels, batch_codes)),
        "label_asw": float(scib_metrics.silhouette_label(x, labels)),
        "nmi": float(clusters["nmi"]),
        "ari": float(clusters["ari"]),
    }
    values["batch_correction"] = float(np.mean([values[m] for m in BATCH_METRICS]))
    values["bio_conservation"] = float(np.mean([values[m] for m in BIO_METRICS]))
    values["total"] = 0.4 * values["batch_correction"] + 0.6 * values["bio_conservation"]
    return values
