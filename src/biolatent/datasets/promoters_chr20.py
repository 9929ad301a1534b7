"""promoters-chr20: a held-out promoter task on human chromosome 20, 889 promoters vs 889 background windows of
200 bases (label column ``label``: promoter / background).

Sources: the transcription start sites (TSS) of the RefSeq genes on hg19, as ChromHMM ships them (Ernst & Kellis
2012, Nature Methods 9:215; Debian package ``chromhmm-example``, ``ANCHORFILES/hg19/RefSeqTSS.hg19.txt.gz``: one
line ``chrom position strand`` per transcript), and the sequence of chromosome 20 from the registry dataset
``grch37-chr20`` (hg19 and GRCh37 share the coordinates of chr20).

Conversion (seeded, deterministic):

* promoters: every distinct TSS of chr20 (889), the 200 bases ``[tss - 100, tss + 100)`` read on the gene's
  strand (reverse-complemented on the minus strand); windows with an unknown base are dropped (counted);
* background: as many windows drawn uniformly from chr20 (``numpy.random.default_rng(20)``) with no unknown
  base, more than 2,000 bases from every TSS and overlapping no other window, each on a random strand;
* ``sequences.fa``, ``meta.tsv`` (id, label, chrom, start, end, strand, gc) and ``task_regions.bed``: every
  window's chromosome interval, to keep the task out of a pre-training corpus (``data.exclude_regions``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.datasets.recipe import AptRecipe
from biolatent.errors import DataError

TSS = "/usr/share/doc/chromhmm/examples/ANCHORFILES/hg19/RefSeqTSS.hg19.txt.gz"
CHROMOSOME = "grch37-chr20"
FLANK = 100  # bases on each side of the TSS: windows of 200
MIN_DISTANCE = 2_000  # background windows lie further than this from every TSS
SEED = 20
_COMPLEMENT = bytes.maketrans(b"ACGTNacgtn", b"TGCANtgcan")


def read_tss(path: Path, chromosome: str = "chr20") -> pd.DataFrame:
    """The distinct (position, strand) TSS of ``chromosome`` in a ChromHMM anchor file, sorted by position."""
    rows = []
    with gzip.open(path, "rt") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in "+-":
                raise DataError(f"{Path(path).name} line {number}: expected 'chrom position strand'")
            if parts[0] == chromosome:
                rows.append((int(parts[1]), parts[2]))
    table = pd.DataFrame(sorted(set(rows)), columns=["position", "strand"])
    if table.empty:
        raise DataError(f"{Path(path).name} lists no TSS on {chromosome}")
    return table


def _window(index, name: str, start: int, strand: str) -> str | None:
    raw = index.fetch_bytes(name, start, start + 2 * FLANK).upper()
    if b"N" in raw:
        return None
    return (raw.translate(_COMPLEMENT)[::-1] if strand == "-" else raw).decode("ascii")


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """``sequences.fa``, ``meta.tsv`` and ``task_regions.bed`` (module docstring)."""
    from biolatent.io.faidx import FastaIndex
    from biolatent.io.fasta import write_fasta
    from biolatent.io.tables import write_table

    index = FastaIndex.open(members[f"dataset:{CHROMOSOME}"] / "chr20.fa")
    name = index.records[0].name
    length = index.records[0].length
    tss = read_tss(members[TSS])
    rows, records = [], []

    def add(label: str, start: int, strand: str, sequence: str) -> None:
        record_id = f"{name}:{start + 1}-{start + 2 * FLANK}({strand})"
        records.append((record_id, sequence))
        gc = (sequence.count("G") + sequence.count("C")) / len(sequence)
        rows.append({"id": record_id, "label": label, "chrom": name, "start": start, "end": start + 2 * FLANK,
                     "strand": strand, "gc": round(gc, 4)})

    for position, strand in tss.itertuples(index=False):
        start = position - FLANK
        if start < 0 or start + 2 * FLANK > length:
            continue
        sequence = _window(index, name, start, strand)
        if sequence is not None:
            add("promoter", start, strand, sequence)
    n_promoters = len(rows)
    if n_promoters < 100:
        raise DataError(f"promoters-chr20: only {n_promoters} promoter windows without unknown bases")
    taken = np.array([row["start"] for row in rows], dtype=np.int64)
    sites = tss["position"].to_numpy(np.int64)
    rng = np.random.default_rng(SEED)
    for _ in range(200 * n_promoters):
        if len(rows) == 2 * n_promoters:
            break
        start = int(rng.integers(0, length - 2 * FLANK))
        strand = "+" if rng.random() < 0.5 else "-"
        centre = start + FLANK
        if np.abs(sites - centre).min() <= MIN_DISTANCE or np.abs(taken - start).min() < 2 * FLANK:
            continue
        sequence = _window(index, name, start, strand)
        if sequence is None:
            continue
        add("background", start, strand, sequence)
        taken = np.append(taken, start)
    else:
        raise DataError("promoters-chr20: could not draw as many background windows as promoters")
    meta = pd.DataFrame(rows)
    write_fasta(out_dir / "sequences.fa", records)
    write_table(out_dir / "meta.tsv", meta.set_index("id"))
    bed = meta.sort_values("start")[["chrom", "start", "end", "id"]]
    bed.to_csv(out_dir / "task_regions.bed", sep="\t", header=False, index=False)


RECIPE = AptRecipe(
    name="promoters-chr20",
    description="889 RefSeq promoters vs 889 background windows of 200 bases on human chr20 (GRCh37), label column "
                "label; task_regions.bed keeps them out of pre-training",
    modality="dna",
    package="chromhmm-example",
    version="1.24+dfsg-1",
    members=(TSS,),
    sha256={TSS: "7fe32396ad9c3c30680a243601c2ffd77bb6cce24f7c3386f21e83e5681031ca"},
    convert=convert,
    data_config={"modality": "dna", "path": "sequences.fa", "metadata": "meta.tsv"},
    labels=["label"],
    requires=(CHROMOSOME,),
)
