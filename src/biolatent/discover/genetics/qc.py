"""Genotype quality control: variant missingness, sample call rate, minor allele frequency, Hardy-Weinberg.

Filters run in the order of the usual PLINK pipeline (Anderson et al. 2010, Nat Protoc 5:1564):

1. variants whose fraction of missing calls exceeds ``max_variant_missing`` (all-missing variants included,
   counted separately as ``n_all_missing``);
2. samples whose call rate over the remaining variants is below ``min_sample_call_rate``;
3. on the remaining samples: variants with minor allele frequency below ``min_maf`` (frequency of the ALT
   allele over the non-missing calls, folded to <= 0.5), then variants with a Hardy-Weinberg exact p-value
   below ``min_hwe_p``.

A variant that fails several filters is counted under the first one only. The Hardy-Weinberg p-value is the
exact test of Wigginton, Cutler & Abecasis (2005), "A note on exact tests of Hardy-Weinberg equilibrium",
Am. J. Hum. Genet. 76:887-893: conditional on the allele counts, the number of heterozygotes has the
Levene (1949) distribution, computed from the mode outwards with the paper's recurrences; the p-value sums the
probabilities of all heterozygote counts no more likely than the observed one (plink2 ``--hardy``, not mid-p).
Dosages are rounded to hard calls for the test.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from biolatent.errors import DataError
from biolatent.io.genotype_matrix import BLOCK_ELEMENTS, BedDosages, Genotypes, popcount

_TIE = 1 + 1e-7  # relative tolerance for "no more likely than the observed count" (as plink)


@dataclass(frozen=True)
class QCConfig:
    """QC thresholds; a value outside its range raises ``DataError``."""

    min_maf: float = 0.01
    max_variant_missing: float = 0.05
    min_hwe_p: float = 1e-6
    min_sample_call_rate: float = 0.95

    def __post_init__(self) -> None:
        checks = {"min_maf": (0.0, 0.5), "max_variant_missing": (0.0, 1.0), "min_hwe_p": (0.0, 1.0),
                  "min_sample_call_rate": (0.0, 1.0)}
        for name, (low, high) in checks.items():
            value = getattr(self, name)
            if not isinstance(value, int | float) or not low <= float(value) <= high:
                raise DataError(f"QC setting {name} must be a number in [{low}, {high}], got {value!r}")


def hwe_exact_p(n_het: int, n_hom1: int, n_hom2: int) -> float:
    """Two-sided Hardy-Weinberg exact p-value of one variant (Wigginton, Cutler & Abecasis 2005)."""
    if min(n_het, n_hom1, n_hom2) < 0:
        raise ValueError("genotype counts must be non-negative")
    n_homr, n_homc = min(n_hom1, n_hom2), max(n_hom1, n_hom2)
    rare = 2 * n_homr + n_het
    n = n_het + n_homr + n_homc
    if n == 0 or rare == 0:
        return 1.0
    probs = _het_distribution(n, rare)
    return float(min(1.0, probs[probs <= probs[n_het] * _TIE].sum()))


def _het_distribution(n: int, rare: int) -> np.ndarray:
    """P(n_het = h | n genotypes, ``rare`` copies of the rare allele) for h = 0..rare (0 where parity differs).

    Wigginton et al. (2005), eqs. 2-3: start at the most likely count ``mid`` (probability 1), step down by two
    with P(h-2) = P(h) h (h-1) / (4 (n_homr+1) (n_homc+1)) and up by two with
    P(h+2) = P(h) 4 n_homr n_homc / ((h+2) (h+1)), then normalise. The recurrences are cumulative products.
    """
    probs = np.zeros(rare + 1)
    mid = rare * (2 * n - rare) // (2 * n)
    if mid % 2 != rare % 2:
        mid += 1
    homr, homc = (rare - mid) // 2, n - mid - (rare - mid) // 2
    probs[mid] = 1.0
    down = np.arange(mid, 1, -2)  # h -> h - 2, with homr + k, homc + k at step k
    if down.size:
        k = np.arange(down.size)
        ratios = down * (down - 1.0) / (4.0 * (homr + k + 1.0) * (homc + k + 1.0))
        probs[down - 2] = np.cumprod(ratios)
    up = np.arange(mid, rare - 1, 2)  # h -> h + 2, with homr - k, homc - k at step k
    if up.size:
        k = np.arange(up.size)
        ratios = 4.0 * (homr - k) * (homc - k) / ((up + 2.0) * (up + 1.0))
        probs[up + 2] = np.cumprod(ratios)
    return probs / probs.sum()


BLOCK_VARIANTS = 4096  # the counting helpers read the dosages in blocks of this many variants
DECODED_BLOCK_ELEMENTS = BLOCK_ELEMENTS  # run_qc: dosages per block (bounded memory whatever the sample count)
PACKED_BLOCK_BYTES = 2**24  # run_qc on a .bed on disk: packed bytes per block


def _blocks(m: int, size: int = BLOCK_VARIANTS):
    for start in range(0, m, size):
        yield slice(start, min(start + size, m))


def genotype_counts(dosages: np.ndarray) -> np.ndarray:
    """Per variant (hom-ref, het, hom-alt) counts of the hard calls (rounded dosages), missing skipped: (m, 3)."""
    out = np.zeros((np.shape(dosages)[1], 3), np.int64)
    for cols in _blocks(out.shape[0]):
        calls = np.rint(np.asarray(dosages[:, cols], dtype=np.float32))
        out[cols] = np.stack([(calls == k).sum(axis=0) for k in (0, 1, 2)], axis=1)
    return out


def hwe_pvalues_from_counts(counts: np.ndarray) -> np.ndarray:
    """The exact HWE p-value of every row of (hom-ref, het, hom-alt) counts."""
    unique, inverse = np.unique(counts, axis=0, return_inverse=True)  # many variants share their counts
    values = np.array([hwe_exact_p(int(het), int(h0), int(h2)) for h0, het, h2 in unique])
    return values[np.asarray(inverse).reshape(-1)] if len(values) else np.zeros(0)


def hwe_pvalues(dosages: np.ndarray) -> np.ndarray:
    """The exact HWE p-value of every variant (columns of a samples x variants dosage matrix)."""
    return hwe_pvalues_from_counts(genotype_counts(dosages))


def _allele_sums(dosages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per variant: sum of the non-missing dosages (float64) and the number of non-missing calls."""
    m = np.shape(dosages)[1]
    sums, observed = np.zeros(m), np.zeros(m, np.int64)
    for cols in _blocks(m):
        block = np.asarray(dosages[:, cols], dtype=np.float32)
        sums[cols] = np.nansum(block, axis=0, dtype=np.float64)
        observed[cols] = (~np.isnan(block)).sum(axis=0)
    return sums, observed


def minor_allele_frequency(dosages: np.ndarray) -> np.ndarray:
    """min(p, 1 - p) with p the ALT frequency over the non-missing calls; NaN for all-missing variants."""
    sums, observed = _allele_sums(dosages)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = sums / (2.0 * observed)
    return np.minimum(p, 1.0 - p)


def hwe_log_point_probability(counts: np.ndarray) -> np.ndarray:
    """ln P(n_het = observed | allele counts) of every row of (hom-ref, het, hom-alt) counts: Levene's
    closed form n! 2^het n_A! n_a! / (n_AA! n_het! n_aa! (2n)!), the term the exact test sums from."""
    from scipy.special import gammaln

    h0, het, h2 = (np.asarray(counts, float)[:, k] for k in range(3))
    n = h0 + het + h2
    return (gammaln(n + 1) - gammaln(h0 + 1) - gammaln(het + 1) - gammaln(h2 + 1) + het * np.log(2.0)
            + gammaln(2 * h0 + het + 1) + gammaln(2 * h2 + het + 1) - gammaln(2 * n + 1))


def hwe_fails(counts: np.ndarray, min_hwe_p: float) -> np.ndarray:
    """Whether the exact HWE p-value of each row of counts is below ``min_hwe_p``.

    The p-value sums the probabilities no larger than the observed one, the observed one included, so it is
    at least that point probability: rows whose point probability is clearly above ``min_hwe_p`` pass without
    the exact test (at biobank sizes nearly all of them); only the others are computed exactly."""
    counts = np.asarray(counts, np.int64).reshape(-1, 3)
    fails = np.zeros(len(counts), bool)
    if min_hwe_p <= 0 or not len(counts):
        return fails
    unsure = np.flatnonzero(~(hwe_log_point_probability(counts) > np.log(min_hwe_p) + 1e-6))
    if unsure.size:
        fails[unsure] = hwe_pvalues_from_counts(counts[unsure]) < min_hwe_p
    return fails


def _tallies(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per variant of a dosage block: missing calls, sum of the called dosages (float64), (hom-ref, het,
    hom-alt) counts of the hard calls (rounded dosages); and the missing-call mask."""
    block = np.asarray(block, dtype=np.float32)
    miss = np.isnan(block)
    n_miss = miss.sum(axis=0)
    filled = np.where(miss, np.float32(0), block) if n_miss.any() else block
    calls = np.rint(filled)
    counts = np.stack([(calls == 0).sum(axis=0) - n_miss, (calls == 1).sum(axis=0), (calls == 2).sum(axis=0)],
                      axis=1)
    return n_miss, filled.sum(axis=0, dtype=np.float64), counts, miss


def _packed_tallies(raw: np.ndarray, n: int, passing: Callable[[np.ndarray], np.ndarray]) -> tuple:
    """``_tallies`` of a block of raw .bed bytes (variants, ceil(n / 4)) counting A1 (the ALT), without
    decoding dosages. Each 2-bit slot (low bit ``lo``, high bit ``hi``) is 00 hom A1, 01 missing, 10 het, 11
    hom A2: per variant the codes are counted by population counts of ``lo & ~hi`` etc. (the padding slots
    after sample n are 00 and are taken off), per sample the missing calls over the variants that
    ``passing(n_miss)`` keeps. Returns (n_miss, dosage sums, (hom-ref, het, hom-alt) counts, per-sample
    missing counts)."""
    lo, hi = raw & 0x55, (raw >> 1) & 0x55
    missing = lo & ~hi
    n_miss = popcount(missing).sum(axis=1, dtype=np.int64)
    het = popcount(hi & ~lo).sum(axis=1, dtype=np.int64)
    hom_a2 = popcount(lo & hi).sum(axis=1, dtype=np.int64)
    hom_a1 = n - n_miss - het - hom_a2  # the padding slots (00) are not among the n
    kept = missing[passing(n_miss) & (n_miss > 0)]  # variants without a missing call add nothing per sample
    per_sample = np.zeros(raw.shape[1] * 4, np.int64)
    for slot in range(4):
        per_sample[slot::4] = np.add.reduce((kept >> (2 * slot)) & 1, axis=0, dtype=np.int64)
    counts = np.stack([hom_a2, het, hom_a1], axis=1)
    return n_miss, (2 * hom_a1 + het).astype(np.float64), counts, per_sample[:n]


def run_qc(genotypes: Genotypes, config: QCConfig | None = None) -> tuple[Genotypes, dict[str, Any]]:
    """Filter variants and samples (order in the module docstring); return (filtered genotypes, report).

    One pass over the genotypes (block by block) gives the variant missingness, the sample call rates and
    the allele counts; a second pass over the kept variants recounts them only when samples were removed."""
    config = config or QCConfig()
    n0, m0 = genotypes.n_samples, genotypes.n_variants
    if n0 == 0 or m0 == 0:
        raise DataError(f"genotypes are empty ({n0} samples x {m0} variants): nothing to QC")
    dosages = genotypes.dosages
    n_miss, sums, counts = np.zeros(m0, np.int64), np.zeros(m0), np.zeros((m0, 3), np.int64)
    sample_missing = np.zeros(n0, np.int64)
    def passing(missing: np.ndarray) -> np.ndarray:
        return (missing / n0 <= config.max_variant_missing) & (missing < n0)

    # PLINK input on disk, all samples: counted from the packed bytes, no dosage is decoded
    packed = isinstance(dosages, BedDosages) and dosages.sample_index is None
    # blocks of bounded size whatever the sample count: 2^24 packed bytes, or 2^23 decoded dosages
    step = max(1, PACKED_BLOCK_BYTES // ((n0 + 3) // 4)) if packed else max(1, DECODED_BLOCK_ELEMENTS // n0)
    # 1. variant missingness over all samples; 2. sample call rate over the variants that pass it
    if packed:  # blocks counted in two threads (numpy's bit operations release the GIL)
        def tally(cols: slice) -> tuple:
            return cols, _packed_tallies(dosages.packed(cols), n0, passing)

        with ThreadPoolExecutor(max_workers=2) as pool:
            for cols, (block_miss, block_sums, block_counts, per_sample) in pool.map(tally, _blocks(m0, step)):
                n_miss[cols], sums[cols], counts[cols] = block_miss, block_sums, block_counts
                sample_missing += per_sample
    else:
        for cols in _blocks(m0, step):
            n_miss[cols], sums[cols], counts[cols], miss = _tallies(dosages[:, cols])
            sample_missing += miss[:, passing(n_miss[cols])].sum(axis=1)
    variant_missing = n_miss / n0
    all_missing = n_miss == n0
    keep_v = (variant_missing <= config.max_variant_missing) & ~all_missing
    kept_columns = np.flatnonzero(keep_v)
    call_rate = 1.0 - sample_missing / kept_columns.size if kept_columns.size else np.zeros(n0)
    keep_s = call_rate >= config.min_sample_call_rate
    observed, sums, counts = n0 - n_miss[kept_columns], sums[kept_columns], counts[kept_columns]
    if not keep_s.all():  # 3. MAF and genotype counts on the kept samples
        rows = np.flatnonzero(keep_s)
        for cols in _blocks(kept_columns.size, max(1, DECODED_BLOCK_ELEMENTS // n0)):
            block = np.asarray(dosages[:, kept_columns[cols]], dtype=np.float32)[rows]
            block_miss, sums[cols], counts[cols], _ = _tallies(block)
            observed[cols] = rows.size - block_miss
    with np.errstate(invalid="ignore", divide="ignore"):
        p = sums / (2.0 * observed)
    maf = np.minimum(p, 1.0 - p)
    keep_maf = ~(maf < config.min_maf) & np.isfinite(maf)
    keep_hwe = keep_maf.copy()
    keep_hwe[keep_maf] = ~hwe_fails(counts[keep_maf], config.min_hwe_p)
    variant_index = np.flatnonzero(keep_v)[keep_hwe]
    sample_index = np.flatnonzero(keep_s)
    report: dict[str, Any] = {
        "config": asdict(config),
        "n_samples_before": n0, "n_samples_after": int(sample_index.size),
        "n_variants_before": m0, "n_variants_after": int(variant_index.size),
        "variants_removed": {"missingness": int((~keep_v).sum()), "maf": int((~keep_maf).sum()),
                             "hwe": int((keep_maf & ~keep_hwe).sum())},
        "n_all_missing": int(all_missing.sum()),
        "samples_removed": {"call_rate": int((~keep_s).sum())},
    }
    if sample_index.size == 0 or variant_index.size == 0:
        raise DataError(f"QC removed every {'sample' if sample_index.size == 0 else 'variant'}: "
                        f"{report['variants_removed']}, {report['samples_removed']} (check the thresholds)")
    return genotypes.subset(sample_index, variant_index), report
