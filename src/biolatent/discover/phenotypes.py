"""Latent phenotypes for GWAS: embeddings -> decorrelated, covariate-adjusted, rank-normalised traits.

Pipeline (each step optional), in this order so that the output keeps the properties of every step:

1. residualisation on covariates: ordinary least squares with an intercept, categorical covariates one-hot
   coded (first level dropped); samples with a missing covariate are dropped and counted;
2. decorrelation of the residual embedding dimensions: PCA (Pearson 1901; Hotelling 1933) gives uncorrelated
   scores ordered by variance, FastICA (Hyvärinen & Oja 2000) maximally non-Gaussian independent components;
   both are linear in the residuals, so they stay orthogonal to the covariates;
3. rank-based inverse normal transform (Blom 1958, offset c = 3/8; ties get their average rank), as
   recommended for GWAS of non-normal traits (Beasley, Erickson & Allison 2009; McCaw et al. 2020).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from biolatent.errors import DataError

BLOM_OFFSET = 3.0 / 8.0


def inverse_normal_transform(values: np.ndarray, c: float = BLOM_OFFSET) -> np.ndarray:
    """Rank-based INT of each column: ``Φ⁻¹((rank − c) / (n − 2c + 1))``, average ranks for ties, NaN kept."""
    x = np.asarray(values, dtype=np.float64)
    flat = x.ndim == 1
    x = x.reshape(len(x), -1)
    out = np.full_like(x, np.nan)
    for j in range(x.shape[1]):
        ok = np.isfinite(x[:, j])
        n = int(ok.sum())
        if n:
            ranks = stats.rankdata(x[ok, j], method="average")
            out[ok, j] = stats.norm.ppf((ranks - c) / (n - 2 * c + 1))
    return out[:, 0] if flat else out


def covariate_design(covariates: pd.DataFrame) -> np.ndarray:
    """Intercept + numeric covariates + one-hot categorical covariates (first level dropped), float64."""
    blocks = [np.ones((len(covariates), 1))]
    for column in covariates.columns:
        values = covariates[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            blocks.append(values.to_numpy(dtype=np.float64).reshape(-1, 1))
        else:
            dummies = pd.get_dummies(values.astype(str), prefix=str(column), drop_first=True, dtype=np.float64)
            blocks.append(dummies.to_numpy())
    return np.hstack(blocks)


def residualise(y: np.ndarray, covariates: pd.DataFrame) -> np.ndarray:
    """OLS residuals of every column of ``y`` on ``covariate_design(covariates)`` (least squares, any rank)."""
    design = covariate_design(covariates)
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ beta


def _align_covariates(ids: list[str], covariates: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Covariates in the order of ``ids`` and a mask of the samples with every covariate present."""
    table = covariates.copy()
    table.index = table.index.map(str)
    if table.index.has_duplicates:
        raise DataError(f"covariate table has duplicated sample ids, e.g. {table.index[table.index.duplicated()][0]!r}")
    table = table.reindex(ids)
    keep = table.notna().all(axis=1).to_numpy()
    if not keep.any():
        raise DataError(f"no sample has every covariate ({', '.join(map(str, covariates.columns))}); "
                        f"e.g. sample {ids[0]!r}, covariate ids e.g. {str(covariates.index[0])!r}")
    return table, keep


def _decorrelate(x: np.ndarray, how: str, n_components: int | None, seed: int) -> tuple[np.ndarray, dict]:
    if how == "none":
        if n_components is not None:
            raise DataError("n_components needs decorrelate='pca' or 'ica'")
        return x, {}
    limit = min(x.shape)
    k = limit if n_components is None else int(n_components)
    if not 1 <= k <= limit:
        raise DataError(f"n_components must be between 1 and {limit} (samples x dimensions), got {n_components}")
    if how == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=k, svd_solver="full")
        scores = pca.fit_transform(x)
        return scores, {"explained_variance_ratio": pca.explained_variance_ratio_.tolist()}
    if how == "ica":
        import warnings

        from sklearn.decomposition import FastICA

        ica = FastICA(n_components=k, whiten="unit-variance", random_state=seed, max_iter=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings: components are still usable
            sources = ica.fit_transform(x)
        skew = stats.skew(sources, axis=0)
        sources = sources * np.where(skew < 0, -1.0, 1.0)  # sign convention: positive skew
        return sources, {"ica_iterations": int(ica.n_iter_)}
    raise DataError(f"unknown decorrelation {how!r} (choose none, pca or ica)")


def latent_phenotypes(
    embeddings: np.ndarray,
    sample_ids: Sequence[Any],
    *,
    decorrelate: Literal["none", "pca", "ica"] = "pca",
    n_components: int | None = None,
    covariates: pd.DataFrame | None = None,
    inverse_normal: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Phenotype table (index ``id`` = sample ids as text, columns ``Z0..Zk``) ready for GWAS.

    ``attrs`` records ``n_input``, ``n_dropped_missing_covariates`` and the decorrelation details.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    ids = [str(s) for s in sample_ids]
    if x.ndim != 2 or x.shape[0] < 3 or x.shape[1] < 1:
        raise DataError(f"embeddings must be a (samples, dimensions) array with 3+ samples, got shape {x.shape}")
    if len(ids) != x.shape[0]:
        raise DataError(f"{len(ids)} sample ids for {x.shape[0]} embedded samples")
    if len(set(ids)) != len(ids):
        dup = pd.Index(ids)[pd.Index(ids).duplicated()][0]
        raise DataError(f"duplicated sample id {dup!r} in the embeddings")
    if not np.isfinite(x).all():
        raise DataError("embeddings hold NaN or inf values")
    n_dropped = 0
    if covariates is not None and covariates.shape[1] > 0:
        table, keep = _align_covariates(ids, covariates)
        n_dropped = int((~keep).sum())
        x, ids, table = x[keep], [s for s, k in zip(ids, keep, strict=True) if k], table[keep]
        if x.shape[0] < 3:
            raise DataError(f"only {x.shape[0]} samples have every covariate: too few for phenotypes")
        x = residualise(x, table)
    values, details = _decorrelate(x, decorrelate, n_components, seed)
    if inverse_normal:
        values = inverse_normal_transform(values)
    frame = pd.DataFrame(values, index=pd.Index(ids, name="id"),
                         columns=[f"Z{j}" for j in range(values.shape[1])])
    frame.attrs = {"n_input": len(sample_ids), "n_dropped_missing_covariates": n_dropped,
                   "decorrelate": decorrelate, "inverse_normal": inverse_normal, **details}
    return frame
