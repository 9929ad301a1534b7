"""GCTA GRM against a direct, unchunked numpy computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.grm import genetic_relationship_matrix, standardised_genotypes
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes


def _genotypes(dosages: np.ndarray) -> Genotypes:
    m = dosages.shape[1]
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(1, m + 1), "id": [f"v{j}" for j in range(m)],
                             "ref": "A", "alt": "G"})
    return Genotypes(dosages.astype(np.float32), [f"s{i}" for i in range(dosages.shape[0])], variants)


def _direct_grm(x: np.ndarray) -> tuple[np.ndarray, int]:
    cols = []
    for j in range(x.shape[1]):
        col = x[:, j].astype(float)
        obs = col[~np.isnan(col)]
        if obs.size == 0 or obs.min() == obs.max():
            continue
        p = obs.mean() / 2
        z = (col - 2 * p) / np.sqrt(2 * p * (1 - p))
        z[np.isnan(col)] = 0.0
        cols.append(z)
    z = np.column_stack(cols)
    return z @ z.T / z.shape[1], z.shape[1]


def test_grm_matches_direct_computation_with_missing_and_monomorphic():
    rng = np.random.default_rng(0)
    n, m = 40, 300
    x = rng.binomial(2, rng.uniform(0.05, 0.5, size=m), size=(n, m)).astype(float)
    x[:, 5] = 0.0  # monomorphic REF
    x[:, 17] = 2.0  # monomorphic ALT
    x[:, 30] = np.nan  # all missing
    x[rng.random((n, m)) < 0.05] = np.nan
    expected, m_expected = _direct_grm(x)
    for chunk in (7, 64, 4096):
        grm, used = genetic_relationship_matrix(_genotypes(x), chunk_size=chunk)
        assert used == m_expected == m - 3
        np.testing.assert_allclose(grm, expected, rtol=1e-10, atol=1e-12)
    assert np.allclose(grm, grm.T)
    assert np.linalg.eigvalsh(grm).min() > -1e-10


def test_grm_without_missing_equals_textbook_formula():
    rng = np.random.default_rng(1)
    x = rng.binomial(2, 0.3, size=(25, 200)).astype(float)
    p = x.mean(axis=0) / 2
    z = (x - 2 * p) / np.sqrt(2 * p * (1 - p))
    grm, _ = genetic_relationship_matrix(_genotypes(x), chunk_size=50)
    np.testing.assert_allclose(grm, z @ z.T / 200, rtol=1e-10)
    # mean diagonal = mean over variants of (sample variance / HWE variance 2p(1-p))
    assert np.mean(np.diag(grm)) == pytest.approx(np.mean(x.var(axis=0) / (2 * p * (1 - p))), rel=1e-10)


def test_grm_refuses_only_monomorphic_variants():
    with pytest.raises(DataError, match="no polymorphic variant"):
        genetic_relationship_matrix(_genotypes(np.ones((5, 3))))


def test_standardised_genotypes_give_the_grm():
    rng = np.random.default_rng(5)
    n, m = 50, 120
    x = rng.binomial(2, rng.uniform(0.05, 0.5, size=m), size=(n, m)).astype(float)
    x[:, 3] = 1.0  # monomorphic
    x[rng.random((n, m)) < 0.05] = np.nan
    expected, m_expected = _direct_grm(x)
    for chunk in (7, 4096):
        z, used = standardised_genotypes(_genotypes(x), chunk_size=chunk)
        assert z.shape == (n, m_expected) and used == m_expected
        np.testing.assert_allclose(z @ z.T / used, expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(DataError, match="no polymorphic"):
        standardised_genotypes(_genotypes(np.ones((5, 3))))
