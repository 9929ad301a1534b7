"""Indexed FASTA: random access to the bases of a whole genome without reading it into memory.

The index is samtools' ``.fai`` (Li et al. 2009, "The Sequence Alignment/Map format and SAMtools",
Bioinformatics 25:2078): one line per sequence, ``name length offset line_bases line_bytes``, where ``offset`` is
the byte at which the sequence's first base lies and every line but the last holds ``line_bases`` bases in
``line_bytes`` bytes (the bases plus the line end). A base at 0-based position ``p`` lies at byte
``offset + p // line_bases * line_bytes + p % line_bases``. ``FastaIndex.build`` writes the same table that
``samtools faidx`` writes; ``read`` uses an existing ``PATH.fai`` and checks it against the file's size.

Only uncompressed FASTA is read this way (a BGZF ``.fa.gz`` needs its ``.gzi`` block index too): a gzip file is a
one-line error that says to decompress it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolatent.errors import DataError
from biolatent.io.fasta import NOT_A_BASE, is_gzip
from biolatent.io.file_stamp import check_unchanged, file_stamp

_CHUNK = 1 << 24  # bytes read at a time while indexing


@dataclass(frozen=True)
class FaiRecord:
    name: str
    length: int
    offset: int
    line_bases: int
    line_bytes: int

    def byte_of(self, position: int) -> int:
        """The file byte holding 0-based base ``position`` of this sequence."""
        return self.offset + position // self.line_bases * self.line_bytes + position % self.line_bases

    def fai_line(self) -> str:
        return f"{self.name}\t{self.length}\t{self.offset}\t{self.line_bases}\t{self.line_bytes}"


class FastaIndex:
    """The ``.fai`` table of an uncompressed FASTA file, and reads of base ranges through it."""

    def __init__(self, path: Path, records: list[FaiRecord]) -> None:
        self.path = Path(path)
        self.records = records
        self.by_name = {record.name: record for record in records}
        self.stamp = file_stamp(self.path)

    # -- building and reading the index --------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> FastaIndex:
        """The index of ``path``: ``PATH.fai`` when it exists (checked), else built by one pass over the file."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"FASTA file not found: {path}")
        if is_gzip(path):
            raise DataError(f"{path} is gzip-compressed: windows are read from an uncompressed FASTA with random "
                            f"access; decompress it first (gunzip -k {path.name})")
        fai = path.with_name(path.name + ".fai")
        return cls.read(path, fai) if fai.is_file() else cls.build(path)

    @classmethod
    def read(cls, path: Path, fai: Path) -> FastaIndex:
        """Read ``fai``; DataError when malformed or when it points past the end of ``path``."""
        records = []
        for number, line in enumerate(fai.read_text().splitlines(), 1):
            parts = line.split("\t")
            if len(parts) < 5 or not all(p.isdigit() for p in parts[1:5]):
                raise DataError(f"{fai}, line {number}: expected 'name length offset line_bases line_bytes'")
            name, length, offset, line_bases, line_bytes = parts[0], *(int(p) for p in parts[1:5])
            if line_bases < 1 or line_bytes < line_bases:
                raise DataError(f"{fai}, line {number}: line_bases {line_bases} / line_bytes {line_bytes} impossible")
            records.append(FaiRecord(name, length, offset, line_bases, line_bytes))
        if not records:
            raise DataError(f"{fai} lists no sequences")
        size = path.stat().st_size
        for record in records:
            if record.length and record.byte_of(record.length - 1) >= size:
                raise DataError(f"{fai} does not match {path.name}: sequence {record.name!r} would end past the end of "
                                f"the file (stale index? delete it and it is rebuilt)")
        return cls(path, records)

    @classmethod
    def build(cls, path: Path) -> FastaIndex:
        """One pass over ``path`` (bounded memory): the samtools ``.fai`` records. Lines of a sequence must all have
        the same length but its last; a header without an id, a duplicate id or an empty sequence is a DataError."""
        records: list[FaiRecord] = []
        name: str | None = None
        offset = length = line_bases = line_bytes = 0
        short_line_seen = False
        position = 0
        seen: set[str] = set()

        def close() -> None:
            if name is None:
                return
            if length == 0:
                raise DataError(f"FASTA file {path}: record {name!r} has an empty sequence")
            records.append(FaiRecord(name, length, offset, line_bases, line_bytes))

        with path.open("rb") as handle:
            for line_no, raw in enumerate(handle, 1):
                if raw.startswith(b">"):
                    close()
                    words = raw[1:].split()
                    if not words:
                        raise DataError(f"FASTA file {path}, line {line_no}: header without an id")
                    name = words[0].decode("utf-8", errors="replace")
                    if name in seen:
                        raise DataError(f"FASTA file {path}: duplicate record id {name!r} (line {line_no})")
                    seen.add(name)
                    offset, length, line_bases, line_bytes, short_line_seen = position + len(raw), 0, 0, 0, False
                elif name is None:
                    if raw.strip():
                        raise DataError(f"FASTA file {path}, line {line_no}: expected a '>' header before sequence "
                                        "data (not a FASTA file?)")
                else:
                    bases = len(raw.rstrip(b"\r\n"))
                    if not bases:  # a blank line: only more blank lines or the next header may follow
                        short_line_seen = short_line_seen or line_bases > 0
                    else:
                        if short_line_seen:
                            raise DataError(f"FASTA file {path}, line {line_no}: record {name!r} has lines of "
                                            "different lengths, which an index cannot address (reformat it, e.g. "
                                            "samtools faidx or seqkit seq -w 60)")
                        if line_bases == 0:
                            line_bases, line_bytes = bases, len(raw)
                        elif bases != line_bases or len(raw) != line_bytes:
                            if bases > line_bases:
                                raise DataError(f"FASTA file {path}, line {line_no}: record {name!r} has lines of "
                                                "different lengths, which an index cannot address (reformat it, "
                                                "e.g. seqkit seq -w 60)")
                            short_line_seen = True
                        length += bases
                position += len(raw)
        close()
        if not records:
            raise DataError(f"FASTA file {path} holds no sequence")
        return cls(path, records)

    def write(self, fai: Path | None = None) -> Path:
        """Write the index (default ``PATH.fai``), in samtools' format."""
        from biolatent.rundir import atomic_path

        fai = fai or self.path.with_name(self.path.name + ".fai")
        with atomic_path(fai) as tmp:
            tmp.write_text("".join(record.fai_line() + "\n" for record in self.records))
        return fai

    # -- reading bases -------------------------------------------------------------------------------------------
    def check_unchanged(self) -> None:
        check_unchanged(self.path, self.stamp)

    def fetch_bytes(self, name: str, start: int, end: int, handle=None) -> bytes:
        """The bases ``[start, end)`` (0-based) of sequence ``name`` as ASCII bytes, case kept."""
        record = self.by_name.get(name)
        if record is None:
            raise DataError(f"{self.path.name} has no sequence {name!r}")
        if not 0 <= start <= end <= record.length:
            raise DataError(f"{name}:{start}-{end} lies outside {name} (length {record.length:,})")
        if start == end:
            return b""
        first, last = record.byte_of(start), record.byte_of(end - 1)
        if handle is None:
            with self.path.open("rb") as own:
                own.seek(first)
                raw = own.read(last - first + 1)
        else:
            handle.seek(first)
            raw = handle.read(last - first + 1)
        if record.line_bytes == record.line_bases:
            return raw
        return raw.replace(b"\r", b"").replace(b"\n", b"")

    def fetch(self, name: str, start: int, end: int) -> str:
        """The bases ``[start, end)`` of sequence ``name`` as text."""
        return self.fetch_bytes(name, start, end).decode("ascii", errors="replace")

    def base_chunks(self, name: str, chunk: int = _CHUNK):
        """Yield ``(start, uint8 bytes)`` chunks covering sequence ``name`` in order (bounded memory)."""
        record = self.by_name[name]
        with self.path.open("rb") as handle:
            for start in range(0, record.length, chunk):
                end = min(record.length, start + chunk)
                yield start, np.frombuffer(self.fetch_bytes(name, start, end, handle), dtype=np.uint8)


class IndexedSequence:
    """One sequence of an indexed FASTA that reads like a ``str`` (``len``, ``[i]``, ``[a:b]``) but reads its bases
    from the file on access; bases must be A, C, G, T or N (any case), as ``read_fasta`` requires."""

    def __init__(self, index: FastaIndex, name: str) -> None:
        self.index, self.name = index, name
        self.length = index.by_name[name].length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | slice) -> str:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.length)
            if step != 1:
                raise ValueError("an indexed sequence is sliced with step 1 only")
            stop = max(start, stop)
        else:
            start = key + self.length if key < 0 else key
            if not 0 <= start < self.length:
                raise IndexError(f"position {key} outside {self.name} (length {self.length:,})")
            stop = start + 1
        text = self.index.fetch(self.name, start, stop)
        bad = NOT_A_BASE.search(text)
        if bad:
            raise DataError(f"{self.index.path.name}: record {self.name!r}: character {bad.group()!r} at position "
                            f"{start + bad.start() + 1:,} is not one of A, C, G, T, N")
        return text


def indexed_sequences(path: str | Path) -> dict[str, IndexedSequence]:
    """Every sequence of the uncompressed FASTA ``path`` by id, each read from the file when sliced."""
    index = FastaIndex.open(path)
    return {record.name: IndexedSequence(index, record.name) for record in index.records}
