"""What the Hail engine tests share: a toy PLINK file set with known traits, and the check of a Hail GWAS
table against statsmodels OLS (an independent computation) on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.discover.genetics.gwas import GWAS_COLUMNS


@dataclass
class ToyPlink:
    prefix: Path
    dosages: np.ndarray
    phenotypes: pd.DataFrame
    covariates: pd.DataFrame


def write_toy_plink(folder: Path, n: int = 150, m: int = 30) -> ToyPlink:
    """``n`` samples x ``m`` variants; trait Z0 carries rs4 (beta 0.6), Z1 is noise with one missing value."""
    from bed_reader import to_bed

    rng = np.random.default_rng(0)
    dosages = rng.binomial(2, rng.uniform(0.1, 0.5, size=m), size=(n, m)).astype(np.float32)
    ids = [f"s{i}" for i in range(n)]
    prefix = folder / "toy"
    to_bed(f"{prefix}.bed", dosages, properties={
        "iid": ids, "fid": ids, "sid": [f"rs{j}" for j in range(m)], "chromosome": ["1"] * m,
        "bp_position": np.arange(1, m + 1) * 1000, "allele_1": ["A"] * m, "allele_2": ["G"] * m})
    phenotypes = pd.DataFrame({"Z0": rng.normal(size=n) + 0.6 * dosages[:, 4], "Z1": rng.normal(size=n)}, index=ids)
    phenotypes.iloc[7, 1] = np.nan
    covariates = pd.DataFrame({"PC1": rng.normal(size=n), "sex": rng.integers(0, 2, size=n)}, index=ids)
    return ToyPlink(prefix, dosages, phenotypes, covariates)


def assert_equals_ols(table: pd.DataFrame, toy: ToyPlink, columns: list[str] = GWAS_COLUMNS) -> None:
    """``columns`` (default: every column of the numpy engine); beta, se and p of three variants x both traits
    equal statsmodels OLS (rtol 1e-6) with the trait's own missing sample dropped; rs4 leads Z0."""
    import statsmodels.api as sm

    assert list(table.columns) == columns
    assert len(table) == 2 * toy.dosages.shape[1]
    for trait in ("Z0", "Z1"):
        y = toy.phenotypes[trait].to_numpy()
        keep = ~np.isnan(y)
        for j in (0, 4, 17):
            x = sm.add_constant(np.column_stack([toy.dosages[keep, j], toy.covariates.to_numpy()[keep]]))
            fit = sm.OLS(y[keep], x).fit()
            row = table[(table.TRAIT == trait) & (table.ID == f"rs{j}")].iloc[0]
            assert row.OBS_CT == keep.sum()
            assert row.A1 == "A"  # the counted allele: PLINK's A1
            np.testing.assert_allclose([row.BETA, row.SE, row.P], [fit.params[1], fit.bse[1], fit.pvalues[1]],
                                       rtol=1e-6)
    lead = table[table.TRAIT == "Z0"].sort_values("P").iloc[0]
    assert lead.ID == "rs4"


def assert_engines_agree(folder: Path, spark_master: str | None = None) -> dict:
    """Through ``gwas_scan`` with either engine (hail on ``spark_master``): same QC (missing calls, samples
    without calls), same PCs up to sign, same betas, standard errors and p-values. Returns the hail info."""
    from biolatent.discover.genetics.engines import gwas_scan
    from biolatent.discover.genetics.qc import QCConfig
    from biolatent.discover.genetics.simulate import simulate_genotypes, simulate_traits
    from biolatent.io.genotypes import write_plink

    geno = simulate_genotypes(200, sequence_length=300_000, min_maf=0.0, seed=3)
    rng = np.random.default_rng(4)
    dosages = geno.dosages.copy()
    dosages[rng.random(200) < 0.3, 5] = np.nan  # 30% missing: removed by --geno 0.05
    dosages[rng.random(200) < 0.3, 9] = np.nan
    dosages[:3, :] = np.nan  # three samples with no calls: removed by --mind
    geno = type(geno)(dosages, geno.samples, geno.variants)
    prefix = write_plink(geno, folder / "sim")
    phenotypes, _ = simulate_traits(geno.subset(sample_index=np.arange(3, 200)), h2=[0.5, 0.2], n_causal=5,
                                    n_traits=2, seed=5)
    phenotypes.iloc[10, 1] = np.nan
    covariates = pd.DataFrame({"age": rng.normal(50, 10, 200)}, index=geno.samples)
    qc = QCConfig(min_maf=0.05, max_variant_missing=0.05, min_hwe_p=1e-6, min_sample_call_rate=0.95)
    ours, ours_geno, ours_info = gwas_scan(prefix, phenotypes, covariates, engine="numpy", qc=qc, n_pcs=2,
                                           say=lambda _: None)
    hail, hail_geno, hail_info = gwas_scan(prefix, phenotypes, covariates, engine="hail", qc=qc, n_pcs=2,
                                           spark_master=spark_master, say=lambda _: None)
    assert ours_info["qc"]["n_variants_after"] == hail_info["qc"]["n_variants_after"] == ours_geno.n_variants
    assert ours_info["qc"]["samples_removed"] == hail_info["qc"]["samples_removed"] == {"call_rate": 3}
    assert ours_info["qc"]["variants_removed"] == hail_info["qc"]["variants_removed"]
    assert ours_geno.samples == hail_geno.samples
    merged = ours.merge(hail, on=["TRAIT", "ID"], suffixes=("", "_hail"), validate="one_to_one")
    assert len(merged) == len(ours) == len(hail) and list(merged.columns[:13]) == GWAS_COLUMNS
    np.testing.assert_array_equal(merged.OBS_CT, merged.OBS_CT_hail)
    np.testing.assert_allclose(merged.BETA, merged.BETA_hail, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(merged.SE, merged.SE_hail, rtol=1e-5)
    np.testing.assert_allclose(merged.LOG10_P, merged.LOG10_P_hail, rtol=1e-5)
    return hail_info
