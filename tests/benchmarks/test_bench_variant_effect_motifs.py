"""The motif truth of ``benchmarks/variant_effect_motifs.py``: destroying substitutions remove a consensus match,
neutral ones lie at least 10 bases from every match and change none, in equal numbers per peak; the 8-mer count
baseline is a log-frequency difference."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import variant_effect_motifs as bench


def test_truth_destroys_or_keeps_the_motif() -> None:
    rng = np.random.default_rng(0)
    background = "".join(rng.choice(list("ACGT"), size=200))
    peaks = {"p1": background[:50] + "ATGCAAAT" + background[58:], "p2": background[:120] + "ATTTGCAT" +
             background[128:], "none": "C" * 200}
    rows = bench.build_truth(peaks, "oct4", per_motif=3, rng=rng)
    assert {r["peak"] for r in rows} == {"p1", "p2"}
    for peak in ("p1", "p2"):
        mine = [r for r in rows if r["peak"] == peak]
        assert sum(r["destroys"] for r in mine) == sum(1 - r["destroys"] for r in mine) > 0
        spans = bench.motif_spans(peaks[peak], "oct4")
        for r in mine:
            seq = peaks[peak]
            assert seq[r["pos"] - 1] == r["ref"] != r["alt"]
            changed = seq[: r["pos"] - 1] + r["alt"] + seq[r["pos"] :]
            if r["destroys"]:
                assert bench.n_matches(changed, "oct4") < len(spans)
            else:
                assert bench.n_matches(changed, "oct4") == len(spans)
                assert all(r["pos"] - 1 < s - 10 or r["pos"] - 1 >= e + 10 for s, e, _ in spans)


def test_degenerate_base_is_never_a_destroying_position() -> None:
    assert bench.fixed_positions("TGCTGA[CG]TCA") == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert bench.motif_spans("AATGCTGACTCAGCAA", "mafk") == [(2, 12, "TGCTGA[CG]TCA"), (5, 15, "TGA[CG]TCAGCA")]


def test_kmer_score() -> None:
    logf = bench.kmer_model(["AAAAAAAAAA", "AAAAAAAAAC"])
    seq = "AAAAAAAAAA"
    score = bench.kmer_score(logf, seq, 9, "C")  # only the last 8-mer holds base 9
    assert score == np.log((5 + 0.5) / 6) - np.log((1 + 0.5) / 6)
