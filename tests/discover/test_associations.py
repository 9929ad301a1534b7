"""Cluster-metadata associations against scipy / statsmodels computed directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats.contingency import association
from statsmodels.stats.multitest import multipletests

from biolatent.discover.associations import benjamini_hochberg, cluster_associations, subtypes_table
from biolatent.errors import DataError


def test_benjamini_hochberg_matches_statsmodels():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 1e-3, size=10), [0.01, 0.01, 1.0, 0.0]])
    rng.shuffle(p)
    np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)


def test_benjamini_hochberg_leaves_missing_p_out():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    q = benjamini_hochberg(p)
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3]], multipletests(p[[0, 2, 3]], method="fdr_bh")[1])
    assert benjamini_hochberg(np.array([])).shape == (0,)


@pytest.fixture
def data() -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 240
    labels = rng.integers(0, 3, n)
    tissue = np.where(rng.uniform(size=n) < 0.7, np.array(["liver", "lung", "skin"])[labels], "lung")
    obs = pd.DataFrame({
        "tissue": pd.Categorical(tissue),
        "sex": rng.choice(["F", "M"], n),
        "age": rng.normal(50, 10, n) + 5 * labels,
        "score": rng.normal(size=n),
        "sample_number": np.arange(n),  # id-like: never tested
        "study": "one",  # constant: never tested
    }, index=[f"s{i}" for i in range(n)])
    obs.loc[obs.index[:15], "age"] = np.nan
    obs.loc[obs.index[5:20], "sex"] = None
    return labels, obs


def test_categorical_columns_use_chi_square_and_cramers_v(data):
    labels, obs = data
    table = cluster_associations(labels, obs).set_index("column")
    for column in ("tissue", "sex"):
        ok = obs[column].notna().to_numpy()
        crosstab = pd.crosstab(labels[ok], obs[column][ok].to_numpy()).to_numpy()
        chi2, p, dof, _ = stats.chi2_contingency(crosstab, correction=False)
        row = table.loc[column]
        assert row["test"] == "chi2" and row["n"] == ok.sum() and row["dof"] == dof
        assert row["statistic"] == pytest.approx(chi2, rel=1e-12) and row["p"] == pytest.approx(p, rel=1e-9)
        assert row["effect"] == pytest.approx(association(crosstab, method="cramer"), rel=1e-12)
    assert table.loc["tissue", "q"] < 1e-20 and table.loc["tissue", "effect"] > 0.5


def test_numeric_columns_use_kruskal_wallis_and_epsilon_squared(data):
    labels, obs = data
    table = cluster_associations(labels, obs).set_index("column")
    for column in ("age", "score"):
        ok = obs[column].notna().to_numpy()
        h, p = stats.kruskal(*[obs[column].to_numpy()[ok & (labels == c)] for c in range(3)])
        n = ok.sum()
        row = table.loc[column]
        assert row["test"] == "kruskal" and row["n"] == n
        assert row["statistic"] == pytest.approx(h, rel=1e-12) and row["p"] == pytest.approx(p, rel=1e-9)
        assert row["effect"] == pytest.approx(h / ((n**2 - 1) / (n + 1)), rel=1e-12)
    assert table.loc["age", "p"] < 1e-3 and table.loc["score", "p"] > 0.01


def test_table_has_fdr_over_all_tests_and_skips_ids_and_constants(data):
    labels, obs = data
    table = cluster_associations(labels, obs)
    assert set(table["column"]) == {"tissue", "sex", "age", "score"}
    assert list(table.columns[:6]) == ["column", "test", "statistic", "p", "q", "effect"]
    np.testing.assert_allclose(table["q"], multipletests(table["p"], method="fdr_bh")[1], rtol=1e-12)
    assert table["p"].is_monotonic_increasing


def test_polygenic_score_is_tested_as_numeric_from_a_column_or_a_series(data):
    labels, obs = data
    rng = np.random.default_rng(1)
    pgs = pd.Series(rng.normal(size=len(obs)) + labels, index=obs.index, name="pgs_height")
    h, p = stats.kruskal(*[pgs.to_numpy()[labels == c] for c in range(3)])
    shuffled = pgs.sample(frac=1.0, random_state=0)
    from_series = cluster_associations(labels, obs, polygenic_score=shuffled).set_index("column")
    assert from_series.loc["pgs_height", "statistic"] == pytest.approx(h, rel=1e-12)
    assert from_series.loc["pgs_height", "p"] == pytest.approx(p, rel=1e-9)
    from_column = cluster_associations(labels, obs, polygenic_score="sample_number").set_index("column")
    assert from_column.loc["sample_number", "test"] == "kruskal"  # id-like column forced in as a score
    assert len(from_column) == 5
    with pytest.raises(DataError, match="not in the metadata"):
        cluster_associations(labels, obs, polygenic_score="prs")
    with pytest.raises(DataError, match="fewer than 3 values"):
        cluster_associations(labels, obs, polygenic_score=pd.Series([1.0, 2.0], index=["x", "y"]))


def test_single_cluster_tests_nothing_and_lists_the_skipped(data):
    _, obs = data
    table = cluster_associations(np.zeros(len(obs), dtype=int), obs)
    assert table.empty and set(table.attrs["skipped"]) == {"tissue", "sex", "age", "score"}
    with pytest.raises(DataError, match="3 cluster labels for 240"):
        cluster_associations(np.zeros(3), obs)


def test_subtypes_table_summarises_each_cluster(data):
    labels, obs = data
    table = subtypes_table(labels, obs).set_index("cluster")
    assert table["n"].tolist() == np.bincount(labels).tolist()
    assert table["fraction"].sum() == pytest.approx(1.0)
    grouped = obs.groupby(labels)
    np.testing.assert_allclose(table["age_median"], grouped["age"].median())
    for c in range(3):
        counts = obs["tissue"][labels == c].value_counts()
        assert table.loc[c, "tissue_top"] == counts.idxmax()
        assert table.loc[c, "tissue_top_share"] == pytest.approx(counts.max() / counts.sum())
        sex = obs["sex"][labels == c].dropna()
        assert table.loc[c, "sex_top_share"] == pytest.approx(sex.value_counts().max() / len(sex))
    assert "sample_number_median" not in table.columns and "study_top" not in table.columns
