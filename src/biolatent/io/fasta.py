"""FASTA reading (plain or gzip) with strict checks, and atomic FASTA writing."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from pathlib import Path

from biolatent.errors import DataError
from biolatent.rundir import atomic_path

_GZIP_MAGIC = b"\x1f\x8b"
NOT_A_BASE = re.compile("[^ACGTNacgtn]")  # the alphabet of data.sequence.BASES (io sits below data)


def is_gzip(path: Path) -> bool:
    """Whether ``path`` starts with the gzip magic bytes (BGZF included)."""
    with Path(path).open("rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"FASTA file {path} is a corrupt or truncated gzip file: {exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"FASTA file {path} is not text (byte {exc.start + 1} is not UTF-8)") from None


def read_fasta(path: str | Path) -> list[tuple[str, str]]:
    """Read ``(id, sequence)`` records; the id is the first word of the header line.

    Sequences keep their case; every character must be one of A, C, G, T, N (any case).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"FASTA file not found: {path}")
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"FASTA file {path} is empty")
    records: list[tuple[str, list[str], int]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            words = line[1:].split()
            if not words:
                raise DataError(f"FASTA file {path}, line {line_no}: header without an id")
            records.append((words[0], [], line_no))
        elif not records:
            raise DataError(f"FASTA file {path}, line {line_no}: expected a '>' header before sequence data "
                            "(not a FASTA file?)")
        else:
            records[-1][1].append(line)
    seen: dict[str, int] = {}
    out: list[tuple[str, str]] = []
    for record_id, chunks, line_no in records:
        if record_id in seen:
            raise DataError(f"FASTA file {path}: duplicate record id {record_id!r} (lines {seen[record_id]} "
                            f"and {line_no})")
        seen[record_id] = line_no
        sequence = "".join(chunks)
        if not sequence:
            raise DataError(f"FASTA file {path}: record {record_id!r} has an empty sequence "
                            "(truncated file?)")
        bad = NOT_A_BASE.search(sequence)
        if bad:
            raise DataError(f"FASTA file {path}: record {record_id!r}: character {bad.group()!r} at position "
                            f"{bad.start() + 1} is not one of A, C, G, T, N")
        out.append((record_id, sequence))
    return out


def write_fasta(path: str | Path, records: Iterable[tuple[str, str]], width: int = 80) -> Path:
    """Write ``(id, sequence)`` records atomically (gzip if the name ends in .gz), ``width`` bases a line."""
    path = Path(path)
    lines: list[str] = []
    for record_id, sequence in records:
        lines.append(f">{record_id}")
        lines.extend(sequence[i : i + width] for i in range(0, len(sequence), width))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
