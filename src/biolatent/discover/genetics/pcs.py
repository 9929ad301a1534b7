"""Genetic principal components (population structure covariates) and window LD pruning.

PCs follow EIGENSTRAT (Price et al. 2006, Nat Genet 38:904; Patterson, Price & Reich 2006, PLoS Genet
2:e190): each variant is standardised, ``z_ij = (x_ij - 2 p_j) / sqrt(2 p_j (1 - p_j))`` with ``p_j`` the ALT
frequency of the non-missing calls, missing calls are mean-imputed (``z = 0``) and monomorphic variants are
dropped (``io.genotype_matrix.standardise_block``). The PC scores are ``U_k S_k`` of the truncated SVD ``Z = U S V^T``:

* ``exact`` (default while n <= 4000): eigendecomposition of the n x n GRM ``K = Z Z^T / m`` (Yang et al. 2011),
  accumulated over variant chunks, so memory stays O(n^2) whatever m; ``S^2 = m * eigenvalues``;
* ``randomized``: the randomized range finder with power iterations of Halko, Martinsson & Tropp (2011),
  SIAM Rev 53:217, Algorithms 4.4 and 5.1 (seeded), for many samples.

Signs are fixed so that the largest-magnitude sample score of each PC is positive. ``attrs`` of the result:
``eigenvalues`` (of K), ``variance_explained`` (fraction of trace(K)), ``n_variants_used``.

LD pruning is a greedy forward version of PLINK ``--indep-pairwise`` (Purcell et al. 2007, AJHG 81:559):
variants are visited in file order, and a variant is dropped when its squared correlation (mean-imputed dosages)
with any kept variant among the previous ``window`` variants of the same chromosome exceeds ``r2``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy.linalg import eigh

from biolatent.discover.genetics.grm import genetic_relationship_matrix
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes, standardise_block

EXACT_MAX_SAMPLES = 4000


def genetic_pcs(
    genotypes: Genotypes,
    n_components: int = 10,
    seed: int = 0,
    *,
    method: Literal["auto", "exact", "randomized"] = "auto",
    prune: bool = False,
    window: int = 50,
    r2: float = 0.2,
    n_iter: int = 7,
) -> pd.DataFrame:
    """Samples x ``PC1..PCk`` scores (index = sample ids); ``prune=True`` LD-prunes first (``ld_prune``)."""
    if method not in ("auto", "exact", "randomized"):
        raise DataError(f"unknown PCA method {method!r} (choose auto, exact or randomized)")
    if prune:
        genotypes = ld_prune(genotypes, window=window, r2=r2)
    n = genotypes.n_samples
    if not 1 <= n_components < n:
        raise DataError(f"n_components must be between 1 and n_samples - 1 = {n - 1}, got {n_components}")
    if method == "exact" or (method == "auto" and n <= EXACT_MAX_SAMPLES):
        grm, used = genetic_relationship_matrix(genotypes)
        if used <= n_components:
            raise DataError(f"only {used} polymorphic variants: too few for {n_components} PCs")
        values, vectors = eigh(grm, subset_by_index=[n - n_components, n - 1])
        values, vectors = values[::-1], vectors[:, ::-1]
        scores = vectors * np.sqrt(np.clip(values, 0.0, None) * used)
        trace = float(np.trace(grm))
    else:
        z, _ = standardise_block(genotypes.dosages)
        used = z.shape[1]
        if used <= n_components:
            raise DataError(f"only {used} polymorphic variants: too few for {n_components} PCs")
        u, s = _randomized_svd(z, n_components, seed=seed, n_iter=n_iter)
        scores, values, trace = u * s, s**2 / used, float(np.sum(z * z)) / used
    pivot = np.abs(scores).argmax(axis=0)
    scores = scores * np.sign(scores[pivot, np.arange(scores.shape[1])])
    frame = pd.DataFrame(scores, index=pd.Index(list(genotypes.samples), name="id"),
                         columns=[f"PC{i + 1}" for i in range(n_components)])
    frame.attrs.update({"eigenvalues": values.tolist(), "variance_explained": (values / trace).tolist(),
                        "n_variants_used": int(used)})
    return frame


def _randomized_svd(z: np.ndarray, k: int, *, seed: int, n_iter: int, oversample: int = 10) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """Top-k left singular vectors and values of ``z`` (Halko et al. 2011, Alg. 4.4 + 5.1)."""
    rng = np.random.default_rng(seed)
    width = min(k + oversample, min(z.shape))
    q, _ = np.linalg.qr(z @ rng.standard_normal((z.shape[1], width)))
    for _ in range(n_iter):  # subspace iteration, re-orthonormalised at every half step
        w, _ = np.linalg.qr(z.T @ q)
        q, _ = np.linalg.qr(z @ w)
    u_small, s, _ = np.linalg.svd(q.T @ z, full_matrices=False)
    return (q @ u_small)[:, :k], s[:k]


def ld_prune(genotypes: Genotypes, window: int = 50, r2: float = 0.2) -> Genotypes:
    """The variants kept by greedy window pruning (module docstring); ``variants.attrs['n_pruned']`` = dropped."""
    if window < 1 or not 0.0 < r2 <= 1.0:
        raise DataError(f"LD pruning needs window >= 1 and 0 < r2 <= 1, got window={window}, r2={r2}")
    x = np.asarray(genotypes.dosages, dtype=np.float32)
    observed = ~np.isnan(x)
    with np.errstate(invalid="ignore"):
        mean = np.where(observed.any(axis=0), np.nanmean(np.where(observed, x, np.nan), axis=0), 0.0)
    centred = np.where(observed, x - mean, 0.0)
    norm = np.sqrt((centred**2).sum(axis=0))
    unit = np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 0)
    chrom = genotypes.variants["chrom"].astype(str).to_numpy()
    kept: list[int] = []
    for j in range(x.shape[1]):
        recent = [i for i in kept[-window:] if i >= j - window and chrom[i] == chrom[j]]
        if recent and norm[j] > 0 and np.max((unit[:, recent].T @ unit[:, j]) ** 2) > r2:
            continue
        kept.append(j)
    pruned = genotypes.subset(variant_index=np.array(kept, dtype=np.int64))
    pruned.variants.attrs["n_pruned"] = genotypes.n_variants - len(kept)
    return pruned
