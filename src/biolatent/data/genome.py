"""A genome as samples: fixed windows of an indexed FASTA, read from the file when a batch needs them.

``genome_windows`` tiles every sequence of a FASTA (a chromosome, a whole genome) with windows of ``window``
bases every ``stride`` bases, drops the windows with more than ``max_n_fraction`` unknown bases and those that
overlap a region of an exclusion BED (e.g. held-out evaluation regions, or a blacklist), and returns
``GenomeWindows``: an (N, window) int64 matrix of base codes (``biolatent.data.sequence``) that reads only the rows
it is indexed with, so pre-training on a genome needs memory for a batch, not for the genome. Soft-masked
(lower-case) bases are read as upper case; IUPAC ambiguity codes (R, Y, K, M, S, W, B, D, H, V) as N.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from biolatent.data.lazy_rows import LazyRows
from biolatent.data.sequence import N_BASE
from biolatent.errors import DataError
from biolatent.io.faidx import FastaIndex

_CODES = np.full(256, -1, dtype=np.int8)
for _code, _letters in enumerate(("Aa", "Cc", "Gg", "Tt", "NnRrYyKkMmSsWwBbDdHhVv")):
    for _letter in _letters:
        _CODES[ord(_letter)] = _code


def base_codes(raw: np.ndarray, where: str) -> np.ndarray:
    """uint8 ASCII bases -> int8 codes (A=0 C=1 G=2 T=3 N=4); DataError naming the first other character."""
    codes = _CODES[raw]
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        raise DataError(f"{where}: character {chr(int(raw[bad[0]]))!r} at base {bad[0] + 1:,} is not a base "
                        "(A, C, G, T, N or an IUPAC code)")
    return codes


class GenomeWindows(LazyRows):
    """(N, window) int64 base codes of fixed windows of an indexed FASTA, read when indexed (module docstring).

    Window ``i`` is bases ``[starts[i], starts[i] + window)`` of sequence ``names[chroms[i]]``. Picklable: each
    DataLoader worker opens the file itself.
    """

    dtype = torch.int64
    ndim = 2

    def __init__(self, index: FastaIndex, chroms: np.ndarray, starts: np.ndarray, window: int) -> None:
        self.index = index
        self.names = [record.name for record in index.records]
        self.chroms = np.asarray(chroms, dtype=np.int32)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.window = int(window)
        self._handle: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None}

    def __len__(self) -> int:
        return int(self.starts.size)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), self.window))

    def __repr__(self) -> str:
        return f"GenomeWindows({self.index.path.name}, {len(self):,} windows of {self.window} bases)"

    def check_unchanged(self) -> None:
        self.index.check_unchanged()

    def ids(self) -> list[str]:
        """``name:start-end`` of each window (1-based, inclusive: samtools' region syntax)."""
        return [f"{self.names[c]}:{s + 1}-{s + self.window}" for c, s in zip(self.chroms.tolist(),
                                                                           self.starts.tolist(), strict=True)]

    def take(self, positions: np.ndarray | torch.Tensor) -> GenomeWindows:
        """The windows at ``positions`` as another lazy matrix (nothing read)."""
        rows = self.positions(positions)
        return GenomeWindows(self.index, self.chroms[rows], self.starts[rows], self.window)

    def read(self, rows: np.ndarray) -> torch.Tensor:
        """int64 (len(rows), window) base codes of the windows ``rows`` (non-negative positions)."""
        self.check_unchanged()
        out = np.empty((rows.size, self.window), dtype=np.int64)
        if self._handle is None:
            self._handle = self.index.path.open("rb")
        for k, row in enumerate(rows.tolist()):
            name, start = self.names[self.chroms[row]], int(self.starts[row])
            raw = self.index.fetch_bytes(name, start, start + self.window, self._handle)
            out[k] = base_codes(np.frombuffer(raw, dtype=np.uint8), f"{self.index.path.name} {name}:{start + 1}")
        return torch.from_numpy(out)


def read_bed(path: Path) -> pd.DataFrame:
    """The first three columns of a BED file (chrom, 0-based start, end); track/browser/# lines skipped."""
    if not path.is_file():
        raise DataError(f"BED file not found: {path}")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        parts = line.split()
        if len(parts) < 3 or not parts[1].isdigit() or not parts[2].isdigit() or int(parts[2]) < int(parts[1]):
            raise DataError(f"{path}, line {number}: expected 'chrom start end' with 0 <= start <= end, got "
                            f"{line.strip()[:80]!r}")
        rows.append((parts[0], int(parts[1]), int(parts[2])))
    return pd.DataFrame(rows, columns=["chrom", "start", "end"])


def _bed_chromosome(name: str, sequences: set[str]) -> str | None:
    """The FASTA sequence a BED chromosome name refers to ('chr20' and '20' are the same chromosome)."""
    for candidate in (name, name.removeprefix("chr"), f"chr{name}"):
        if candidate in sequences:
            return candidate
    return None


def overlapping(starts: np.ndarray, window: int, regions: np.ndarray) -> np.ndarray:
    """Bool per window ``[start, start + window)``: does it overlap any of the ``regions`` (k, 2) [start, end)?"""
    if regions.size == 0:
        return np.zeros(starts.size, dtype=bool)
    order = np.argsort(regions[:, 0], kind="stable")
    begin, end = regions[order, 0], np.maximum.accumulate(regions[order, 1])
    # the last region starting before the window's end; overlaps iff the furthest end so far passes the start
    last = np.searchsorted(begin, starts + window, side="left") - 1
    return (last >= 0) & (end[np.clip(last, 0, None)] > starts)


def genome_windows(path: Path, window: int, stride: int | None = None, *, max_n_fraction: float = 0.0,
                   exclude: Path | None = None) -> tuple[GenomeWindows, pd.DataFrame, dict[str, int]]:
    """Tile the FASTA ``path`` (module docstring) -> (windows, obs with chrom and 0-based start, counts of the
    windows kept and dropped). One pass over the file, memory bounded by a few bytes per window."""
    stride = stride or window
    index = FastaIndex.open(path)
    sequences = {record.name for record in index.records}
    regions: dict[str, np.ndarray] = {}
    if exclude is not None:
        bed = read_bed(Path(exclude))
        bed["sequence"] = [_bed_chromosome(name, sequences) for name in bed["chrom"]]
        if len(bed) and bed["sequence"].isna().all():
            raise DataError(f"no chromosome of {exclude} ({', '.join(sorted(set(bed['chrom']))[:4])}...) is a sequence "
                            f"of {path.name} ({', '.join(sorted(sequences)[:4])}...)")
        regions = {name: group[["start", "end"]].to_numpy(np.int64) for name, group in bed.dropna().groupby("sequence")}
    block = gcd(window, stride)  # N counts per block of this many bases: windows are whole numbers of blocks
    per_window, chunk = window // block, max(block, (1 << 24) // block * block)
    max_n = int(np.floor(max_n_fraction * window + 1e-9))
    chroms, starts = [], []
    counts = {"windows": 0, "too_many_n": 0, "excluded": 0}
    for number, record in enumerate(index.records):
        if record.length < window:
            continue
        n_blocks = record.length // block
        n_per_block = np.zeros(n_blocks, dtype=np.int32)
        for start, raw in index.base_chunks(record.name, chunk):
            codes = base_codes(raw, f"{path.name} {record.name} (from base {start + 1:,})")
            whole = codes[: codes.size // block * block].reshape(-1, block)
            first = start // block
            n_per_block[first : first + whole.shape[0]] = (whole == N_BASE).sum(axis=1)
        window_starts = np.arange(0, record.length - window + 1, stride, dtype=np.int64)
        cumulative = np.concatenate([[0], np.cumsum(n_per_block, dtype=np.int64)])
        first_block = window_starts // block
        n_in_window = cumulative[first_block + per_window] - cumulative[first_block]
        keep = n_in_window <= max_n
        counts["windows"] += window_starts.size
        counts["too_many_n"] += int((~keep).sum())
        if record.name in regions:
            hit = overlapping(window_starts, window, regions[record.name]) & keep
            counts["excluded"] += int(hit.sum())
            keep &= ~hit
        starts.append(window_starts[keep])
        chroms.append(np.full(int(keep.sum()), number, dtype=np.int32))
    if not starts or sum(s.size for s in starts) == 0:
        raise DataError(f"{path}: no window of {window} bases is left (sequences shorter than a window, more than "
                        f"{max_n_fraction:g} N, or excluded)")
    windows = GenomeWindows(index, np.concatenate(chroms), np.concatenate(starts), window)
    obs = pd.DataFrame({"chrom": pd.Categorical([windows.names[c] for c in windows.chroms]),
                        "start": windows.starts}, index=pd.Index(windows.ids()))
    counts["kept"] = len(windows)
    return windows, obs, counts
