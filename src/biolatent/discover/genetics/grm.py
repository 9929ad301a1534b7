"""Genomic relationship matrix (GRM) from standardised genotypes.

Yang, Lee, Goddard & Visscher (2011), "GCTA: a tool for genome-wide complex trait analysis",
Am. J. Hum. Genet. 88:76-82, eq. 3 with the off-diagonal estimator used for every entry:

    z_ij = (x_ij - 2 p_j) / sqrt(2 p_j (1 - p_j)),      K = Z Z^T / m

where ``x_ij`` is the ALT dosage of sample i at variant j and ``p_j`` the ALT frequency estimated from the
non-missing calls. A missing call is set to the mean (``z = 0``), so it adds nothing to any entry; unlike
GCTA's per-pair count of non-missing variants, every entry is divided by the same ``m`` (the number of
variants used), which keeps ``K`` positive semi-definite.
"""

from __future__ import annotations

import numpy as np

from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes, standardise_block


def genetic_relationship_matrix(genotypes: Genotypes, *, chunk_size: int = 4096) -> tuple[np.ndarray, int]:
    """GCTA GRM ``K = Z Z^T / m`` (Yang et al. 2011), accumulated over chunks of ``chunk_size`` variants.

    Returns ``(K, n_variants_used)``: ``K`` is n x n float64; monomorphic and all-missing variants are skipped
    and not counted in ``m``. Raises ``DataError`` when no variant is polymorphic.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dosages = genotypes.dosages
    n, m = dosages.shape
    if n == 0:
        raise DataError("genotypes have no samples: cannot build a relationship matrix")
    grm = np.zeros((n, n), dtype=np.float64)
    used = 0
    for start in range(0, m, chunk_size):
        z, keep = standardise_block(dosages[:, start:start + chunk_size])
        if z.shape[1]:
            grm += z @ z.T
            used += int(keep.sum())
    if used == 0:
        raise DataError(f"no polymorphic variant among {m} variants: cannot build a relationship matrix")
    grm /= used
    return grm, used


def standardised_genotypes(genotypes: Genotypes, *, chunk_size: int = 4096) -> tuple[np.ndarray, int]:
    """The n x m float64 matrix ``Z`` of the GRM, ``K = Z Z^T / m`` (same variants and scaling as
    :func:`genetic_relationship_matrix`), for GREML's low-rank path when m < n (Lippert et al. 2011).

    Returns ``(Z, m)``. Raises ``DataError`` when no variant is polymorphic.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dosages = genotypes.dosages
    n, m = dosages.shape
    if n == 0:
        raise DataError("genotypes have no samples: cannot build a relationship matrix")
    blocks = [standardise_block(dosages[:, start:start + chunk_size])[0] for start in range(0, m, chunk_size)]
    z = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0))
    if z.shape[1] == 0:
        raise DataError(f"no polymorphic variant among {m} variants: cannot build a relationship matrix")
    return z, int(z.shape[1])
