"""GREML and HE regression against independent dense computations (fast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.heritability import genetic_correlation, greml, h2_table, he_regression
from biolatent.errors import DataError


def _grm(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.binomial(2, rng.uniform(0.1, 0.5, size=m), size=(n, m)).astype(float)
    p = x.mean(axis=0) / 2
    z = (x - 2 * p) / np.sqrt(2 * p * (1 - p))
    return z @ z.T / m, z


def _trait(z: np.ndarray, h2: float, rng: np.random.Generator, n_causal: int = 50) -> np.ndarray:
    g = z[:, rng.choice(z.shape[1], n_causal, replace=False)] @ rng.standard_normal(n_causal)
    g = (g - g.mean()) / g.std() * np.sqrt(h2)
    return g + rng.standard_normal(z.shape[0]) * np.sqrt(1 - h2)


def _design(cov: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones((n, 1)) if cov is None else np.column_stack([np.ones(n), cov])


def _direct_reml(y, k, x, sigma_g, sigma_e) -> float:
    """-0.5 [(n-p) log 2pi + log|V| + log|X'V^-1X| + y'Py] with dense inverses (no eigendecomposition)."""
    n, p = x.shape
    v = sigma_g * k + sigma_e * np.eye(n)
    vi = np.linalg.inv(v)
    xvx = x.T @ vi @ x
    pm = vi - vi @ x @ np.linalg.inv(xvx) @ x.T @ vi
    return -0.5 * ((n - p) * np.log(2 * np.pi) + np.linalg.slogdet(v)[1] + np.linalg.slogdet(xvx)[1] + y @ pm @ y)


def _direct_profile(y, k, x, h2) -> float:
    """REML log-likelihood at h2 with the total variance at its closed-form REML value (dense)."""
    n, p = x.shape
    hi = np.linalg.inv(h2 * k + (1 - h2) * np.eye(n))
    pm = hi - hi @ x @ np.linalg.inv(x.T @ hi @ x) @ x.T @ hi
    sigma = y @ pm @ y / (n - p)
    return _direct_reml(y, k, x, h2 * sigma, (1 - h2) * sigma)


@pytest.fixture(scope="module")
def data():
    k, z = _grm(150, 400, seed=0)
    rng = np.random.default_rng(1)
    cov = np.column_stack([rng.standard_normal(150), rng.integers(0, 2, 150)])
    y = _trait(z, 0.6, rng) + 2.0 * cov[:, 0] - 1.0 * cov[:, 1] + 5.0
    return y, k, cov


def test_greml_loglik_equals_direct_computation(data):
    y, k, cov = data
    fit = greml(y, k, cov)
    assert fit["converged"] and fit["method"] == "greml" and fit["n"] == 150
    direct = _direct_reml(y, k, _design(cov, 150), fit["sigma_g"], fit["sigma_e"])
    assert fit["loglik"] == pytest.approx(direct, abs=1e-7)
    assert fit["h2"] == pytest.approx(fit["sigma_g"] / (fit["sigma_g"] + fit["sigma_e"]))
    # it is a maximum of the two-parameter likelihood: no nearby (sigma_g, sigma_e) is higher
    for dg, de in [(1.02, 1), (0.98, 1), (1, 1.02), (1, 0.98), (1.02, 1.02), (0.98, 0.98)]:
        assert _direct_reml(y, k, _design(cov, 150), fit["sigma_g"] * dg, fit["sigma_e"] * de) < direct


def test_greml_optimum_matches_brute_force_grid(data):
    y, k, cov = data
    x = _design(cov, 150)
    grid = np.linspace(0, 0.995, 200)  # spacing 0.005
    values = [_direct_profile(y, k, x, h) for h in grid]
    best = grid[int(np.argmax(values))]
    fit = greml(y, k, cov)
    assert abs(fit["h2"] - best) <= 0.005
    assert fit["loglik"] >= max(values) - 1e-8


def test_greml_se_matches_inverse_fisher_information(data):
    y, k, cov = data
    fit = greml(y, k, cov)
    x, n = _design(cov, 150), 150
    vi = np.linalg.inv(fit["sigma_g"] * k + fit["sigma_e"] * np.eye(n))
    pm = vi - vi @ x @ np.linalg.inv(x.T @ vi @ x) @ x.T @ vi
    dv = [k, np.eye(n)]
    fisher = 0.5 * np.array([[np.trace(pm @ a @ pm @ b) for b in dv] for a in dv])
    total = fit["sigma_g"] + fit["sigma_e"]
    grad = np.array([fit["sigma_e"], -fit["sigma_g"]]) / total**2
    se_fisher = np.sqrt(grad @ np.linalg.inv(fisher) @ grad)
    assert fit["se"] == pytest.approx(se_fisher, rel=0.25)  # AI ~ expected information


def test_greml_boundary_estimate_is_exactly_zero():
    k, _ = _grm(100, 300, seed=2)
    x = np.ones((100, 1))
    grid = np.linspace(0, 0.99, 100)
    for seed in range(40):
        y = np.random.default_rng(seed).standard_normal(100)
        if int(np.argmax([_direct_profile(y, k, x, h) for h in grid])) == 0:
            break
    else:
        pytest.fail("no null trait with its REML maximum at h2 = 0")
    fit = greml(y, k)
    assert fit["h2"] == 0.0 and fit["sigma_g"] == 0.0 and fit["se"] > 0
    assert fit["loglik"] == pytest.approx(_direct_reml(y, k, x, 0.0, fit["sigma_e"]), abs=1e-7)


def _direct_he(a, b, k) -> float:
    """OLS slope of a_i b_j on K_ij over all ordered pairs i != j, with intercept (np.polyfit)."""
    off = ~np.eye(k.shape[0], dtype=bool)
    return float(np.polyfit(k[off], np.outer(a, b)[off], 1)[0])


def _standardise(y, x):
    r = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    return r / r.std()


def test_he_matches_direct_pairwise_regression_and_jackknife():
    k, z = _grm(60, 200, seed=3)
    rng = np.random.default_rng(4)
    cov = rng.standard_normal((60, 1))
    y = _trait(z, 0.5, rng) + cov[:, 0]
    fit = he_regression(y, k, cov)
    x = _design(cov, 60)
    assert fit["h2"] == pytest.approx(_direct_he(_standardise(y, x), _standardise(y, x), k), rel=1e-9)
    # delete-one jackknife (60 samples <= 100 blocks), every fit redone on the kept samples
    reps = []
    for i in range(60):
        keep = np.arange(60) != i
        r = _standardise(y[keep], x[keep])
        reps.append(_direct_he(r, r, k[np.ix_(keep, keep)]))
    reps = np.array(reps)
    assert fit["se"] == pytest.approx(np.sqrt(59 / 60 * ((reps - reps.mean()) ** 2).sum()), rel=1e-8)


def test_genetic_correlation_matches_direct_bivariate_he():
    k, z = _grm(70, 200, seed=5)
    rng = np.random.default_rng(6)
    y1, y2 = _trait(z, 0.6, rng), _trait(z, 0.6, rng)
    x = np.ones((70, 1))
    a, b = _standardise(y1, x), _standardise(y2, x)
    cross = 0.5 * (_direct_he(a, b, k) + _direct_he(b, a, k))
    expected = cross / np.sqrt(_direct_he(a, a, k) * _direct_he(b, b, k))
    fit = genetic_correlation(y1, y2, k)
    assert fit["rg"] == pytest.approx(expected, rel=1e-9)
    assert fit["se"] > 0


def test_he_and_rg_recover_simulated_values():
    k, z = _grm(500, 2000, seed=7)
    rng = np.random.default_rng(8)
    estimates, rgs = [], []
    for _ in range(8):
        idx = rng.choice(2000, 100, replace=False)
        g = z[:, idx] @ rng.standard_normal(100)
        g = (g - g.mean()) / g.std() * np.sqrt(0.5)
        y1 = g + rng.standard_normal(500) * np.sqrt(0.5)
        y2 = g + rng.standard_normal(500) * np.sqrt(0.5)  # same genetic value: rg = 1
        estimates.append(he_regression(y1, k)["h2"])
        rgs.append(genetic_correlation(y1, y2, k)["rg"])
    assert abs(np.mean(estimates) - 0.5) < 0.1
    assert abs(np.nanmean(rgs) - 1.0) < 0.15


def test_h2_table_columns_missing_values_and_errors(data):
    y, k, cov = data
    ids = [f"s{i}" for i in range(150)]
    phen = pd.DataFrame({"height": y, "bmi": np.random.default_rng(9).standard_normal(150)}, index=ids)
    phen.iloc[:10, 1] = np.nan
    covs = pd.DataFrame({"pc1": cov[:, 0], "sex": np.where(cov[:, 1] > 0, "F", "M")}, index=ids)
    for method in ("greml", "he"):
        table = h2_table(phen, k, ids, covs, method)
        assert list(table.columns) == ["trait", "h2", "se", "method", "n", "ci_low", "ci_high"]
        assert table["n"].tolist() == [150, 140] and set(table["method"]) == {method}
        np.testing.assert_allclose(table["ci_high"] - table["h2"], 1.959963984540054 * table["se"])
    direct = greml(y, k, np.column_stack([cov[:, 0], cov[:, 1] == 0]))
    assert h2_table(phen, k, ids, covs, "greml")["h2"].iloc[0] == pytest.approx(direct["h2"], abs=1e-6)
    with pytest.raises(DataError, match="'flat'"):
        h2_table(phen.assign(flat=1.0), k, ids, None, "greml")
    with pytest.raises(DataError, match="unknown heritability method"):
        h2_table(phen, k, ids, None, "ldsc")
    with pytest.raises(DataError, match="constant"):
        greml(np.ones(150), k)
