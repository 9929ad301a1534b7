"""QC: the HWE exact test against brute-force enumeration; each filter on constructed data; config errors."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.qc import QCConfig, hwe_exact_p, hwe_pvalues, minor_allele_frequency, run_qc
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes


def _brute_force_het_distribution(n: int) -> dict[int, Counter]:
    """For every count k of allele A among 2n gametes: how many of the C(2n, k) equally likely placements of the
    A copies into n diploid individuals give h heterozygotes (HWE given the allele counts, no formula used)."""
    table: dict[int, Counter] = {}
    for placed in itertools.product((0, 1), repeat=2 * n):
        hets = sum(placed[2 * i] != placed[2 * i + 1] for i in range(n))
        table.setdefault(sum(placed), Counter())[hets] += 1
    return table


@pytest.mark.parametrize("n", range(1, 8))
def test_hwe_exact_equals_brute_force_enumeration(n):
    table = _brute_force_het_distribution(n)
    for hom_aa in range(n + 1):
        for het in range(n + 1 - hom_aa):
            hom_bb = n - hom_aa - het
            dist = table[2 * hom_aa + het]
            total = sum(dist.values())
            probs = {h: c / total for h, c in dist.items()}
            expected = sum(p for p in probs.values() if p <= probs[het] * (1 + 1e-9))
            assert hwe_exact_p(het, hom_aa, hom_bb) == pytest.approx(min(1.0, expected), rel=1e-9, abs=1e-12)
            assert hwe_exact_p(het, hom_bb, hom_aa) == pytest.approx(min(1.0, expected), rel=1e-9, abs=1e-12)


def test_hwe_vectorised_matches_scalar_and_extremes():
    rng = np.random.default_rng(1)
    dosages = rng.integers(0, 3, (40, 30)).astype(np.float32)
    dosages[rng.random(dosages.shape) < 0.1] = np.nan
    expected = [hwe_exact_p(int((c == 1).sum()), int((c == 0).sum()), int((c == 2).sum()))
                for c in dosages.T]
    np.testing.assert_allclose(hwe_pvalues(dosages), expected, rtol=1e-12)
    assert hwe_exact_p(0, 100, 0) == 1.0  # monomorphic
    assert hwe_exact_p(200, 0, 0) < 1e-50  # all heterozygous: far from HWE
    assert hwe_exact_p(0, 100, 100) < 1e-50  # no heterozygotes


def test_maf_uses_non_missing_calls():
    x = np.array([[2, np.nan, 0], [2, np.nan, 0], [np.nan, np.nan, 1], [0, np.nan, 0]], dtype=np.float32)
    maf = minor_allele_frequency(x)
    assert maf[0] == pytest.approx(1 / 3) and np.isnan(maf[1]) and maf[2] == pytest.approx(1 / 8)


def _designed() -> Genotypes:
    """200 samples; columns: good, all-missing, 10% missing, monomorphic, maf 0.0025, all-het, good (+ a bad
    sample with 3 of 7 calls missing)."""
    rng = np.random.default_rng(0)
    n = 200
    good = rng.binomial(2, 0.4, (n, 2)).astype(np.float32)
    cols = [good[:, 0], np.full(n, np.nan), good[:, 0].copy(), np.zeros(n), np.zeros(n), np.ones(n), good[:, 1]]
    cols[2][:20] = np.nan
    cols[4][0] = 1  # one ALT copy in 400: MAF 0.0025
    x = np.stack(cols, axis=1).astype(np.float32)
    x[5, [0, 2, 6]] = np.nan  # sample 5 misses 2 of the 5 variants left after the missingness filter
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(7) + 1, "id": [f"v{j}" for j in range(7)], "ref": "A",
                             "alt": "G"})
    return Genotypes(x, [f"s{i}" for i in range(n)], variants)


def test_run_qc_each_filter():
    kept, report = run_qc(_designed(), QCConfig())
    assert kept.variants.id.tolist() == ["v0", "v6"]
    assert "s5" not in kept.samples and kept.n_samples == 199
    assert report["variants_removed"] == {"missingness": 2, "maf": 2, "hwe": 1}
    assert report["n_all_missing"] == 1 and report["samples_removed"] == {"call_rate": 1}
    assert (report["n_variants_before"], report["n_variants_after"]) == (7, 2)
    assert (report["n_samples_before"], report["n_samples_after"]) == (200, 199)
    loose, report = run_qc(_designed(), QCConfig(min_maf=0.0, max_variant_missing=0.2, min_hwe_p=0.0,
                                                 min_sample_call_rate=0.0))
    assert loose.variants.id.tolist() == ["v0", "v2", "v3", "v4", "v5", "v6"]  # only the all-missing one goes
    assert report["variants_removed"]["missingness"] == 1 and report["n_all_missing"] == 1


def test_qc_errors():
    with pytest.raises(DataError, match="min_maf"):
        QCConfig(min_maf=0.7)
    with pytest.raises(DataError, match="min_sample_call_rate"):
        QCConfig(min_sample_call_rate=-1)
    geno = _designed()
    with pytest.raises(DataError, match="QC removed every variant"):
        run_qc(geno.subset(variant_index=np.array([1, 3])))


def test_hwe_screen_by_point_probability_matches_the_exact_test():
    """The closed-form point probability equals the normalised exact distribution's term, and the screened
    filter (exact test only where the point probability is near the threshold) fails the same variants."""
    from biolatent.discover.genetics.qc import (
        _het_distribution,
        hwe_fails,
        hwe_log_point_probability,
        hwe_pvalues_from_counts,
    )

    rng = np.random.default_rng(3)
    n = rng.integers(1, 400, 300)
    het = rng.integers(0, n + 1)
    h0 = rng.integers(0, n - het + 1)
    counts = np.stack([h0, het, n - het - h0], axis=1)
    for row in counts[:40]:
        rare = 2 * min(row[0], row[2]) + row[1]
        if rare:
            exact = _het_distribution(int(row.sum()), int(rare))[row[1]]
            assert np.isclose(np.exp(hwe_log_point_probability(row[None])[0]), exact, rtol=1e-9)
    for threshold in (1e-6, 1e-2, 0.5):
        expected = hwe_pvalues_from_counts(counts) < threshold
        assert (expected.any() and not expected.all()) or threshold == 1e-6
        np.testing.assert_array_equal(hwe_fails(counts, threshold), expected)
    assert not hwe_fails(counts, 0.0).any()


@pytest.mark.parametrize(("n", "small_blocks"), [(103, False), (120, False), (103, True)])
def test_qc_from_packed_bed_bytes_equals_qc_of_the_decoded_dosages(tmp_path, monkeypatch, n, small_blocks):
    """QC of genotypes left on disk counts from the .bed bytes; it keeps and reports exactly what QC of the
    decoded matrix does (missing calls, a sample and variants over the thresholds, rare and HWE-failing
    variants, a sample count that does or does not fill the last byte)."""
    from biolatent.discover.genetics import qc
    from biolatent.discover.genetics.qc import _packed_tallies, _tallies
    from biolatent.io.genotypes import read_genotypes, write_plink

    if small_blocks:  # many blocks of a few variants, the last one partial
        monkeypatch.setattr(qc, "PACKED_BLOCK_BYTES", 26 * 17)
        monkeypatch.setattr(qc, "DECODED_BLOCK_ELEMENTS", n * 13)

    rng = np.random.default_rng(n)
    m = 300
    freq = rng.uniform(0.002, 0.5, m)
    dosages = rng.binomial(2, freq, (n, m)).astype(np.float32)
    dosages[:, :10] = rng.choice([0.0, 2.0], (n, 10))  # no heterozygotes: fail HWE
    dosages[rng.random((n, m)) < 0.01] = np.nan
    dosages[:, 20][rng.random(n) < 0.2] = np.nan  # variant missingness over 0.05
    dosages[:, 21] = np.nan  # all missing
    dosages[3, rng.random(m) < 0.1] = np.nan  # a sample under the call rate
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(1, m + 1), "id": [f"v{j}" for j in range(m)],
                             "ref": "A", "alt": "G"})
    write_plink(Genotypes(dosages, [f"s{i}" for i in range(n)], variants), tmp_path / "g")
    on_disk = read_genotypes(tmp_path / "g", in_memory=False)
    in_memory = read_genotypes(tmp_path / "g")
    kept_disk, report_disk = run_qc(on_disk)
    kept_memory, report_memory = run_qc(in_memory)
    assert report_disk == report_memory
    assert report_disk["samples_removed"]["call_rate"] >= 1 and report_disk["variants_removed"]["hwe"] >= 1
    assert report_disk["variants_removed"]["missingness"] >= 2 and report_disk["n_all_missing"] == 1
    assert kept_disk.samples == kept_memory.samples
    assert kept_disk.variants.id.tolist() == kept_memory.variants.id.tolist()
    np.testing.assert_array_equal(np.asarray(kept_disk.dosages), kept_memory.dosages)

    def passing(missing):
        return missing < 5

    n_miss, sums, counts, per_sample = _packed_tallies(on_disk.dosages.packed(slice(0, m)), n, passing)
    ref_miss, ref_sums, ref_counts, miss = _tallies(in_memory.dosages)
    np.testing.assert_array_equal(n_miss, ref_miss)
    np.testing.assert_array_equal(sums, ref_sums)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_array_equal(per_sample, miss[:, passing(ref_miss)].sum(axis=1))
