"""clump: plink-style lead variants on the in-memory genotypes, checked against a hand-built LD structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.clump import LEAD_COLUMNS, clump, dosage_r2
from biolatent.discover.genetics.gwas import linear_gwas
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes


def _ld_blocks(n: int = 400, seed: int = 0) -> tuple[Genotypes, pd.DataFrame]:
    """Two LD blocks on chr1 (1.00-1.01 Mb, 5 Mb) and one on chr2, each: a causal variant + 3 noisy copies."""
    rng = np.random.default_rng(seed)
    cols, rows = [], []
    for chrom, start in (("1", 1_000_000), ("1", 5_000_000), ("2", 1_000_000)):
        base = rng.binomial(2, 0.3, n).astype(float)
        for k in range(4):
            copy = base.copy()
            flip = rng.random(n) < 0.05 * k  # copies of decreasing LD with the causal variant
            copy[flip] = rng.binomial(2, 0.3, flip.sum())
            cols.append(copy)
            rows.append((chrom, start + 1000 * k, f"{chrom}_{start}_{k}"))
    for j in range(20):  # unlinked noise variants far from the blocks
        cols.append(rng.binomial(2, 0.4, n).astype(float))
        rows.append(("3", 1_000_000 * (j + 1), f"noise{j}"))
    dosages = np.column_stack(cols).astype(np.float32)
    variants = pd.DataFrame(rows, columns=["chrom", "pos", "id"]).assign(ref="A", alt="G")
    geno = Genotypes(dosages, [f"s{i}" for i in range(n)], variants)
    y = 0.8 * dosages[:, 0] + 0.6 * dosages[:, 4] + 0.5 * dosages[:, 8] + rng.normal(size=n)
    y2 = rng.normal(size=n)
    return geno, pd.DataFrame({"y": y, "null": y2}, index=geno.samples)


def test_dosage_r2_equals_pairwise_complete_correlation():
    rng = np.random.default_rng(1)
    x = rng.binomial(2, 0.3, 200).astype(float)
    others = np.column_stack([x + rng.normal(0, s, 200) for s in (0.1, 1.0, 3.0)])
    others[rng.random(others.shape) < 0.1] = np.nan
    x[:5] = np.nan
    got = dosage_r2(x, others)
    for c in range(3):
        ok = ~np.isnan(x) & ~np.isnan(others[:, c])
        assert got[c] == pytest.approx(np.corrcoef(x[ok], others[ok, c])[0, 1] ** 2, rel=1e-10)


def test_clump_one_lead_per_ld_block():
    geno, phen = _ld_blocks()
    table = linear_gwas(geno, phen)
    leads = clump(table, geno)
    assert list(leads.columns) == LEAD_COLUMNS
    assert set(leads.TRAIT) == {"y"}  # the null trait has no hit at 5e-8
    assert sorted(leads.ID) == ["1_1000000_0", "1_5000000_0", "2_1000000_0"]
    for lead in leads.itertuples():
        block = table[(table.TRAIT == "y") & table.ID.str.startswith(lead.ID[:-1])]
        assert lead.LOG10_P == block.LOG10_P.max()
        members = set(block.ID[(block.P < 1e-2) & (block.ID != lead.ID)])
        assert set(lead.SP2.split(",")) == members and lead.TOTAL == len(members)


def test_clump_window_and_r2_threshold():
    geno, phen = _ld_blocks()
    table = linear_gwas(geno, phen)
    narrow = clump(table, geno, kb=1.5)  # only the copy 1 kb away is within the window
    assert set(narrow.TOTAL) == {1}
    strict = clump(table, geno, r2=0.99)  # nothing is that tightly linked: every significant copy leads
    assert len(strict) == int((table[table.TRAIT == "y"].P < 5e-8).sum())
    assert (strict.TOTAL == 0).all() and (strict.SP2 == "NONE").all()
    with pytest.raises(DataError, match="p1 <= p2"):
        clump(table, geno, p1=0.1, p2=0.01)


def test_dosage_r2_without_missing_calls_equals_correlation():
    """The complete-data path (products with the target column) gives the same r^2; a constant column 0."""
    rng = np.random.default_rng(2)
    x = rng.binomial(2, 0.3, 300).astype(float)
    others = np.column_stack([x + rng.normal(0, s, 300) for s in (0.1, 1.0, 3.0)] + [np.ones(300)])
    got = dosage_r2(x, others)
    for c in range(3):
        assert got[c] == pytest.approx(np.corrcoef(x, others[:, c])[0, 1] ** 2, rel=1e-10)
    assert got[3] == 0.0
    with_gap = others[:, :3].copy()
    with_gap[0, 0] = np.nan  # the pairwise-complete path: the other columns as on the complete data
    np.testing.assert_allclose(dosage_r2(x, with_gap)[1:], got[1:3], rtol=1e-10)
