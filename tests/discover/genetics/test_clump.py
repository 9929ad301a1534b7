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


def _reference_clump(table: pd.DataFrame, geno: Genotypes, p1: float, p2: float, r2: float, kb: float) -> list:
    """plink's greedy clumping written out directly: (trait, lead id, sorted member ids) per clump, r^2 from
    np.corrcoef of the two dosage columns."""
    position = {v: i for i, v in enumerate(geno.variants["id"])}
    dosages = np.asarray(geno.dosages, float)
    out = []
    for trait, part in table.groupby("TRAIT", sort=False, observed=True):
        part = part[part.P < p2].sort_values("LOG10_P", ascending=False, kind="stable")
        if not (part.P < p1).any():
            continue
        claimed: set[str] = set()
        for lead in part[part.P < p1].itertuples():
            if lead.ID in claimed:
                continue
            claimed.add(lead.ID)
            members = []
            for other in part.itertuples():
                if other.ID in claimed or other[1] != lead[1] or abs(other.POS - lead.POS) > kb * 1000:
                    continue
                r = np.corrcoef(dosages[:, position[lead.ID]], dosages[:, position[other.ID]])[0, 1]
                if r * r > r2:
                    members.append(other.ID)
            claimed.update(members)
            out.append((trait, lead.ID, sorted(members)))
    return out


@pytest.mark.parametrize("block", [None, 3])
def test_clump_equals_greedy_reference_over_traits_sharing_leads(monkeypatch, block):
    """Several traits with the same causal variants (the r^2 of a shared lead is computed once for all of
    them), a window cutting blocks in two, and partner reads split into blocks of 3 columns."""
    import biolatent.discover.genetics.clump as clump_module

    if block is not None:
        monkeypatch.setattr(clump_module, "BLOCK_ELEMENTS", 400 * block)
    geno, phen = _ld_blocks()
    rng = np.random.default_rng(5)
    dosages = np.asarray(geno.dosages, float)
    for t in range(4):
        phen[f"t{t}"] = (0.7 + 0.1 * t) * dosages[:, 1 + t % 2] + 0.5 * dosages[:, 8] + rng.normal(size=len(phen))
    table = linear_gwas(geno, phen)
    for kb, r2 in ((250.0, 0.1), (1.5, 0.1), (250.0, 0.5)):
        got = clump(table, geno, kb=kb, r2=r2)
        expected = _reference_clump(table, geno, 5e-8, 1e-2, r2, kb)
        assert [(r.TRAIT, r.ID, sorted(r.SP2.split(",")) if r.SP2 != "NONE" else []) for r in got.itertuples()] \
            == expected
        assert len(expected) > 8  # several traits, several clumps each


def test_packed_r2_equals_dosage_r2_on_the_bed_with_missing_calls_and_a_sample_subset(tmp_path):
    """The bit-level r^2 of a .bed on disk (hard calls) equals the pairwise-complete r^2 of its decoded dosages:
    403 samples (padding slots in the last byte), 3% missing calls, a monomorphic column, and a subset of the
    samples in shuffled order (the removed samples must not count)."""
    from biolatent.discover.genetics.clump import _kept_plane, packed_r2
    from biolatent.io.genotypes import read_genotypes, write_plink

    rng = np.random.default_rng(7)
    n = 403
    base = rng.binomial(2, 0.3, n).astype(np.float32)
    cols = [base] + [np.where(rng.random(n) < 0.1 * k, rng.binomial(2, 0.4, n), base).astype(np.float32)
                     for k in range(1, 8)] + [np.ones(n, np.float32)]
    dosages = np.column_stack(cols)
    dosages[rng.random(dosages.shape) < 0.03] = np.nan
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(1, dosages.shape[1] + 1), "id": [f"v{i}" for i in
                            range(dosages.shape[1])], "ref": "A", "alt": "G"})
    prefix = write_plink(Genotypes(dosages, [f"s{i}" for i in range(n)], variants), tmp_path / "g")
    on_disk = read_genotypes(prefix, in_memory=False)
    for samples in (np.arange(n), rng.permutation(n)[:250]):
        part = on_disk.subset(sample_index=samples)
        decoded = np.asarray(part.dosages, float)
        raw = part.dosages.packed(np.arange(dosages.shape[1]))
        got = packed_r2(raw[0], raw[1:], _kept_plane(part.dosages))
        np.testing.assert_allclose(got, dosage_r2(decoded[:, 0], decoded[:, 1:]), rtol=1e-9, atol=1e-12)
        assert got[-1] == 0.0 and 0.05 < got[:-1].min() and got[0] > 0.5


def test_clump_of_a_bed_on_disk_equals_clump_in_memory(tmp_path):
    from biolatent.io.genotypes import read_genotypes, write_plink

    geno, phen = _ld_blocks(n=401)
    prefix = write_plink(geno, tmp_path / "g")
    on_disk = read_genotypes(prefix, in_memory=False)
    in_memory = read_genotypes(prefix)
    table = linear_gwas(in_memory, phen)
    leads = clump(table, on_disk)
    pd.testing.assert_frame_equal(leads, clump(table, in_memory))
    assert len(leads) >= 2 and (leads.TOTAL > 0).all()  # clumps with members: r^2 above 0.1 was found
