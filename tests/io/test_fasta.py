"""FASTA reading and writing: records, gzip, and every bad input named in the error."""

from __future__ import annotations

import gzip

import pytest

from biolatent.errors import DataError
from biolatent.io.fasta import read_fasta, write_fasta


def test_reads_records_multiline_and_first_word_ids(tmp_path):
    path = tmp_path / "a.fa"
    path.write_text(">s1 some description\nACGT\nacgn\n\n>s2\nTTTT\n")
    assert read_fasta(path) == [("s1", "ACGTacgn"), ("s2", "TTTT")]


def test_round_trip_plain_and_gzip(tmp_path):
    records = [("r1", "ACGT" * 30), ("r2", "NNAC")]
    plain = write_fasta(tmp_path / "x.fa", records)
    packed = write_fasta(tmp_path / "x.fa.gz", records)
    assert read_fasta(plain) == records
    assert read_fasta(packed) == records
    assert gzip.decompress(packed.read_bytes()).startswith(b">r1\n")
    assert max(len(line) for line in plain.read_text().splitlines()) == 80
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("ACGT\n>s1\nACGT\n", "line 1: expected a '>' header"),
        (">s1\nACGT\n>s2\n", "record 's2' has an empty sequence (truncated file?)"),
        (">s1\nACGT\n>s1\nAAAA\n", "duplicate record id 's1' (lines 1 and 3)"),
        (">s1\nACGT\n>s2\nACXT\n", "record 's2': character 'X' at position 3"),
        (">\nACGT\n", "line 1: header without an id"),
    ],
)
def test_bad_fasta_raises_data_error_with_where(tmp_path, content, message):
    path = tmp_path / "bad.fa"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_fasta(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_and_corrupt_gzip(tmp_path):
    with pytest.raises(DataError, match="FASTA file not found"):
        read_fasta(tmp_path / "nope.fa")
    broken = tmp_path / "b.fa.gz"
    broken.write_bytes(gzip.compress(b">s1\nACGT\n" * 50)[:20])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_fasta(broken)


def test_accepts_exactly_the_alphabet_the_tokenizer_encodes(tmp_path):
    """io checks bases itself (it sits below data); its alphabet must stay the one data.sequence encodes."""
    from biolatent.data.sequence import encode_bases

    for code in range(256):
        char = chr(code)
        if char in "\n\r>" or char.isspace():
            continue
        path = tmp_path / "one.fa"
        path.write_text(f">s1\nAC{char}T\n")
        try:
            encode_bases(char)
            encodable = True
        except ValueError:
            encodable = False
        if encodable:
            assert read_fasta(path) == [("s1", f"AC{char}T")]
        else:
            with pytest.raises(DataError, match="at position 3 is not one of A, C, G, T, N"):
                read_fasta(path)
