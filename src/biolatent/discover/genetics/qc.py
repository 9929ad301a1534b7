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

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes

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


def genotype_counts(dosages: np.ndarray) -> np.ndarray:
    """Per variant (hom-ref, het, hom-alt) counts of the hard calls (rounded dosages), missing skipped: (m, 3)."""
    calls = np.rint(np.asarray(dosages, dtype=np.float64))
    return np.stack([(calls == k).sum(axis=0) for k in (0, 1, 2)], axis=1).astype(np.int64)


def hwe_pvalues(dosages: np.ndarray) -> np.ndarray:
    """The exact HWE p-value of every variant (columns of a samples x variants dosage matrix)."""
    counts = genotype_counts(dosages)
    unique, inverse = np.unique(counts, axis=0, return_inverse=True)  # many variants share their counts
    values = np.array([hwe_exact_p(int(het), int(h0), int(h2)) for h0, het, h2 in unique])
    return values[np.asarray(inverse).reshape(-1)] if len(values) else np.zeros(0)


def minor_allele_frequency(dosages: np.ndarray) -> np.ndarray:
    """min(p, 1 - p) with p the ALT frequency over the non-missing calls; NaN for all-missing variants."""
    x = np.asarray(dosages, dtype=np.float64)
    observed = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(observed, x, 0.0).sum(axis=0) / (2.0 * observed.sum(axis=0))
    return np.minimum(p, 1.0 - p)


def run_qc(genotypes: Genotypes, config: QCConfig | None = None) -> tuple[Genotypes, dict[str, Any]]:
    """Filter variants and samples (order in the module docstring); return (filtered genotypes, report)."""
    config = config or QCConfig()
    n0, m0 = genotypes.n_samples, genotypes.n_variants
    if n0 == 0 or m0 == 0:
        raise DataError(f"genotypes are empty ({n0} samples x {m0} variants): nothing to QC")
    missing = np.isnan(genotypes.dosages)
    variant_missing = missing.mean(axis=0)
    all_missing = variant_missing == 1.0
    keep_v = variant_missing <= config.max_variant_missing
    keep_v &= ~all_missing
    call_rate = 1.0 - missing[:, keep_v].mean(axis=1) if keep_v.any() else np.zeros(n0)
    keep_s = call_rate >= config.min_sample_call_rate
    kept = genotypes.dosages[np.ix_(keep_s, keep_v)]

    maf = minor_allele_frequency(kept)
    keep_maf = ~(maf < config.min_maf) & np.isfinite(maf)
    hwe = np.ones(kept.shape[1])
    if keep_maf.any():
        hwe[keep_maf] = hwe_pvalues(kept[:, keep_maf])
    keep_hwe = keep_maf & ~(hwe < config.min_hwe_p)
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
