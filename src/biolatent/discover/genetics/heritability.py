"""SNP heritability and genetic correlation from a genomic relationship matrix ``K``.

Model: ``y = X b + g + e``, ``g ~ N(0, sigma_g K)``, ``e ~ N(0, sigma_e I)``, ``h2 = sigma_g / (sigma_g +
sigma_e)``. ``X`` is always an intercept plus the covariates (linearly dependent columns are dropped).

* ``greml``: REML (Patterson & Thompson 1971) as in GCTA (Yang et al. 2011, AJHG 88:76). ``K = U S U^T`` is
  diagonalised once (Kang et al. 2008 EMMA; Lippert et al. 2011 FaST-LMM); rotated by ``U^T`` the covariance
  is diagonal, ``sigma (h2 S + (1 - h2) I)``, the total variance ``sigma`` is profiled out in closed form and
  the REML likelihood is maximised over ``h2`` in [0, 1] by bounded Brent search; the boundaries 0 and 1 are
  evaluated too and win when their likelihood is higher, so a boundary estimate is exactly 0 or 1. The SE
  is the delta method on the inverse average-information matrix (Gilmour, Thompson & Cullis 1995,
  Biometrics 51:1440) at the optimum; at a boundary it is the same formula (a Wald SE, not a boundary-aware
  one). Each likelihood evaluation costs O(n p^2) after the O(n^3) eigendecomposition.
* ``he_regression``: Haseman-Elston cross-product regression (Haseman & Elston 1972, Behav Genet 2:3;
  Sofer 2017, Stat Appl Genet Mol Biol 16:259; Yang et al. 2017, Nat Genet 49:1304; GCTA ``--HEreg``):
  ``y_i y_j = a + h2 K_ij``
  over pairs ``i != j`` with ``y`` residualised on ``X`` and standardised. SE: delete-a-block jackknife over
  samples (Quenouille-Tukey; blocks of samples, every fit redone from residualisation on), which, unlike the
  analytic OLS SE (``Var ~ 2 / (n^2 Var(K_ij))``, Visscher et al. 2014 PLoS Genet 10:e1004269), accounts for
  the dependence between pairs that share a sample.
* ``genetic_correlation``: bivariate HE, ``y1_i y2_j = a + sigma_g12 K_ij``,
  ``rg = sigma_g12 / sqrt(h2_1 h2_2)``, jackknife SE.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.optimize

from biolatent.errors import DataError

Z95 = 1.959963984540054
N_JACKKNIFE_BLOCKS = 100


def design_matrix(covariates: np.ndarray | None, n: int) -> np.ndarray:
    """Intercept + covariates, keeping a linearly independent subset of columns (pivoted QR)."""
    x = np.ones((n, 1))
    if covariates is not None:
        cov = np.asarray(covariates, dtype=np.float64).reshape(n, -1)
        if not np.isfinite(cov).all():
            raise DataError("covariates contain missing or non-finite values")
        x = np.column_stack([x, cov])
    _, r, piv = scipy.linalg.qr(x, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int((diag > 1e-10 * max(diag[0], 1.0) * max(x.shape)).sum())
    return x[:, np.sort(piv[:rank])]


def _check(y: np.ndarray, k: np.ndarray, name: str = "trait") -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).ravel()
    if k.shape != (y.size, y.size):
        raise DataError(f"relationship matrix {k.shape} does not match {y.size} phenotype values")
    if not np.isfinite(y).all():
        raise DataError(f"{name} has missing or non-finite values")
    if y.size < 3 or np.ptp(y) == 0:
        raise DataError(f"{name} is constant (or has < 3 samples): heritability is undefined")
    return y


def _standardised_residuals(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    sd = resid.std()
    if sd <= 1e-12 * max(1.0, np.abs(y).max()):
        raise DataError("trait is fully explained by the covariates: heritability is undefined")
    return resid / sd


def _he_slope(a: np.ndarray, b: np.ndarray, k: np.ndarray, k2: np.ndarray, keep: np.ndarray) -> float:
    """OLS slope of ``a_i b_j`` on ``K_ij`` (with intercept) over ordered pairs i != j inside ``keep``."""
    a, b, r = a * keep, b * keep, keep.astype(np.float64)
    diag = np.diag(k)
    n_pairs = r.sum() * (r.sum() - 1)
    sx = r @ (k @ r) - (diag * r).sum()
    sxx = r @ (k2 @ r) - (diag**2 * r).sum()
    sy = a.sum() * b.sum() - (a * b).sum()
    sxy = a @ (k @ b) - (diag * a * b).sum()
    return float((sxy - sx * sy / n_pairs) / (sxx - sx**2 / n_pairs))


def _he_fit(ys: list[np.ndarray], k: np.ndarray, k2: np.ndarray, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """HE slopes [h2_1, (h2_2, sigma_g12)] on the samples in ``keep``, residualised and standardised there."""
    z = [np.zeros_like(y) for y in ys]
    for zi, y in zip(z, ys, strict=True):
        zi[keep] = _standardised_residuals(y[keep], x[keep])
    slopes = [_he_slope(zi, zi, k, k2, keep) for zi in z]
    if len(z) == 2:
        slopes.append(_he_slope(z[0], z[1], k, k2, keep))
    return np.array(slopes)


def _he_jackknife(ys: list[np.ndarray], k: np.ndarray, covariates: np.ndarray | None, stat) -> tuple[float, float]:
    n = ys[0].size
    x = design_matrix(covariates, n)
    k2 = k * k
    full = stat(_he_fit(ys, k, k2, x, np.ones(n, dtype=bool)))
    n_blocks = min(n, N_JACKKNIFE_BLOCKS)
    block = np.arange(n) % n_blocks
    reps = np.array([stat(_he_fit(ys, k, k2, x, block != b)) for b in range(n_blocks)])
    reps = reps[np.isfinite(reps)]
    if reps.size < 2:
        return float(full), float("nan")
    se = np.sqrt((reps.size - 1) / reps.size * ((reps - reps.mean()) ** 2).sum())
    return float(full), float(se)


def he_regression(y: np.ndarray, k: np.ndarray, covariates: np.ndarray | None = None) -> dict[str, Any]:
    """Haseman-Elston cross-product regression estimate of h2 (unconstrained), with a jackknife SE."""
    k = np.asarray(k, dtype=np.float64)
    y = _check(y, k)
    h2, se = _he_jackknife([y], k, covariates, lambda s: s[0])
    return {"h2": h2, "se": se, "method": "he", "n": int(y.size)}


def genetic_correlation(y1: np.ndarray, y2: np.ndarray, k: np.ndarray,
                        covariates: np.ndarray | None = None) -> dict[str, float]:
    """Bivariate HE regression genetic correlation ``rg`` (NaN when an h2 estimate is <= 0), jackknife SE."""
    k = np.asarray(k, dtype=np.float64)
    y1, y2 = _check(y1, k, "trait 1"), _check(y2, k, "trait 2")

    def rg(s: np.ndarray) -> float:
        return float(s[2] / np.sqrt(s[0] * s[1])) if s[0] > 0 and s[1] > 0 else float("nan")

    value, se = _he_jackknife([y1, y2], k, covariates, rg)
    return {"rg": value, "se": se}


class _RotatedReml:
    """REML pieces of the eigen-rotated model: ``V = sigma_g diag(s) + sigma_e I`` for ``U^T y``, ``U^T X``."""

    def __init__(self, y: np.ndarray, x: np.ndarray, vals: np.ndarray, vecs: np.ndarray) -> None:
        self.y, self.x, self.s = vecs.T @ y, vecs.T @ x, np.clip(vals, 0.0, None)
        self.n, self.p = x.shape

    def _solve(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = 1.0 / d
        xtwx = self.x.T @ (self.x * w[:, None])
        beta = np.linalg.solve(xtwx, self.x.T @ (w * self.y))
        return w, xtwx, self.y - self.x @ beta

    def profile(self, h2: float) -> tuple[float, float]:
        """(REML log-likelihood with the total variance profiled out, that variance) at ``h2``."""
        d = h2 * self.s + (1.0 - h2)
        if d.min() <= 1e-12:
            return -np.inf, float("nan")
        w, xtwx, resid = self._solve(d)
        dof = self.n - self.p
        sigma = float((w * resid**2).sum() / dof)
        return self.loglik_h(d, xtwx, sigma, dof), sigma

    @staticmethod
    def loglik_h(d: np.ndarray, xtwx: np.ndarray, sigma: float, dof: int) -> float:
        logdet_x = np.linalg.slogdet(xtwx)[1]
        return float(-0.5 * (dof * np.log(2 * np.pi * sigma) + np.log(d).sum() + logdet_x + dof))

    def average_information(self, sigma_g: float, sigma_e: float) -> np.ndarray:
        """AI matrix ``0.5 (V_k P y)^T P (V_l P y)`` for (sigma_g, sigma_e) (Gilmour et al. 1995)."""
        w, xtwx, resid = self._solve(sigma_g * self.s + sigma_e)
        py = w * resid

        def apply_p(u: np.ndarray) -> np.ndarray:
            wu = w * u
            return wu - w * (self.x @ np.linalg.solve(xtwx, self.x.T @ wu))

        dv = [self.s * py, py]
        pdv = [apply_p(v) for v in dv]
        return 0.5 * np.array([[dv[i] @ pdv[j] for j in range(2)] for i in range(2)])


def greml(y: np.ndarray, k: np.ndarray, covariates: np.ndarray | None = None, *, max_iter: int = 100,
          tol: float = 1e-6, eig: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """GREML h2 with delta-method SE; ``eig = numpy.linalg.eigh(K)`` may be passed to reuse it across traits.

    Returns h2, se, sigma_g, sigma_e, loglik (REML log-likelihood ``-0.5 [(n - p) log 2 pi + log|V| +
    log|X^T V^-1 X| + y^T P y]`` at the optimum), method "greml", n, converged.
    """
    k = np.asarray(k, dtype=np.float64)
    y = _check(y, k)
    vals, vecs = np.linalg.eigh(k) if eig is None else eig
    x = design_matrix(covariates, y.size)
    if y.size - x.shape[1] < 2:
        raise DataError(f"{y.size} samples are too few for {x.shape[1]} fixed effects")
    model = _RotatedReml(y, x, vals, vecs)
    res = scipy.optimize.minimize_scalar(lambda h: -model.profile(h)[0], bounds=(0.0, 1.0), method="bounded",
                                         options={"xatol": tol, "maxiter": max_iter})
    candidates = [(float(res.x), *model.profile(float(res.x)))] + [(b, *model.profile(b)) for b in (0.0, 1.0)]
    h2, loglik, sigma = max(candidates, key=lambda c: c[1])
    sigma_g, sigma_e = h2 * sigma, (1.0 - h2) * sigma
    se = float("nan")
    try:
        cov = np.linalg.inv(model.average_information(sigma_g, max(sigma_e, 1e-10 * sigma)))
        grad = np.array([sigma_e, -sigma_g]) / sigma**2
        se = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
    except np.linalg.LinAlgError:
        pass
    return {"h2": float(h2), "se": se, "sigma_g": float(sigma_g), "sigma_e": float(sigma_e),
            "loglik": float(loglik), "method": "greml", "n": int(y.size), "converged": bool(res.success)}


METHODS = {"greml": greml, "he": he_regression}


def _covariate_matrix(covariates: pd.DataFrame) -> pd.DataFrame:
    """Numeric covariates; text/categorical columns become 0/1 indicators (first level dropped)."""
    return pd.get_dummies(covariates, drop_first=True, dtype=float).astype(float)


def h2_table(phenotypes: pd.DataFrame, k: np.ndarray, sample_ids: list[str], covariates: pd.DataFrame | None,
             method: str = "greml") -> pd.DataFrame:
    """One row per trait (column of ``phenotypes``, indexed by sample id): trait h2 se method n ci_low ci_high.

    ``K`` rows follow ``sample_ids``; per trait, samples lacking the trait or any covariate are dropped.
    The CI is the Wald interval h2 +- 1.96 se.
    """
    if method not in METHODS:
        raise DataError(f"unknown heritability method {method!r} (choose from {', '.join(METHODS)})")
    ids = pd.Index([str(s) for s in sample_ids])
    covs = None if covariates is None else _covariate_matrix(covariates).reindex(ids)
    eig_cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    rows = []
    for trait in phenotypes.columns:
        values = pd.to_numeric(phenotypes[trait], errors="coerce").reindex(ids)
        if phenotypes[trait].notna().sum() != pd.to_numeric(phenotypes[trait], errors="coerce").notna().sum():
            raise DataError(f"trait {trait!r} has non-numeric values")
        ok = values.notna().to_numpy()
        if covs is not None:
            ok &= covs.notna().all(axis=1).to_numpy()
        idx = np.flatnonzero(ok)
        y = values.to_numpy()[idx]
        if idx.size < 3 or np.ptp(y) == 0:
            raise DataError(f"trait {trait!r} is constant or has fewer than 3 genotyped samples")
        sub = k[np.ix_(idx, idx)]
        cov = None if covs is None else covs.to_numpy()[idx]
        try:
            if method == "greml":
                key = ok.tobytes()
                if key not in eig_cache:
                    eig_cache.clear()
                    eig_cache[key] = np.linalg.eigh(sub)
                fit = greml(y, sub, cov, eig=eig_cache[key])
            else:
                fit = he_regression(y, sub, cov)
        except DataError as exc:
            raise DataError(f"trait {trait!r}: {exc}") from None
        rows.append({"trait": str(trait), "h2": fit["h2"], "se": fit["se"], "method": method, "n": fit["n"],
                     "ci_low": fit["h2"] - Z95 * fit["se"], "ci_high": fit["h2"] + Z95 * fit["se"]})
    return pd.DataFrame(rows, columns=["trait", "h2", "se", "method", "n", "ci_low", "ci_high"])
