"""grch37-chr20 (Debian vt-examples) and promoters-chr20 (Debian chromhmm-example + grch37-chr20): the converters on
tiny fixtures (fast) and the real packages (slow, network; skipped when the Debian archive is unreachable)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from biolatent.datasets import RegistryUnreachable
from biolatent.datasets import grch37_chr20 as chromosome
from biolatent.datasets import promoters_chr20 as promoters
from biolatent.errors import DataError
from biolatent.io.faidx import FastaIndex
from biolatent.io.fasta import read_fasta, write_fasta

_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def test_chromosome_convert_checks_the_shipped_index(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    sequence = "".join(rng.choice(list("ACGTN"), size=1000))
    text = ">20\n" + "\n".join(sequence[i : i + 60] for i in range(0, 1000, 60)) + "\n"
    (tmp_path / "20.fa.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "20.fa.gz.fai").write_text("20\t1000\t4\t60\t61\n")
    members = {chromosome.FASTA: tmp_path / "20.fa.gz", chromosome.FAI: tmp_path / "20.fa.gz.fai"}
    monkeypatch.setattr(chromosome, "LENGTH", 1000)
    out = tmp_path / "out"
    out.mkdir()
    chromosome.convert(members, out)
    assert read_fasta(out / "chr20.fa") == [("20", sequence)]
    assert (out / "chr20.fa.fai").read_text() == "20\t1000\t4\t60\t61\n"
    (tmp_path / "20.fa.gz.fai").write_text("20\t1000\t4\t50\t51\n")  # another line width than the file's
    with pytest.raises(DataError, match="differs from the shipped samtools index"):
        chromosome.convert(members, tmp_path)


def _tss_fixture(tmp_path, n_tss: int = 120, length: int = 1_000_000):
    rng = np.random.default_rng(1)
    sequence = "".join(rng.choice(list("ACGT"), size=length))
    folder = tmp_path / "chr"
    folder.mkdir()
    write_fasta(folder / "chr20.fa", [("20", sequence)], width=60)
    positions = np.sort(rng.choice(np.arange(1000, length - 1000), size=n_tss, replace=False))
    strands = rng.choice(["+", "-"], size=n_tss)
    lines = [f"chr20\t{p}\t{s}" for p, s in zip(positions, strands, strict=True)]
    lines += [lines[0], "chr1\t500\t+"]  # a duplicate and another chromosome: both ignored
    (tmp_path / "tss.txt.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return {promoters.TSS: tmp_path / "tss.txt.gz", f"dataset:{promoters.CHROMOSOME}": folder}, sequence


def test_promoter_windows_are_read_on_the_gene_strand(tmp_path):
    members, sequence = _tss_fixture(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    promoters.convert(members, out)
    meta = pd.read_csv(out / "meta.tsv", sep="\t")
    records = dict(read_fasta(out / "sequences.fa"))
    assert meta.label.value_counts().to_dict() == {"promoter": 120, "background": 120}
    assert meta.id.is_unique and set(meta.id) == set(records)
    for row in meta.itertuples():
        window = sequence[row.start : row.end]
        expected = window.translate(_COMPLEMENT)[::-1] if row.strand == "-" else window
        assert records[row.id] == expected and row.end - row.start == 200
    tss = pd.read_csv(members[promoters.TSS], sep="\t", header=None, names=["chrom", "position", "strand"])
    sites = tss[tss.chrom == "chr20"].position.to_numpy()
    background = meta[meta.label == "background"]
    centres = background.start.to_numpy() + 100
    assert (np.abs(centres[:, None] - sites[None, :]).min(axis=1) > promoters.MIN_DISTANCE).all()
    starts = np.sort(meta.start.to_numpy())
    assert (np.diff(np.sort(background.start.to_numpy())) >= 200).all() and starts.size == 240
    bed = pd.read_csv(out / "task_regions.bed", sep="\t", header=None)
    assert len(bed) == 240 and set(bed[3]) == set(meta.id)


def test_too_few_promoters_is_an_error(tmp_path):
    members, _ = _tss_fixture(tmp_path, n_tss=20)
    with pytest.raises(DataError, match="only 20 promoter windows"):
        promoters.convert(members, tmp_path)


@pytest.mark.slow
def test_real_promoter_task_on_chr20():
    from biolatent.data.genome import genome_windows
    from biolatent.datasets import fetch

    try:
        task = fetch("promoters-chr20")
        genome = fetch("grch37-chr20")
    except RegistryUnreachable as exc:
        pytest.skip(f"Debian archive unreachable: {exc}")
    index = FastaIndex.open(genome / "chr20.fa")
    assert [(r.name, r.length) for r in index.records] == [("20", 63_025_520)]
    meta = pd.read_csv(task / "meta.tsv", sep="\t")
    assert meta.label.value_counts().to_dict() == {"promoter": 889, "background": 889}
    gc = meta.groupby("label").gc.mean()
    assert gc["promoter"] > 0.6 and gc["background"] < 0.46  # CpG-island promoters: the coordinates match
    records = dict(read_fasta(task / "sequences.fa"))
    for row in meta.sample(50, random_state=0).itertuples():
        window = index.fetch("20", row.start, row.end).upper()
        assert records[row.id] == (window.translate(_COMPLEMENT)[::-1] if row.strand == "-" else window)
    windows, _obs, counts = genome_windows(genome / "chr20.fa", 200, 1000, exclude=task / "task_regions.bed")
    assert counts["excluded"] > 0 and counts["kept"] + counts["excluded"] + counts["too_many_n"] == counts["windows"]
    assert not windows[np.arange(0, len(windows), 997)].eq(4).any()  # no unknown base in a kept window
