"""The Hail (Spark) GWAS engine: same regression as an independent OLS, run through the Hail environment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.hail_engine import GWAS_COLUMNS, hail_available, hail_gwas

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plink_files(tmp_path_factory):
    from bed_reader import to_bed

    rng = np.random.default_rng(0)
    n, m = 150, 30
    dosages = rng.binomial(2, rng.uniform(0.1, 0.5, size=m), size=(n, m)).astype(np.float32)
    ids = [f"s{i}" for i in range(n)]
    prefix = tmp_path_factory.mktemp("plink") / "toy"
    to_bed(f"{prefix}.bed", dosages, properties={
        "iid": ids, "fid": ids, "sid": [f"rs{j}" for j in range(m)], "chromosome": ["1"] * m,
        "bp_position": np.arange(1, m + 1) * 1000, "allele_1": ["A"] * m, "allele_2": ["G"] * m})
    phenotypes = pd.DataFrame({"Z0": rng.normal(size=n) + 0.6 * dosages[:, 4], "Z1": rng.normal(size=n)}, index=ids)
    phenotypes.iloc[7, 1] = np.nan
    covariates = pd.DataFrame({"PC1": rng.normal(size=n), "sex": rng.integers(0, 2, size=n)}, index=ids)
    return prefix, dosages, phenotypes, covariates


def test_hail_engine_equals_ols(plink_files):
    reason = hail_available()
    if reason:
        pytest.skip(reason)
    import statsmodels.api as sm

    prefix, dosages, phenotypes, covariates = plink_files
    table = hail_gwas(prefix, phenotypes, covariates)
    assert list(table.columns) == GWAS_COLUMNS
    assert len(table) == 2 * dosages.shape[1]
    for trait in ("Z0", "Z1"):
        y = phenotypes[trait].to_numpy()
        keep = ~np.isnan(y)
        for j in (0, 4, 17):
            x = sm.add_constant(np.column_stack([dosages[keep, j], covariates.to_numpy()[keep]]))
            fit = sm.OLS(y[keep], x).fit()
            row = table[(table.TRAIT == trait) & (table.ID == f"rs{j}")].iloc[0]
            assert row.OBS_CT == keep.sum()
            assert row.A1 == "A"  # the counted allele: PLINK's A1
            np.testing.assert_allclose([row.BETA, row.SE, row.P], [fit.params[1], fit.bse[1], fit.pvalues[1]],
                                       rtol=1e-6)
    lead = table[table.TRAIT == "Z0"].sort_values("P").iloc[0]
    assert lead.ID == "rs4"
