"""Genome windows: a FASTA tiled into windows read from the file, checked against slicing the whole sequences."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from biolatent.data.genome import genome_windows, overlapping
from biolatent.data.sequence import encode_bases
from biolatent.errors import DataError
from biolatent.io.fasta import write_fasta


@pytest.fixture
def genome(tmp_path):
    rng = np.random.default_rng(0)
    sequences = {"chr1": "".join(rng.choice(list("ACGTacgt"), size=1000)),
                 "chr2": "".join(rng.choice(list("ACGT"), size=333)),
                 "chrM": "ACGT" * 5}
    chr1 = list(sequences["chr1"])
    chr1[100:130] = "N" * 30  # one window of 50 at stride 25 holds 30 N, its neighbours 25 and 5
    chr1[500] = "R"  # an IUPAC code: read as N
    sequences["chr1"] = "".join(chr1)
    path = write_fasta(tmp_path / "genome.fa", list(sequences.items()), width=70)
    return path, sequences


def expected_codes(sequence: str, start: int, length: int) -> np.ndarray:
    return encode_bases(sequence[start : start + length].upper().replace("R", "N"))


def test_windows_equal_slices_of_the_sequences(genome):
    path, sequences = genome
    windows, obs, counts = genome_windows(path, 50, 25, max_n_fraction=0.5)
    # chr1: 39 windows, chr2: 12; chrM is shorter than a window; the 30-N window (start 100) is dropped
    assert counts == {"windows": 51, "too_many_n": 1, "excluded": 0, "kept": 50}
    assert windows.shape == (50, 50) and len(obs) == 50 and obs.index[0] == "chr1:1-50"
    assert not ((obs.chrom == "chr1") & (obs.start == 100)).any()
    x = windows[torch.arange(len(windows))]
    for row, (chrom, start) in enumerate(zip(obs.chrom, obs.start, strict=True)):
        np.testing.assert_array_equal(x[row].numpy(), expected_codes(sequences[chrom], int(start), 50))
    np.testing.assert_array_equal(windows[3].numpy(), x[3].numpy())
    np.testing.assert_array_equal(windows[2:5].numpy(), x[2:5].numpy())
    subset = windows.take(np.array([4, 1]))
    np.testing.assert_array_equal(subset[0:2].numpy(), x[[4, 1]].numpy())
    copy = pickle.loads(pickle.dumps(windows))  # DataLoader workers reopen the file
    np.testing.assert_array_equal(copy[torch.tensor([7, 8])].numpy(), x[[7, 8]].numpy())


def test_n_fraction_is_a_strict_bound(genome):
    path, _ = genome
    _, obs, counts = genome_windows(path, 50, 25)
    n_starts = {75, 100, 125, 475, 500}  # every window holding an N (the run of 30 or the R at 500)
    assert counts["too_many_n"] == len(n_starts)
    assert not obs[(obs.chrom == "chr1")].start.isin(n_starts).any()


def test_excluded_regions_match_a_brute_force_overlap(genome, tmp_path):
    path, _ = genome
    bed = tmp_path / "held_out.bed"
    bed.write_text("track name=x\n1\t240\t260\n1\t600\t601\nchr2\t0\t1\nchrX\t0\t100\n")  # '1' is chr1
    _windows, obs, counts = genome_windows(path, 50, 25, max_n_fraction=1.0, exclude=bed)
    regions = {"chr1": [(240, 260), (600, 601)], "chr2": [(0, 1)]}
    everything = genome_windows(path, 50, 25, max_n_fraction=1.0)[1]
    hits = [any(s < b and s + 50 > a for a, b in regions.get(c, [])) for c, s in zip(everything.chrom,
                                                                                     everything.start, strict=True)]
    assert counts["excluded"] == sum(hits) == 6  # chr1 starts 200, 225, 250 and 575, 600; chr2 0
    assert set(obs.index) == set(everything.index[~np.array(hits)])


def test_overlap_of_nested_regions():
    regions = np.array([[0, 100], [10, 20], [150, 160]])
    starts = np.array([0, 50, 99, 100, 120, 140, 145, 160])  # windows [s, s + 10), regions half-open
    assert overlapping(starts, 10, regions).tolist() == [True, True, True, False, False, False, True, False]


def test_bad_input_is_a_one_line_error(genome, tmp_path):
    path, _ = genome
    bed = tmp_path / "other.bed"
    bed.write_text("chr9\t0\t10\n")
    with pytest.raises(DataError, match="no chromosome of"):
        genome_windows(path, 50, exclude=bed)
    bed.write_text("chr1\t10\n")
    with pytest.raises(DataError, match="expected 'chrom start end'"):
        genome_windows(path, 50, exclude=bed)
    with pytest.raises(DataError, match="no window of 5000 bases"):
        genome_windows(path, 5000)
    odd = tmp_path / "odd.fa"
    odd.write_text(">a\nACGTXACGTACGT\n")
    with pytest.raises(DataError, match="'X' at base 5"):
        genome_windows(odd, 8)


def test_a_file_changed_under_the_windows_is_refused(genome):
    path, _ = genome
    windows, _, _ = genome_windows(path, 50)
    path.write_text(path.read_text() + ">extra\nACGT\n")
    with pytest.raises(DataError, match="modified during the run"):
        windows[0]
