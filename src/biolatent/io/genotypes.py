"""Read genotypes (PLINK 1 binary .bed/.bim/.fam or VCF/BCF) into ``Genotypes``; write PLINK files.

PLINK: read with bed-reader (Kadie & Heckerman, "bed-reader", 2023; the .bed through ``BedDosages``) counting
allele 1, i.e. the ALT is plink's A1 (.bim
column 5) and the REF is A2 (column 6); sample ids are the IIDs (.fam column 2). The file format is the PLINK 1
binary format (Purcell et al. 2007, AJHG 81:559; Chang et al. 2015, GigaScience 4:7): 3 magic bytes, then one
block of ceil(n / 4) bytes per variant, so the .bed size is checked against the .bim/.fam counts before
reading. ``in_memory=False`` leaves the genotypes on disk, decoded block by block when a block of variants is
indexed (the GWAS scan: memory bounded by a block, whatever the number of variants).

VCF/BCF: read with cyvcf2 (Pedersen & Quinlan 2017, Bioinformatics 33:1867). Hard calls count the ALT alleles
of GT (``0/0`` -> 0, ``0/1`` -> 1, ``1/1`` -> 2, a haploid ``1`` -> 2 as in plink); any missing allele makes
the call missing (NaN, plink2's ``--vcf-half-call missing``). With ``dosage=True`` the FORMAT ``DS`` field is
used when the header defines it, otherwise the sum of the (phased) GT alleles. Multi-allelic sites and sites
without an ALT allele are skipped; their count is in ``variants.attrs["n_skipped_multiallelic"]``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.io.genotype_matrix import VARIANT_COLUMNS, BedDosages, Genotypes

VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")
PLINK_SUFFIXES = (".bed", ".bim", ".fam")
_BED_MAGIC = b"\x6c\x1b\x01"  # variant-major PLINK 1 .bed


def read_genotypes(path_or_prefix: str | Path, *, dosage: bool = False, in_memory: bool = True) -> Genotypes:
    """ALT dosages of a PLINK prefix (or any of its three files) or a VCF/BCF file; DataError on bad input.

    ``in_memory=False``: PLINK genotypes stay on disk (``BedDosages``, decoded per indexed block); a VCF is
    always read into memory."""
    text = str(path_or_prefix)
    if text.lower().endswith(VCF_SUFFIXES):
        return _read_vcf(Path(text), dosage=dosage)
    prefix = text[:-4] if text.lower().endswith(PLINK_SUFFIXES) else text
    if not any(Path(prefix + s).exists() for s in PLINK_SUFFIXES):
        raise DataError(f"no genotypes at {text}: expected a PLINK prefix (.bed/.bim/.fam) or a .vcf/.vcf.gz/.bcf "
                        "file")
    return _read_plink(prefix, in_memory=in_memory)


def read_sample_ids(path_or_prefix: str | Path) -> list[str]:
    """The sample ids of a PLINK prefix (.fam IIDs) or VCF/BCF (header), without reading any genotype."""
    text = str(path_or_prefix)
    if text.lower().endswith(VCF_SUFFIXES):
        from cyvcf2 import VCF

        if not Path(text).is_file():
            raise DataError(f"VCF file not found: {text}")
        try:
            return [str(s) for s in VCF(text, lazy=True, threads=1).samples]
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read VCF {text}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    prefix = text[:-4] if text.lower().endswith(PLINK_SUFFIXES) else text
    fam = Path(prefix + ".fam")
    if not fam.is_file():
        raise DataError(f"no genotypes at {text}: expected a PLINK prefix (.bed/.bim/.fam) or a .vcf/.vcf.gz/.bcf "
                        "file")
    ids = []
    for number, line in enumerate(fam.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DataError(f"{fam}, line {number}: expected FID and IID columns")
        ids.append(fields[1])
    return ids


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _check_padding(bed: Path, n: int, m: int) -> None:
    """DataError when the unused 2-bit slots after the last sample of a variant hold genotypes.

    A .fam that lost (or gained) fewer than four samples keeps the .bed size right; PLINK writes the padding
    slots as 00, so genotypes there mean that the .bed has more samples than the .fam lists.
    """
    if n % 4 == 0 or m == 0:
        return
    per_variant = (n + 3) // 4
    mask = np.uint8((0xFF << (2 * (n % 4))) & 0xFF)
    bad, step = 0, max(1, 2**26 // per_variant)  # one bounded map at a time: memory independent of m
    for start in range(0, m, step):
        rows = min(step, m - start)
        part = np.memmap(bed, dtype=np.uint8, mode="r", offset=3 + start * per_variant, shape=(rows, per_variant))
        bad += int(np.count_nonzero(part[:, -1] & mask))
        del part
    if bad:
        raise DataError(f"bed/bim/fam mismatch: {bed.name} holds genotypes beyond the {n} samples of the .fam "
                        f"({bad} of {m} variants): the .fam lacks samples")


def _read_plink(prefix: str, *, in_memory: bool = True) -> Genotypes:
    from bed_reader import open_bed

    files = {s: Path(prefix + s) for s in PLINK_SUFFIXES}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise DataError(f"missing PLINK file(s): {', '.join(missing)}")
    n, m = _count_lines(files[".fam"]), _count_lines(files[".bim"])
    with files[".bed"].open("rb") as handle:
        magic = handle.read(3)
    if magic != _BED_MAGIC:
        raise DataError(f"{files['.bed']} is not a variant-major PLINK 1 .bed file (bad magic bytes)")
    expected, actual = 3 + m * ((n + 3) // 4), files[".bed"].stat().st_size
    if expected != actual:
        raise DataError(f"bed/bim/fam mismatch: {files['.bed'].name} has {actual} bytes, but {m} variants (.bim) x "
                        f"{n} samples (.fam) need {expected}")
    _check_padding(files[".bed"], n, m)
    try:
        with open_bed(files[".bed"], count_A1=True, iid_count=n, sid_count=m, num_threads=1) as bed:
            samples = [str(s) for s in bed.iid]
            variants = pd.DataFrame({
                "chrom": [str(c) for c in bed.chromosome], "pos": np.asarray(bed.bp_position, dtype=np.int64),
                "id": [str(s) for s in bed.sid], "ref": [str(a) for a in bed.allele_2],
                "alt": [str(a) for a in bed.allele_1]})
    except (ValueError, OSError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read PLINK files {prefix}.bed/.bim/.fam: {first}") from None
    if len(samples) != n or len(variants) != m:
        raise DataError(f"bed/bim/fam mismatch: read {len(samples)} samples and {len(variants)} variants, the files "
                        f"list {n} and {m}")
    on_disk = BedDosages(files[".bed"], n, m)
    return Genotypes(np.asarray(on_disk) if in_memory else on_disk, samples, variants)


def _read_vcf(path: Path, *, dosage: bool) -> Genotypes:
    from cyvcf2 import VCF

    if not path.is_file():
        raise DataError(f"VCF file not found: {path}")
    try:
        vcf = VCF(str(path), lazy=True, threads=1)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read VCF {path}: {str(exc).strip().splitlines()[0] if str(exc) else exc}") from None
    samples = [str(s) for s in vcf.samples]
    if not samples:
        raise DataError(f"VCF {path} has no samples (no genotype columns)")
    use_ds = dosage and "DS" in {h["ID"] for h in vcf.header_iter() if h["HeaderType"] == "FORMAT"}
    columns: list[np.ndarray] = []
    rows: list[tuple[str, int, str, str, str]] = []
    skipped = 0
    try:
        for record in vcf:
            alts = record.ALT
            if len(alts) != 1 or alts[0] in ("", ".", "*"):
                skipped += 1
                continue
            if use_ds:
                ds = record.format("DS")
                values = np.full(len(samples), np.nan, np.float32) if ds is None else ds[:, 0].astype(np.float32)
                values[(values < -1e30) | ~np.isfinite(values)] = np.nan  # htslib's missing float
            else:
                values = _hard_calls(record.genotype.array())
            columns.append(values)
            chrom, pos, ref = record.CHROM, int(record.POS), record.REF
            rows.append((chrom, pos, record.ID or f"{chrom}:{pos}:{ref}:{alts[0]}", ref, alts[0]))
    except Exception as exc:  # cyvcf2 raises a bare Exception when htslib cannot parse a record
        raise DataError(f"cannot read VCF {path}: {str(exc).strip().splitlines()[0] if str(exc) else exc}") from None
    finally:
        vcf.close()
    dosages = np.stack(columns, axis=1) if columns else np.zeros((len(samples), 0), np.float32)
    variants = pd.DataFrame(rows, columns=list(VARIANT_COLUMNS)).astype({"pos": np.int64})
    variants.attrs["n_skipped_multiallelic"] = skipped
    return Genotypes(dosages, samples, variants)


def _hard_calls(gt: np.ndarray) -> np.ndarray:
    """ALT allele counts from cyvcf2's (n, ploidy + 1) allele array (-1 missing, -2 end of a shorter vector).

    A call with any missing allele is missing (plink2's ``--vcf-half-call missing``); haploid calls are scaled
    to the diploid 0/2 scale.
    """
    alleles = gt[:, :-1]
    present = alleles != -2
    ploidy = present.sum(axis=1)
    alt = ((alleles > 0) & present).sum(axis=1).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = alt * (2.0 / ploidy).astype(np.float32)
    values[(alleles == -1).any(axis=1) | (ploidy == 0)] = np.nan
    return values


def write_plink(genotypes: Genotypes, prefix: str | Path) -> Path:
    """Write ``prefix.bed/.bim/.fam`` (hard calls: dosages rounded to 0/1/2, NaN missing; A1 = ALT, A2 = REF).

    FID = IID; centimorgans 0. The three files are written under temporary names and renamed into place only
    when all of them are complete. Returns the prefix.
    """
    from bed_reader import to_bed

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    values = np.rint(np.asarray(genotypes.dosages, dtype=np.float32))
    bad = np.isfinite(values) & ((values < 0) | (values > 2))
    if bad.any():
        raise DataError(f"cannot write PLINK hard calls: {int(bad.sum())} dosages outside 0..2")
    v = genotypes.variants
    properties = {
        "fid": list(genotypes.samples), "iid": list(genotypes.samples), "sid": v["id"].astype(str).tolist(),
        "chromosome": v["chrom"].astype(str).tolist(), "bp_position": v["pos"].to_numpy(np.int64),
        "allele_1": v["alt"].astype(str).tolist(), "allele_2": v["ref"].astype(str).tolist(),
    }
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.", dir=prefix.parent))
    try:
        tmp = tmp_dir / "out"
        to_bed(tmp.with_suffix(".bed"), values, properties=properties, count_A1=True, num_threads=1)
        for suffix in PLINK_SUFFIXES:
            os.replace(tmp.with_suffix(suffix), Path(f"{prefix}{suffix}"))
    finally:
        for leftover in tmp_dir.iterdir():
            leftover.unlink()
        tmp_dir.rmdir()
    return prefix
