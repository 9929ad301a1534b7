"""The genotype matrix every genetics module consumes, and its per-variant standardisation.

The dosages are a numpy array, or (PLINK input read with ``in_memory=False``) a ``BedDosages``: the .bed
file decoded block by block when a block of variants is indexed, so a scan over the variants holds one block
at a time (memory bounded by the block, not by the number of variants).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

VARIANT_COLUMNS = ("chrom", "pos", "id", "ref", "alt")
_SPAN_GAP = 64  # variants at most this far apart are read in one span of the .bed
BLOCK_ELEMENTS = 2**23  # dosages decoded at once by a pass over the variants (64 MB as float64)


_BYTE_BITS = np.array([bin(b).count("1") for b in range(256)], np.uint8)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of every element of an unsigned integer array (numpy >= 2's bitwise_count, else a 256-entry
    table over its bytes)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    x = np.ascontiguousarray(x)
    return _BYTE_BITS[x.view(np.uint8)].reshape(*x.shape, x.itemsize).sum(axis=-1, dtype=np.uint8)


class BedDosages:
    """ALT dosages (float32, NaN = missing) of a variant-major PLINK 1 .bed, decoded when indexed.

    Indexing ``[rows, cols]`` reads and decodes only the bytes of the selected variants (bed-reader, counting
    A1: the ALT); ``np.asarray`` decodes everything.
    ``sample_index`` / ``variant_index`` select (and order) the samples and variants of the file that the
    matrix exposes; ``subset`` composes them, so QC and sample matching copy no genotypes.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, path: str | Path, n_file_samples: int, n_file_variants: int,
                 sample_index: np.ndarray | None = None, variant_index: np.ndarray | None = None) -> None:
        self.path = Path(path)
        self.n_file_samples, self.n_file_variants = int(n_file_samples), int(n_file_variants)
        self.sample_index = None if sample_index is None else np.asarray(sample_index, np.int64)
        self.variant_index = (np.arange(self.n_file_variants, dtype=np.int64) if variant_index is None
                              else np.asarray(variant_index, np.int64))

    @property
    def shape(self) -> tuple[int, int]:
        n = self.n_file_samples if self.sample_index is None else self.sample_index.size
        return n, int(self.variant_index.size)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def subset(self, sample_index: np.ndarray, variant_index: np.ndarray) -> BedDosages:
        """The given rows and columns of this matrix (indices into it, in that order), still on disk."""
        rows = np.asarray(sample_index, np.int64)
        if self.sample_index is not None:
            rows = self.sample_index[rows]
        every = rows.size == self.n_file_samples and bool((rows == np.arange(rows.size)).all())
        return BedDosages(self.path, self.n_file_samples, self.n_file_variants, None if every else rows,
                          self.variant_index[np.asarray(variant_index, np.int64)])

    def read(self, file_variants: np.ndarray, dtype: str = "float32") -> np.ndarray:
        """(samples of this matrix, len(file_variants)) dosages (column-major, float32 unless ``dtype``) of the
        given .bed variants, decoded by bed-reader, which reads only their bytes."""
        from bed_reader import open_bed

        rows = np.s_[:] if self.sample_index is None else self.sample_index
        with open_bed(self.path, count_A1=True, iid_count=self.n_file_samples, sid_count=self.n_file_variants,
                      num_threads=1) as bed:
            return bed.read(index=np.s_[rows, np.asarray(file_variants, np.int64)], dtype=dtype, order="F")

    def packed(self, cols: slice | np.ndarray) -> np.ndarray:
        """The raw .bed bytes (variants, ceil(file samples / 4)) of the columns ``cols``: 2 bits per sample of
        the file (all of them, whatever ``sample_index``), low bits first; 00 hom A1, 01 missing, 10 het,
        11 hom A2; the slots after the last sample are 00. Read by spans of nearby variants."""
        wanted = np.atleast_1d(self.variant_index[cols])
        per = (self.n_file_samples + 3) // 4
        out = np.empty((wanted.size, per), np.uint8)
        if wanted.size == 0:
            return out
        order = np.argsort(wanted, kind="stable")
        runs = np.split(order, np.flatnonzero(np.diff(wanted[order]) > _SPAN_GAP) + 1)
        with open(self.path, "rb") as handle:
            for run in runs:
                first, last = int(wanted[run[0]]), int(wanted[run[-1]])
                raw = os.pread(handle.fileno(), (last - first + 1) * per, 3 + first * per)
                out[run] = np.frombuffer(raw, np.uint8).reshape(last - first + 1, per)[wanted[run] - first]
        return out

    def variant_major(self, cols: slice | np.ndarray) -> np.ndarray:
        """(len(cols), samples of this matrix) float64 ALT dosages in C order (one row per variant, the layout
        of the .bed): bed-reader decodes them as the Fortran-order (samples, variants) float64 array whose
        transpose this is, with no copy."""
        return self.read(np.atleast_1d(self.variant_index[cols]), dtype="float64").T

    def __getitem__(self, key: tuple) -> np.ndarray:
        if not isinstance(key, tuple) or len(key) != 2:
            raise IndexError("BedDosages is indexed as [rows, columns]")
        rows, cols = key
        block = self.read(np.atleast_1d(self.variant_index[cols]))
        if isinstance(cols, int | np.integer):
            block = block[:, 0]
        return block if isinstance(rows, slice) and rows == slice(None) else block[rows]

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        out = self.read(self.variant_index)
        return out if dtype is None else out.astype(dtype, copy=False)


@dataclass
class Genotypes:
    """Dosages of the ALT allele (0..2, float32, NaN = missing call), samples x variants: an array, or a
    ``BedDosages`` read from disk block by block when indexed.

    ``samples``: the sample ids (PLINK: IID; VCF: sample names). ``variants``: one row per variant with the
    columns chrom, pos, id, ref, alt (``alt`` is the counted allele, plink2's A1).
    """

    dosages: np.ndarray | BedDosages
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
        keeps every sample and variant shares the array (a ``BedDosages`` stays on disk with the indices
        composed); otherwise the copy keeps the memory order (a column-major array: a column gather is a
        memcpy per variant, a row gather is done block by block)."""
        s = np.arange(self.n_samples) if sample_index is None else np.asarray(sample_index, dtype=np.int64)
        v = np.arange(self.n_variants) if variant_index is None else np.asarray(variant_index, dtype=np.int64)
        all_samples = s.size == self.n_samples and bool((s == np.arange(self.n_samples)).all())
        all_variants = v.size == self.n_variants and bool((v == np.arange(self.n_variants)).all())
        if all_samples and all_variants:
            dosages = self.dosages
        elif isinstance(self.dosages, BedDosages):
            dosages = self.dosages.subset(s, v)
        elif all_samples:
            dosages = self.dosages[:, v]
        else:
            dosages = np.empty((s.size, v.size), self.dosages.dtype,
                               order="F" if self.dosages.flags["F_CONTIGUOUS"] else "C")
            for start in range(0, v.size, 2048):
                dosages[:, start:start + 2048] = self.dosages[:, v[start:start + 2048]][s]
        return Genotypes(dosages, [self.samples[i] for i in s], self.variants.iloc[v].reset_index(drop=True))


def variant_rows(dosages: np.ndarray | BedDosages, cols: slice | np.ndarray) -> np.ndarray:
    """The columns ``cols`` of a dosage matrix as variant-major float64 rows (len(cols), samples), C order."""
    if isinstance(dosages, BedDosages):
        return dosages.variant_major(cols)
    return np.array(dosages[:, cols].T, dtype=np.float64, order="C")


def variant_blocks(dosages: np.ndarray | BedDosages, size: int, *, variant_major: bool = False,
                   prepare: Callable[[np.ndarray], Any] | None = None) -> Iterator[tuple[int, int, Any]]:
    """(start, stop, block of those columns) over all columns, ``size`` at a time: float32 (samples, size)
    blocks, or with ``variant_major`` float64 (size, samples) C-order blocks (``variant_rows``, the layout of
    the .bed, which a matrix product with per-sample vectors reads row by row). On disk (``BedDosages``) the
    next block is read and decoded in a background thread while the caller works on the current one
    (bed-reader releases the GIL), so reading overlaps the arithmetic; two blocks in memory at most. ``prepare``:
    work on a block alone (a sample gather, per-variant sums) done in that thread too; the iterator yields its
    result instead of the block."""
    m = dosages.shape[1]
    starts = list(range(0, m, size))

    def read(start: int) -> Any:
        cols = slice(start, start + size)
        block = variant_rows(dosages, cols) if variant_major else np.asarray(dosages[:, cols], dtype=np.float32)
        return block if prepare is None else prepare(block)

    if not isinstance(dosages, BedDosages):
        for start in starts:
            yield start, min(start + size, m), read(start)
        return
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, 0) if starts else None
        for start in starts:
            block = pending.result()
            if start + size < m:
                pending = reader.submit(read, start + size)
            yield start, min(start + size, m), block


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
