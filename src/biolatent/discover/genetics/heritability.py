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
  Low-rank path (FaST-LMM, Lippert, Listgarten, Liu, Kadie, Davidson & Heckerman 2011, "FaST linear mixed
  models for genome-wide association studies", Nature Methods 8:833-835): when the standardised genotypes
  ``Z`` (n x m, ``K = Z Z^T / m``) are passed and m < n, the eigenpairs of ``K`` that can be non-zero come from
  the thin SVD ``Z = U1 S V^T`` (O(n m^2), ``K = U1 (S^2 / m) U1^T``, computed from the eigenpairs of
  ``Z^T Z``) and the other n - m eigenvalues are 0.
  The likelihood splits into the m rotated coordinates ``U1^T y`` and the complement ``(I - U1 U1^T) y``,
  whose covariance is ``sigma (1 - h2) I``; the complement enters only through the Gram matrix of ``[X, y]``
  minus its rotated part, so each evaluation costs O(m p^2) and ``U1`` is not kept. It is the same likelihood
  as the full path (not an approximation).
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


def _check(y: np.ndarray, k_shape: tuple[int, ...], name: str = "trait") -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).ravel()
    if tuple(k_shape) != (y.size, y.size):
        raise DataError(f"relationship matrix {tuple(k_shape)} does not match {y.size} phenotype values")
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
    y = _check(y, k.shape)
    h2, se = _he_jackknife([y], k, covariates, lambda s: s[0])
    return {"h2": h2, "se": se, "method": "he", "n": int(y.size)}


def genetic_correlation(y1: np.ndarray, y2: np.ndarray, k: np.ndarray,
                        covariates: np.ndarray | None = None) -> dict[str, float]:
    """Bivariate HE regression genetic correlation ``rg`` (NaN when an h2 estimate is <= 0), jackknife SE."""
    k = np.asarray(k, dtype=np.float64)
    y1, y2 = _check(y1, k.shape, "trait 1"), _check(y2, k.shape, "trait 2")

    def rg(s: np.ndarray) -> float:
        return float(s[2] / np.sqrt(s[0] * s[1])) if s[0] > 0 and s[1] > 0 else float("nan")

    value, se = _he_jackknife([y1, y2], k, covariates, rg)
    return {"rg": value, "se": se}


def low_rank_eig(z: np.ndarray, *, rtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs ``(s, U1)`` of ``K = Z Z^T / m`` with ``s > rtol max(s)``, from ``Z`` (n x m), in O(n m^2).

    ``Z = U1 S V^T`` (thin SVD) gives ``K = U1 (S^2 / m) U1^T`` (Lippert et al. 2011, FaST-LMM); ``V`` and ``S^2``
    are the eigenpairs of the m x m Gram matrix ``Z^T Z`` (``scipy.linalg.eigh``, divide and conquer) and
    ``U1 = Z V S^-1``. Directions with ``s <= rtol max(s)`` (linkage-identical variants make ``Z`` rank
    deficient) are left to the complement, where ``K``'s eigenvalue is 0: ``U1`` has rank(Z) orthonormal columns
    (to about ``eps / rtol``) and ``K``'s other eigenvalues are 0 to ``rtol max(s)``. Measured at n = 10,000, m =
    3,417 it was several times faster than LAPACK's thin SVD (gesdd) of ``Z``; ``benchmarks/reml_scaling.py``
    times it against ``eigh(K)``.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] == 0:
        raise DataError(f"standardised genotypes must be a samples x variants matrix, got shape {z.shape}")
    w, v = scipy.linalg.eigh(z.T @ z, driver="evd", overwrite_a=True, check_finite=False)
    keep = w > rtol * max(w[-1], 0.0)
    if not keep.any():
        raise DataError("standardised genotypes are all zero: the relationship matrix is 0")
    v = v[:, keep]
    v /= np.sqrt(w[keep])
    return w[keep] / z.shape[1], z @ v


class _RotatedReml:
    """REML pieces of the eigen-rotated model ``V = sigma_g K + sigma_e I`` with ``K = U1 diag(s) U1^T``.

    ``U1`` (n x r) is all of ``K``'s eigenvectors (r = n, the full path) or only those that can have a non-zero
    eigenvalue (r < n, the low-rank path of FaST-LMM, Lippert et al. 2011): the complement ``I - U1 U1^T``
    has covariance ``sigma_e I`` and enters through ``C = A^T A - (U1^T A)^T (U1^T A)``, ``A = [X, y]``.
    """

    def __init__(self, y: np.ndarray, x: np.ndarray, vals: np.ndarray, vecs: np.ndarray) -> None:
        self.n, self.p = x.shape
        if vecs.shape[0] != self.n or vecs.shape[1] != vals.size or vals.size > self.n:
            raise DataError(f"eigenvectors {vecs.shape} / values {vals.shape} do not match {self.n} samples")
        a = np.column_stack([x, y])
        self.a1, self.s = vecs.T @ a, np.clip(vals, 0.0, None)
        self.n_perp = self.n - vals.size
        self.c = a.T @ a - self.a1.T @ self.a1 if self.n_perp else np.zeros((self.p + 1, self.p + 1))

    def _normal(self, d: np.ndarray, e: float) -> tuple[np.ndarray, np.ndarray]:
        """``A^T V^-1 A`` for rotated variances ``d`` (r) and complement variance ``e``; and ``1 / d``."""
        w = 1.0 / d
        m = self.a1.T @ (self.a1 * w[:, None])
        if self.n_perp:
            m = m + self.c / e
        return m, w

    def _fit(self, d: np.ndarray, e: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(``X^T V^-1 X``, GLS coefficients ``[-beta, 1]``, ``1 / d``, ``y^T P y``)."""
        m, w = self._normal(d, e)
        p = self.p
        xtwx = m[:p, :p]
        beta = np.linalg.solve(xtwx, m[:p, p])
        coef = np.append(-beta, 1.0)
        return xtwx, coef, w, float(coef @ m @ coef)

    def profile(self, h2: float) -> tuple[float, float]:
        """(REML log-likelihood with the total variance profiled out, that variance) at ``h2``."""
        d, e = h2 * self.s + (1.0 - h2), 1.0 - h2
        if d.min(initial=np.inf) <= 1e-12 or (self.n_perp and e <= 1e-12):
            return -np.inf, float("nan")
        xtwx, _, _, ypy = self._fit(d, e)
        dof = self.n - self.p
        sigma = ypy / dof
        logdet_v = np.log(d).sum() + (self.n_perp * np.log(e) if self.n_perp else 0.0)
        return self.loglik_h(logdet_v, xtwx, sigma, dof), sigma

    @staticmethod
    def loglik_h(logdet_v: float, xtwx: np.ndarray, sigma: float, dof: int) -> float:
        logdet_x = np.linalg.slogdet(xtwx)[1]
        return float(-0.5 * (dof * np.log(2 * np.pi * sigma) + logdet_v + logdet_x + dof))

    def average_information(self, sigma_g: float, sigma_e: float) -> np.ndarray:
        """AI matrix ``0.5 (V_k P y)^T P (V_l P y)`` for (sigma_g, sigma_e) (Gilmour et al. 1995).

        A vector is held as (its rotated part ``U1^T u``, coefficients ``c`` of its complement part
        ``(I - U1 U1^T) A c``), so inner products with ``V^-1`` need only ``C``.
        """
        p = self.p
        xtwx, coef, w, _ = self._fit(sigma_g * self.s + sigma_e, sigma_e)
        r1 = self.a1 @ coef
        py1, py_c = w * r1, coef / sigma_e           # P y = V^-1 (y - X beta)
        dv = [(self.s * py1, np.zeros_like(coef)),   # K P y: no complement part
              (py1, py_c)]                           # I P y

        def vinv_dot(u: tuple[np.ndarray, np.ndarray], v: tuple[np.ndarray, np.ndarray]) -> float:
            return float(u[0] @ (w * v[0]) + (u[1] @ self.c @ v[1]) / sigma_e)

        def xt_vinv(u: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
            return self.a1[:, :p].T @ (w * u[0]) + self.c[:p] @ u[1] / sigma_e

        def p_dot(u: tuple[np.ndarray, np.ndarray], v: tuple[np.ndarray, np.ndarray]) -> float:
            return vinv_dot(u, v) - float(xt_vinv(u) @ np.linalg.solve(xtwx, xt_vinv(v)))

        return 0.5 * np.array([[p_dot(dv[i], dv[j]) for j in range(2)] for i in range(2)])


def greml(y: np.ndarray, k: np.ndarray | None, covariates: np.ndarray | None = None, *, max_iter: int = 100,
          tol: float = 1e-6, eig: tuple[np.ndarray, np.ndarray] | None = None,
          z: np.ndarray | None = None) -> dict[str, Any]:
    """GREML h2 with delta-method SE from ``K`` (full eigendecomposition) or from ``Z`` (FaST-LMM low rank).

    The eigenpairs of ``K`` come from, in this order: ``eig`` (``numpy.linalg.eigh(K)`` or
    :func:`low_rank_eig`, to reuse across traits); ``z``, the n x m standardised genotypes with ``K = Z Z^T / m``
    (:func:`biolatent.discover.genetics.grm.standardised_genotypes`), by the thin SVD when m < n (Lippert et al.
    2011, Nature Methods 8:833) and by ``eigh(Z Z^T / m)`` otherwise; or ``eigh(k)``. ``k`` may be None when
    ``eig`` or ``z`` is given. The two paths maximise the same likelihood.

    Returns h2, se, sigma_g, sigma_e, loglik (REML log-likelihood ``-0.5 [(n - p) log 2 pi + log|V| +
    log|X^T V^-1 X| + y^T P y]`` at the optimum), method "greml", n, converged, path ("full" when all n
    eigenpairs were used, "low_rank" otherwise).
    """
    n_expected = np.asarray(y).size
    if z is not None:
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[0] != n_expected:
            raise DataError(f"standardised genotypes {z.shape} do not match {n_expected} phenotype values")
    if eig is not None:
        vals, vecs = eig
    elif z is not None:
        vals, vecs = low_rank_eig(z) if z.shape[1] < z.shape[0] else np.linalg.eigh(z @ z.T / z.shape[1])
    elif k is not None:
        vals, vecs = None, None
    else:
        raise DataError("greml needs the relationship matrix k, its eigenpairs eig or the genotypes z")
    if k is not None:
        k = np.asarray(k, dtype=np.float64)
        y = _check(y, k.shape)
        if vals is None:
            vals, vecs = np.linalg.eigh(k)
    else:
        y = _check(y, (n_expected, n_expected))
    x = design_matrix(covariates, y.size)
    if y.size - x.shape[1] < 2:
        raise DataError(f"{y.size} samples are too few for {x.shape[1]} fixed effects")
    model = _RotatedReml(y, x, np.asarray(vals, dtype=np.float64), np.asarray(vecs, dtype=np.float64))
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
            "loglik": float(loglik), "method": "greml", "n": int(y.size), "converged": bool(res.success),
            "path": "low_rank" if model.n_perp else "full"}


METHODS = {"greml": greml, "he": he_regression}


def _covariate_matrix(covariates: pd.DataFrame) -> pd.DataFrame:
    """Numeric covariates; text/categorical columns become 0/1 indicators (first level dropped)."""
    return pd.get_dummies(covariates, drop_first=True, dtype=float).astype(float)


def h2_table(phenotypes: pd.DataFrame, k: np.ndarray | None, sample_ids: list[str], covariates: pd.DataFrame | None,
             method: str = "greml", z: np.ndarray | None = None) -> pd.DataFrame:
    """One row per trait (column of ``phenotypes``, indexed by sample id): trait h2 se method n ci_low ci_high.

    ``K`` rows follow ``sample_ids``; per trait, samples lacking the trait or any covariate are dropped.
    The CI is the Wald interval h2 +- 1.96 se. ``z``: the standardised genotypes of ``K = Z Z^T / m`` (rows
    as ``K``'s); GREML then takes the low-rank path (Lippert et al. 2011) for a trait whose n exceeds m. ``k`` may
    be None when ``z`` is given: a trait that needs ``K`` gets ``Z Z^T / m`` of its samples.
    """
    if method not in METHODS:
        raise DataError(f"unknown heritability method {method!r} (choose from {', '.join(METHODS)})")
    if k is None and z is None:
        raise DataError("h2_table needs the relationship matrix k or the standardised genotypes z")
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
        cov = None if covs is None else covs.to_numpy()[idx]
        low_rank = method == "greml" and z is not None and z.shape[1] < idx.size
        sub = None  # the low-rank path never forms the n x n K
        if not low_rank:
            sub = k[np.ix_(idx, idx)] if k is not None else z[idx] @ z[idx].T / z.shape[1]
        try:
            if method == "greml":
                key = ok.tobytes()
                if key not in eig_cache:
                    eig_cache.clear()
                    eig_cache[key] = low_rank_eig(z[idx]) if low_rank else np.linalg.eigh(sub)
                fit = greml(y, sub, cov, eig=eig_cache[key])
            else:
                fit = he_regression(y, sub, cov)
        except DataError as exc:
            raise DataError(f"trait {trait!r}: {exc}") from None
        rows.append({"trait": str(trait), "h2": fit["h2"], "se": fit["se"], "method": method, "n": fit["n"],
                     "ci_low": fit["h2"] - Z95 * fit["se"], "ci_high": fit["h2"] + Z95 * fit["se"]})
    return pd.DataFrame(rows, columns=["trait", "h2", "se", "method", "n", "ci_low", "ci_high"])
