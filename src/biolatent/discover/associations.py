"""Which metadata go with which clusters: one test per column, FDR across all of them, and a subtype table.

- categorical column: Pearson chi-square test of independence of cluster x level (no continuity
  correction), effect = Cramér's V = sqrt(chi2 / (n (min(r, c) − 1))) (Cramér 1946);
- numeric column (and a polygenic score): Kruskal-Wallis H test across clusters (Kruskal & Wallis 1952),
  effect = epsilon² = H / ((n² − 1) / (n + 1)) (Tomczak & Tomczak 2014);
- q-values: Benjamini & Hochberg 1995 step-up FDR over every test of the table.

Samples missing a column's value are left out of that column's test only. Columns are chosen as the
report's UMAP chooses them (``biolatent.discover.umap_plot.plottable_columns``: no ids, no constants).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from biolatent.discover.umap_plot import plottable_columns
from biolatent.errors import DataError

TABLE_COLUMNS = ["column", "test", "statistic", "p", "q", "effect", "effect_measure", "n", "dof"]


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH q-values ``min_{j>=i} m p_(j) / j`` (capped at 1), in input order; NaN p-values stay NaN, not counted."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    order = np.argsort(p[ok], kind="mergesort")
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q_ok = np.empty(m)
    q_ok[order] = np.minimum(ranked, 1.0)
    q[ok] = q_ok
    return q


def _aligned_labels(labels: np.ndarray, obs: pd.DataFrame) -> pd.Series:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(obs):
        raise DataError(f"{len(labels)} cluster labels for {len(obs)} samples")
    return pd.Series(labels, index=obs.index, name="cluster")


def chi_square_test(labels: pd.Series, values: pd.Series) -> dict[str, Any] | None:
    """Chi-square test of independence of clusters and levels; None when the table is not at least 2 x 2."""
    ok = values.notna().to_numpy()
    table = pd.crosstab(labels[ok].to_numpy(), values[ok].astype(str).to_numpy())
    if min(table.shape) < 2:
        return None
    chi2, p, dof, _ = stats.chi2_contingency(table.to_numpy(), correction=False)
    n = int(table.to_numpy().sum())
    v = float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))
    return {"test": "chi2", "statistic": float(chi2), "p": float(p), "effect": v, "effect_measure": "cramers_v",
            "n": n, "dof": int(dof)}


def kruskal_test(labels: pd.Series, values: pd.Series) -> dict[str, Any] | None:
    """Kruskal-Wallis across clusters with data; None with fewer than 2 such clusters or all values tied."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(numbers)
    groups = [numbers[ok & (labels.to_numpy() == c)] for c in np.unique(labels.to_numpy())]
    groups = [g for g in groups if g.size]
    if len(groups) < 2 or np.ptp(numbers[ok]) == 0:
        return None
    h, p = stats.kruskal(*groups)
    n = int(ok.sum())
    return {"test": "kruskal", "statistic": float(h), "p": float(p), "effect": float(h * (n + 1) / (n**2 - 1)),
            "effect_measure": "epsilon_squared", "n": n, "dof": len(groups) - 1}


def _polygenic(obs: pd.DataFrame, score: str | pd.Series) -> tuple[str, pd.Series]:
    if isinstance(score, str):
        if score not in obs.columns:
            raise DataError(f"polygenic score column {score!r} is not in the metadata ({', '.join(obs.columns)})")
        name, values = score, obs[score]
    else:
        name = str(score.name) if score.name is not None else "polygenic_score"
        values = score.copy()
        values.index = values.index.map(str)
        if values.index.has_duplicates:
            raise DataError(f"polygenic score {name!r} has duplicated sample ids")
        values = values.reindex(obs.index.map(str))
        values.index = obs.index
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().sum() != values.notna().sum():
        raise DataError(f"polygenic score {name!r} has non-numeric values")
    if numbers.notna().sum() < 3:
        raise DataError(f"polygenic score {name!r} has fewer than 3 values for the clustered samples "
                        f"(do its sample ids match, e.g. {str(obs.index[0])!r}?)")
    return name, numbers


def cluster_associations(
    labels: np.ndarray, obs: pd.DataFrame, *, polygenic_score: str | pd.Series | None = None
) -> pd.DataFrame:
    """One row per tested column (``TABLE_COLUMNS``), sorted by p; columns that cannot be tested are listed
    in ``attrs["skipped"]``. ``polygenic_score``: an ``obs`` column name or a Series indexed by sample id,
    always tested as numeric."""
    series = _aligned_labels(labels, obs)
    planned: list[tuple[str, str, pd.Series]] = []
    pgs_name = None
    if polygenic_score is not None:
        pgs_name, pgs_values = _polygenic(obs, polygenic_score)
        planned.append((pgs_name, "numeric", pgs_values))
    planned += [(c, kind, obs[c]) for c, kind in plottable_columns(obs) if c != pgs_name]
    rows, skipped = [], {}
    for column, kind, values in planned:
        result = chi_square_test(series, values) if kind == "categorical" else kruskal_test(series, values)
        if result is None:
            skipped[column] = "fewer than 2 clusters or levels with data"
        else:
            rows.append({"column": column, **result})
    table = pd.DataFrame(rows, columns=[c for c in TABLE_COLUMNS if c != "q"])
    table["q"] = benjamini_hochberg(table["p"].to_numpy(dtype=float))
    table = table[TABLE_COLUMNS].sort_values(["p", "column"], kind="mergesort").reset_index(drop=True)
    table.attrs["skipped"] = skipped
    return table


def subtypes_table(labels: np.ndarray, obs: pd.DataFrame) -> pd.DataFrame:
    """Per cluster: ``n``, ``fraction`` and for each column ``<col>_top`` + ``<col>_top_share`` (most common
    level and its share among the cluster's non-missing values) or ``<col>_median`` (numeric)."""
    series = _aligned_labels(labels, obs)
    columns = plottable_columns(obs)
    rows = []
    for cluster in np.unique(series.to_numpy()):
        mask = (series == cluster).to_numpy()
        row: dict[str, Any] = {"cluster": cluster, "n": int(mask.sum()), "fraction": float(mask.mean())}
        for column, kind in columns:
            values = obs[column][mask].dropna()
            if kind == "numeric":
                row[f"{column}_median"] = float(values.median()) if len(values) else np.nan
            elif len(values):
                counts = values.astype(str).value_counts()
                row[f"{column}_top"] = str(counts.index[0])
                row[f"{column}_top_share"] = float(counts.iloc[0] / counts.sum())
            else:
                row[f"{column}_top"], row[f"{column}_top_share"] = "", np.nan
        rows.append(row)
    return pd.DataFrame(rows)
