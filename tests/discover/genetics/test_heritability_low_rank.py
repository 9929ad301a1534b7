"""GREML's low-rank path (FaST-LMM, Lippert et al. 2011) against the full eigendecomposition and dense algebra."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.heritability import _RotatedReml, greml, h2_table, low_rank_eig
from biolatent.errors import DataError


def _genotypes(n: int, m: int, seed: int, duplicates: int = 0) -> np.ndarray:
    """n x m standardised genotypes; the last ``duplicates`` columns copy earlier ones (rank-deficient Z)."""
    rng = np.random.default_rng(seed)
    x = rng.binomial(2, rng.uniform(0.1, 0.5, size=m), size=(n, m)).astype(float)
    if duplicates:
        x[:, m - duplicates:] = x[:, :duplicates]
    p = x.mean(axis=0) / 2
    return (x - 2 * p) / np.sqrt(2 * p * (1 - p))


def _trait(z: np.ndarray, h2: float, rng: np.random.Generator, n_causal: int = 50) -> np.ndarray:
    b = rng.standard_normal(n_causal) * np.sqrt(h2 / n_causal)
    return z[:, rng.choice(z.shape[1], n_causal, replace=False)] @ b + rng.standard_normal(z.shape[0]) * np.sqrt(1 - h2)


def _dense_profile(y: np.ndarray, k: np.ndarray, x: np.ndarray, h2: float) -> float:
    """REML log-likelihood at h2, total variance profiled out, with dense inverses (no eigendecomposition)."""
    n, p = x.shape
    h = h2 * k + (1 - h2) * np.eye(n)
    hi = np.linalg.inv(h)
    xhx = x.T @ hi @ x
    pm = hi - hi @ x @ np.linalg.solve(xhx, x.T @ hi)
    sigma = y @ pm @ y / (n - p)
    return -0.5 * ((n - p) * np.log(2 * np.pi * sigma) + np.linalg.slogdet(h)[1] + np.linalg.slogdet(xhx)[1]
                   + (n - p))


@pytest.fixture(scope="module")
def case():
    n, m = 300, 120
    z = _genotypes(n, m, seed=0, duplicates=10)  # rank 110 < m < n
    rng = np.random.default_rng(1)
    cov = np.column_stack([rng.standard_normal(n), rng.integers(0, 2, n)])
    y = _trait(z, 0.5, rng) + 1.5 * cov[:, 0] - cov[:, 1] + 3.0
    return y, z, z @ z.T / m, cov


def test_low_rank_eig_reconstructs_k(case):
    _, z, k, _ = case
    vals, vecs = low_rank_eig(z)
    assert vecs.shape == (300, 110) and vals.size == 110  # the 10 duplicated columns add no rank
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(110), atol=1e-10)
    np.testing.assert_allclose((vecs * vals) @ vecs.T, k, atol=1e-10)
    full = np.linalg.eigvalsh(k)
    np.testing.assert_allclose(np.sort(vals), full[-110:], rtol=1e-9)
    assert np.abs(full[:-110]).max() < 1e-10


def test_low_rank_profile_likelihood_equals_dense(case):
    y, z, k, cov = case
    x = np.column_stack([np.ones(300), cov])
    low = _RotatedReml(y, x, *low_rank_eig(z))
    full = _RotatedReml(y, x, *np.linalg.eigh(k))
    assert low.n_perp == 190 and full.n_perp == 0
    for h2 in (0.0, 0.1, 0.37, 0.8, 0.99):
        dense = _dense_profile(y, k, x, h2)
        assert low.profile(h2)[0] == pytest.approx(dense, abs=1e-8)
        assert full.profile(h2)[0] == pytest.approx(dense, abs=1e-8)
    assert low.profile(1.0)[0] == -np.inf  # K is singular: h2 = 1 is outside the model
    np.testing.assert_allclose(low.average_information(0.7, 0.4), full.average_information(0.7, 0.4), rtol=1e-9)


def test_low_rank_greml_equals_full_greml(case):
    y, z, k, cov = case
    full = greml(y, k, cov)
    for fit in (greml(y, None, cov, z=z), greml(y, k, cov, eig=low_rank_eig(z))):
        assert full["path"] == "full" and fit["path"] == "low_rank"
        assert fit["h2"] == pytest.approx(full["h2"], abs=1e-6)
        assert fit["se"] == pytest.approx(full["se"], rel=1e-6)
        assert fit["loglik"] == pytest.approx(full["loglik"], abs=1e-8)
        assert fit["sigma_g"] == pytest.approx(full["sigma_g"], rel=1e-5)
    # with m >= n the genotypes route eigendecomposes Z Z^T / m: the full path
    z_wide = _genotypes(80, 200, seed=2)
    y_wide = _trait(z_wide, 0.4, np.random.default_rng(3))
    wide = greml(y_wide, None, z=z_wide)
    assert wide["path"] == "full"
    assert wide["h2"] == pytest.approx(greml(y_wide, z_wide @ z_wide.T / 200)["h2"], abs=1e-8)


def test_low_rank_greml_recovers_simulated_h2():
    """n = 3,000 people, m = 1,000 independent variants, true h2 = 0.5 (seed 4): estimate within 3 SE and 0.1."""
    z = _genotypes(3000, 1000, seed=4)
    y = _trait(z, 0.5, np.random.default_rng(5), n_causal=200)
    fit = greml(y, None, z=z)
    assert fit["path"] == "low_rank" and fit["converged"]
    assert 0.01 < fit["se"] < 0.1
    assert abs(fit["h2"] - 0.5) < min(3 * fit["se"], 0.1)


def test_h2_table_low_rank_matches_full_with_missing_values(case):
    y, z, k, cov = case
    ids = [f"s{i}" for i in range(300)]
    phen = pd.DataFrame({"a": y, "b": np.random.default_rng(6).standard_normal(300) + 0.5 * z[:, 0]}, index=ids)
    phen.iloc[:25, 1] = np.nan
    covs = pd.DataFrame({"pc1": cov[:, 0], "sex": np.where(cov[:, 1] > 0, "F", "M")}, index=ids)
    full = h2_table(phen, k, ids, covs, "greml")
    low = h2_table(phen, k, ids, covs, "greml", z=z)
    assert low["n"].tolist() == [300, 275]
    np.testing.assert_allclose(low["h2"], full["h2"], atol=1e-6)
    np.testing.assert_allclose(low["se"], full["se"], rtol=1e-5, atol=1e-9)


def test_greml_input_errors(case):
    y, z, _, _ = case
    with pytest.raises(DataError, match="needs the relationship matrix"):
        greml(y, None)
    with pytest.raises(DataError, match="do not match"):
        greml(y[:-1], None, z=z)
    with pytest.raises(DataError, match="samples x variants"):
        low_rank_eig(np.zeros((5, 0)))
