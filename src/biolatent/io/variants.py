"""Variant records of a VCF (plain or gzip): CHROM, POS, ID, REF, ALT only; genotypes are ``io.genotypes``'s job.

A minimal reader on purpose: the first five columns are all a zero-shot variant score needs, and reading them
needs no contig header (htslib-based readers warn about undeclared contigs on stderr). A record with several
ALT alleles gives one ``Variant`` per allele.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from biolatent.errors import DataError


@dataclass(frozen=True)
class Variant:
    chrom: str
    pos: int  # 1-based, as in the VCF
    id: str
    ref: str
    alt: str
    line: int  # line number in the file (for messages)

    @property
    def label(self) -> str:
        return f"{self.chrom}:{self.pos} {self.ref}>{self.alt}" + ("" if self.id in ("", ".") else f" ({self.id})")

    @property
    def is_substitution(self) -> bool:
        """Same length, bases only: scored at the tokens of the changed bases."""
        return len(self.ref) == len(self.alt) and is_bases(self.ref) and is_bases(self.alt)


def is_bases(allele: str) -> bool:
    return bool(allele) and set(allele.upper()) <= set("ACGTN")


def read_variants(path: str | Path) -> list[Variant]:
    """Every variant of a VCF; a malformed line is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"VCF file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"VCF file {path} is a corrupt or truncated gzip file: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"VCF file {path} is not text") from None
    variants: list[Variant] = []
    header = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("##"):
            continue
        if line.startswith("#"):
            header = True
            continue
        fields = line.split("\t")
        if len(fields) < 5:
            raise DataError(f"VCF file {path}, line {number}: {len(fields)} tab-separated columns, expected at least "
                            "5 (CHROM POS ID REF ALT)")
        chrom, pos, vid, ref, alts = fields[:5]
        try:
            position = int(pos)
        except ValueError:
            raise DataError(f"VCF file {path}, line {number}: POS {pos!r} is not an integer") from None
        if position < 1:
            raise DataError(f"VCF file {path}, line {number}: POS {position} is not 1-based")
        if not is_bases(ref):
            raise DataError(f"VCF file {path}, line {number}: REF {ref!r} is not a sequence of A, C, G, T, N")
        for alt in alts.split(","):
            variants.append(Variant(chrom, position, vid, ref.upper(), alt.upper() if is_bases(alt) else alt, number))
    if not header:
        raise DataError(f"VCF file {path} has no #CHROM header line (not a VCF?)")
    if not variants:
        raise DataError(f"VCF file {path} holds no variants")
    return variants
