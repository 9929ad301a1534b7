"""linear_gwas: equal to statsmodels OLS per (trait, variant), with covariates and missing data; error cases."""

from __future__ import annotations

import mpmath
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from biolatent.discover.genetics.gwas import GWAS_COLUMNS, genomic_inflation, linear_gwas, t_log10_p
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes


def _genotypes(n: int = 160, m: int = 30, missing: float = 0.0, seed: int = 0) -> Genotypes:
    rng = np.random.default_rng(seed)
    dosages = rng.binomial(2, rng.uniform(0.05, 0.5, size=m), size=(n, m)).astype(np.float32)
    dosages[rng.random((n, m)) < missing] = np.nan
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(1, m + 1) * 100, "id": [f"rs{j}" for j in range(m)],
                             "ref": "A", "alt": "G"})
    return Genotypes(dosages, [f"s{i}" for i in range(n)], variants)


def _traits(geno: Genotypes, n_traits: int = 3, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.nan_to_num(geno.dosages[:, :3].astype(float), nan=1.0)
    y = rng.normal(size=(geno.n_samples, n_traits)) + g @ rng.normal(size=(3, n_traits))
    return pd.DataFrame(y, index=geno.samples, columns=[f"t{i}" for i in range(n_traits)])


def _covariates(geno: Genotypes, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"pc1": rng.normal(size=geno.n_samples), "age": rng.uniform(20, 80, geno.n_samples),
                         "sex": rng.integers(0, 2, geno.n_samples)}, index=geno.samples)


def _assert_equals_statsmodels(table, geno, phen, cov, variants=None) -> None:
    for trait in phen.columns:
        y = phen[trait].to_numpy(float)
        for j in variants if variants is not None else range(geno.n_variants):
            g = geno.dosages[:, j].astype(float)
            keep = ~np.isnan(y) & ~np.isnan(g)
            x = g[keep, None] if cov is None else np.column_stack([cov.to_numpy(float)[keep], g[keep]])
            fit = sm.OLS(y[keep], sm.add_constant(x, has_constant="add")).fit()
            row = table[(table.TRAIT == trait) & (table.ID == f"rs{j}")].iloc[0]
            assert row.OBS_CT == keep.sum()
            np.testing.assert_allclose([row.BETA, row.SE, row.T_STAT, row.P],
                                       [fit.params[-1], fit.bse[-1], fit.tvalues[-1], fit.pvalues[-1]], rtol=1e-6)
            np.testing.assert_allclose(row.LOG10_P, -np.log10(fit.pvalues[-1]), rtol=1e-6)


def test_equals_statsmodels_with_covariates():
    geno = _genotypes()
    phen, cov = _traits(geno), _covariates(geno)
    table = linear_gwas(geno, phen, cov)
    assert list(table.columns) == GWAS_COLUMNS
    assert len(table) == 3 * geno.n_variants
    assert (table.A1 == table.ALT).all()
    _assert_equals_statsmodels(table, geno, phen, cov)


def test_equals_statsmodels_without_covariates_and_with_missing_data():
    geno = _genotypes(missing=0.08, seed=5)
    phen = _traits(geno, n_traits=4, seed=6)
    rng = np.random.default_rng(7)
    phen.iloc[rng.choice(geno.n_samples, 15, replace=False), 1] = np.nan  # two missingness patterns
    phen.iloc[rng.choice(geno.n_samples, 9, replace=False), 3] = np.nan
    cov = _covariates(geno)
    assert np.isnan(geno.dosages).any(axis=0).all()  # every variant takes the masked path
    _assert_equals_statsmodels(linear_gwas(geno, phen, cov, chunk_size=7), geno, phen, cov)
    _assert_equals_statsmodels(linear_gwas(geno, phen, None), geno, phen, None, variants=[0, 4, 11])


def test_multi_trait_equals_single_trait_and_chunking_is_invisible():
    geno = _genotypes(missing=0.03, seed=8)
    phen, cov = _traits(geno, n_traits=5, seed=9), _covariates(geno)
    phen.iloc[:12, 2] = np.nan
    full = linear_gwas(geno, phen, cov, chunk_size=2048)
    stat_cols = ["OBS_CT", "BETA", "SE", "T_STAT", "P", "LOG10_P"]
    for chunk in (1, 4, 13):
        pd.testing.assert_frame_equal(linear_gwas(geno, phen, cov, chunk_size=chunk)[stat_cols], full[stat_cols],
                                      rtol=1e-10, atol=0)
    for trait in phen.columns:
        single = linear_gwas(geno, phen[[trait]], cov)
        part = full[full.TRAIT == trait].reset_index(drop=True)
        pd.testing.assert_frame_equal(single[stat_cols], part[stat_cols], rtol=1e-10, atol=0)


def test_sample_matching_and_summary():
    geno = _genotypes()
    phen, cov = _traits(geno), _covariates(geno)
    phen = pd.concat([phen.iloc[10:], pd.DataFrame({"t0": [1.0], "t1": [2.0], "t2": [3.0]}, index=["extra"])])
    phen = phen.sample(frac=1.0, random_state=0)  # order must not matter
    cov.iloc[20, 0] = np.nan
    table = linear_gwas(geno, phen, cov)
    summary = table.attrs["summary"]
    assert summary["n_genotyped_unmatched"] == 10 and summary["n_phenotyped_unmatched"] == 1
    assert summary["n_missing_covariate"] == 1 and summary["n_samples"] == geno.n_samples - 11
    assert (table.OBS_CT == geno.n_samples - 11).all()
    keep = [s for i, s in enumerate(geno.samples) if i >= 10 and i != 20]
    sub = geno.subset(sample_index=np.array([geno.samples.index(s) for s in keep]))
    _assert_equals_statsmodels(table, sub, phen.reindex(keep), cov.reindex(keep), variants=[0, 7])


def test_no_common_ids_is_a_data_error():
    geno = _genotypes()
    phen = _traits(geno)
    phen.index = [f"x{i}" for i in range(len(phen))]
    with pytest.raises(DataError, match=r"no sample ids in common between genotypes \(e.g. 's0'\) and phenotypes"):
        linear_gwas(geno, phen, None)


def test_constant_trait_and_singular_covariates_are_data_errors():
    geno = _genotypes()
    phen, cov = _traits(geno), _covariates(geno)
    phen["flat"] = 3.0
    with pytest.raises(DataError, match="trait 'flat' is constant"):
        linear_gwas(geno, phen, cov)
    cov["age2"] = 2 * cov["age"] - cov["pc1"]
    with pytest.raises(DataError, match="singular") as info:
        linear_gwas(geno, phen.drop(columns="flat"), cov)
    assert "'age2'" in str(info.value) and "'pc1'" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"'const'.*'intercept'|'intercept'.*'const'"):
        linear_gwas(geno, phen.drop(columns="flat"), cov.drop(columns="age2").assign(const=1.0))
    with pytest.raises(DataError, match="trait 'bad' has non-numeric"):
        linear_gwas(geno, phen.drop(columns="flat").assign(bad="x"), None)


def test_monomorphic_and_all_missing_variants_get_nan_rows():
    geno = _genotypes(missing=0.02)
    geno.dosages[:, 2] = 1.0
    geno.dosages[:, 5] = np.nan
    geno.dosages[:, 8] = np.where(np.isnan(geno.dosages[:, 8]), np.nan, 2.0)
    phen = _traits(geno)
    table = linear_gwas(geno, phen, _covariates(geno))
    bad = table[table.ID.isin(["rs2", "rs5", "rs8"])]
    assert bad[["BETA", "SE", "T_STAT", "P", "LOG10_P"]].isna().all().all()
    assert (bad[bad.ID == "rs5"].OBS_CT == 0).all() and (bad[bad.ID == "rs2"].OBS_CT == geno.n_samples).all()
    assert table.attrs["summary"]["n_variants_untested"] == 3
    assert table.attrs["summary"]["n_results_untested"] == 9
    assert table.drop(bad.index)["BETA"].notna().all()


@pytest.mark.parametrize("missing", [0.0, 0.02])
def test_constant_fractional_dosages_are_monomorphic(missing):
    """A column of one non-integer dosage (VCF DS values) is untested with and without missing calls: its
    float64 mean is that value exactly, so the centred column is exactly 0 (no max/min pass needed)."""
    geno = _genotypes(missing=missing)
    for col, value in ((1, 0.37), (4, 1.9999), (7, 1e-3)):
        called = ~np.isnan(geno.dosages[:, col])
        geno.dosages[:, col] = np.where(called, np.float32(value), np.nan)
    geno.dosages[:, 3] = np.float32(0.37)
    geno.dosages[0, 3] = np.float32(0.38)  # one different sample: polymorphic, tested
    table = linear_gwas(geno, _traits(geno), _covariates(geno))
    flat = table[table.ID.isin(["rs1", "rs4", "rs7"])]
    assert flat[["BETA", "SE", "T_STAT", "P"]].isna().all().all()
    assert table.drop(flat.index)["BETA"].notna().all()


def test_log10_p_is_accurate_below_double_range():
    t = np.array([3.0, 40.0, 300.0, 1e4, 45.0, 2.0])
    df = np.array([50.0, 100.0, 100.0, 50.0, 1e5, 1e6])
    got = t_log10_p(t, df)
    for ti, di, gi in zip(t, df, got, strict=True):
        x = mpmath.mpf(di) / (di + mpmath.mpf(ti) ** 2)
        exact = -mpmath.log10(mpmath.betainc(di / 2, 0.5, 0, x, regularized=True))
        assert gi == pytest.approx(float(exact), rel=1e-10)
    assert got[4] > 400 and stats.t.sf(45.0, 1e5) == 0  # the plain p-value underflows, LOG10_P does not


def test_genomic_inflation_matches_chi2_median():
    rng = np.random.default_rng(3)
    z = rng.normal(size=20001) * 1.1
    p = 2 * stats.norm.sf(np.abs(z))
    assert genomic_inflation(p) == pytest.approx(np.median(z**2) / 0.454936423119572, rel=1e-6)
    assert genomic_inflation(np.r_[p, np.nan]) == pytest.approx(genomic_inflation(p))
    assert np.isnan(genomic_inflation(np.array([np.nan])))
    for n in (1, 2, 10, 1001):  # odd and even sizes: the statistics of the two middle p-values are averaged
        values = rng.random(n) ** 1.5
        direct = np.median(stats.chi2.isf(values, 1)) / stats.chi2.ppf(0.5, 1)
        assert genomic_inflation(values) == pytest.approx(direct, rel=1e-12)


def test_gwas_of_genotypes_on_disk_block_by_block_equals_in_memory(tmp_path):
    """linear_gwas over a .bed read block by block (blocks of 7 variants, the next read while one is
    regressed; a sample subset; missing calls and phenotypes) gives the table of the in-memory genotypes."""
    from biolatent.io.genotypes import read_genotypes, write_plink

    geno = _genotypes(n=161, m=30, missing=0.05)
    write_plink(geno, tmp_path / "g")
    phen = _traits(geno).iloc[5:]  # the first samples are not phenotyped: a row subset of every block
    phen.iloc[::9, 1] = np.nan
    cov = _covariates(geno)
    on_disk = read_genotypes(tmp_path / "g", in_memory=False)
    expected = linear_gwas(read_genotypes(tmp_path / "g"), phen, cov)
    for size in (7, 1, None):
        table = linear_gwas(on_disk, phen, cov, chunk_size=size)
        pd.testing.assert_frame_equal(table, expected)
