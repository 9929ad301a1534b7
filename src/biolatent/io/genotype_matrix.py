"""The in-memory genotype matrix every genetics module consumes, and its per-variant standardisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

VARIANT_COLUMNS = ("chrom", "pos", "id", "ref", "alt")


@dataclass
class Genotypes:
    """Dosages of the ALT allele (0..2, float32, NaN = missing call), samples x variants.

    ``samples``: the sample ids (PLINK: IID; VCF: sample names). ``variants``: one row per variant with the
    columns chrom, pos, id, ref, alt (``alt`` is the counted allele, plink2's A1).
    """

    dosages: np.ndarray
    samples: list[str]
    variants: pd.DataFrame

    def __post_init__(self) -> None:
        n, m = self.dosages.shape
        if n != len(self.samples) or m != len(self.variants):
            raise ValueError(f"dosages {self.dosages.shape} do not match {len(self.samples)} samples x "
                             f"{len(self.variants)} variants")
        missing = [c for c in VARIANT_COLUMNS if c not in self.variants.columns]
        if missing:
            raise ValueError(f"variants table lacks columns {missing}")

    @property
    def n_samples(self) -> int:
        return int(self.dosages.shape[0])

    @property
    def n_variants(self) -> int:
        return int(self.dosages.shape[1])

    def subset(self, sample_index: np.ndarray | None = None, variant_index: np.ndarray | None = None) -> Genotypes:
        """The given samples and variants (in that order). Dosages are never modified in place, so a subset that
        keeps every sample and variant shares the array; otherwise the copy keeps the memory order (PLINK
        input is column-major: a column gather is a memcpy per variant, a row gather is done block by block)."""
        s = np.arange(self.n_samples) if sample_index is None else np.asarray(sample_index, dtype=np.int64)
        v = np.arange(self.n_variants) if variant_index is None else np.asarray(variant_index, dtype=np.int64)
        all_samples = s.size == self.n_samples and bool((s == np.arange(self.n_samples)).all())
        all_variants = v.size == self.n_variants and bool((v == np.arange(self.n_variants)).all())
        if all_samples and all_variants:
            dosages = self.dosages
        elif all_samples:
            dosages = self.dosages[:, v]
        else:
            dosages = np.empty((s.size, v.size), self.dosages.dtype,
                               order="F" if self.dosages.flags["F_CONTIGUOUS"] else "C")
            for start in range(0, v.size, 2048):
                dosages[:, start:start + 2048] = self.dosages[:, v[start:start + 2048]][s]
        return Genotypes(dosages, [self.samples[i] for i in s], self.variants.iloc[v].reset_index(drop=True))


def standardise_block(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise a samples x variants dosage block; return (Z of the kept variants, kept mask).

    A variant is kept when it has at least one observed call and its observed dosages are not all equal
    (monomorphic in this sample set, which includes ALT frequency 0 or 1).
    """
    block = np.asarray(block, dtype=np.float64)
    observed = ~np.isnan(block)
    counts = observed.sum(axis=0)
    filled = np.where(observed, block, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = filled.sum(axis=0) / (2.0 * counts)
    big, small = np.where(observed, block, -np.inf).max(axis=0), np.where(observed, block, np.inf).min(axis=0)
    keep = (counts > 0) & (big > small) & (p > 0) & (p < 1)
    p = p[keep]
    z = (filled[:, keep] - 2.0 * p) / np.sqrt(2.0 * p * (1.0 - p))
    z[~observed[:, keep]] = 0.0
    return z, keep
