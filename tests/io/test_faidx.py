"""Indexed FASTA: the samtools .fai of a file and reads through it, checked against reading the whole file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from biolatent.errors import DataError
from biolatent.io.faidx import FastaIndex
from biolatent.io.fasta import read_fasta, write_fasta


@pytest.fixture
def genome(tmp_path):
    rng = np.random.default_rng(0)
    records = [(f"chr{i}", "".join(rng.choice(list("ACGTacgtN"), size=n))) for i, n in enumerate((1, 59, 60, 61,
                                                                                                       250), 1)]
    path = write_fasta(tmp_path / "g.fa", records, width=60)
    return path, dict(records)


def test_index_is_samtools_fai_by_hand(tmp_path):
    path = tmp_path / "two.fa"
    path.write_bytes(b">a desc\nACGT\nAC\n>b\nGGGG\nGGGG\nG\n")
    index = FastaIndex.build(path)
    # name, length, offset of the first base, bases per line, bytes per line (as `samtools faidx` writes them)
    assert [r.fai_line() for r in index.records] == ["a\t6\t8\t4\t5", "b\t9\t19\t4\t5"]


def test_every_range_equals_the_whole_file_read(genome):
    path, records = genome
    index = FastaIndex.open(path)
    assert [(r.name, r.length) for r in index.records] == [(k, len(v)) for k, v in records.items()]
    rng = np.random.default_rng(1)
    for name, sequence in records.items():
        for _ in range(30):
            start = int(rng.integers(0, len(sequence)))
            end = int(rng.integers(start, len(sequence) + 1))
            assert index.fetch(name, start, end) == sequence[start:end]
        assert index.fetch(name, 0, len(sequence)) == sequence
    assert b"".join(raw.tobytes() for _, raw in index.base_chunks("chr5", chunk=7)).decode() == records["chr5"]


def test_written_index_is_read_back_and_a_stale_one_refused(genome):
    path, _records = genome
    fai = FastaIndex.build(path).write()
    assert FastaIndex.open(path).records == FastaIndex.build(path).records
    path.write_text(">chr1\nAC\n")
    with pytest.raises(DataError, match="stale index"):
        FastaIndex.open(path)
    fai.unlink()
    assert FastaIndex.open(path).records[0].length == 2


@pytest.mark.parametrize("text, message", [
    (">a\nACGT\nACGTA\n", "lines of different lengths"),
    (">a\nACGT\nAC\nACGT\n", "lines of different lengths"),
    (">a\nACGT\n\nACGT\n", "lines of different lengths"),
    (">a\nACGT\n>a\nAC\n", "duplicate record id"),
    (">a\n>b\nAC\n", "empty sequence"),
    ("ACGT\n", "expected a '>' header"),
    ("> \nAC\n", "header without an id"),
])
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.fa"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        FastaIndex.open(path)


def test_gzip_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(b">a\nACGT\n"))
    with pytest.raises(DataError, match=r"gunzip -k g\.fa\.gz"):
        FastaIndex.open(path)
    with pytest.raises(DataError, match="not found"):
        FastaIndex.open(tmp_path / "absent.fa")


def test_ranges_outside_a_sequence_are_refused(genome):
    index = FastaIndex.open(genome[0])
    with pytest.raises(DataError, match="outside chr2"):
        index.fetch("chr2", 50, 60)
    with pytest.raises(DataError, match="no sequence 'chrZ'"):
        index.fetch("chrZ", 0, 1)
    assert read_fasta(genome[0])[1][1][50:59] == index.fetch("chr2", 50, 59)


def test_indexed_sequences_slice_like_strings(genome, tmp_path):
    from biolatent.io.faidx import indexed_sequences

    path, records = genome
    lazy = indexed_sequences(path)
    assert list(lazy) == list(records)
    for name, sequence in records.items():
        seq = lazy[name]
        assert len(seq) == len(sequence)
        for key in (slice(0, 5), slice(3, 10_000), slice(-7, None), slice(50, 40), slice(None, None)):
            assert seq[key] == sequence[key], (name, key)
        assert seq[0] == sequence[0] and seq[-1] == sequence[-1]
    with pytest.raises(IndexError):
        lazy["chr1"][1]
    odd = tmp_path / "odd.fa"
    odd.write_text(">a\nACGTRACGT\n")
    assert indexed_sequences(odd)["a"][:4] == "ACGT"
    with pytest.raises(DataError, match="'R' at position 5"):
        indexed_sequences(odd)["a"][2:6]
