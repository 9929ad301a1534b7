"""``biolatent variant-effect``: the masked marginal LLR and the embedding distance against an independent
computation on strings (tiny nt and bert runs), in-silico mutagenesis, and one-line errors that write nothing."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from biolatent.data.sequence import CLS_ID, MASK_ID, SPECIAL_TOKENS

KMERS = ["".join(p) for p in itertools.product("ACGT", repeat=6)]
NT_VOCAB = [*SPECIAL_TOKENS, *KMERS, "A", "C", "G", "T", "N"]
BERT_VOCAB = [*SPECIAL_TOKENS, *KMERS]


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("genome")
    rng = random.Random(3)
    contigs = {"chr1": "".join(rng.choice("ACGT") for _ in range(200)),
               "chr2": "".join(rng.choice("ACGT") for _ in range(31))}
    (folder / "ref.fa").write_text("".join(f">{name}\n{seq}\n" for name, seq in contigs.items()))
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for chrom, pos in [("chr1", 1), ("chr1", 7), ("chr1", 100), ("chr1", 103), ("chr1", 200), ("chr2", 16)]:
        ref = contigs[chrom][pos - 1]
        alts = ",".join(b for b in "ACGT" if b != ref)
        lines.append(f"{chrom}\t{pos}\tv{chrom}_{pos}\t{ref}\t{alts}\t.\t.\t.")
    pair = contigs["chr1"][49:51]
    lines.append(f"chr1\t50\tdbl\t{pair}\t{'AC' if pair != 'AC' else 'GT'}\t.\t.\t.")
    lines.append(f"chr1\t60\tdel\t{contigs['chr1'][59:62]}\t{contigs['chr1'][59]}\t.\t.\t.")
    (folder / "v.vcf").write_text("\n".join(lines) + "\n")
    return folder / "ref.fa", folder / "v.vcf", contigs


@pytest.fixture(scope="module")
def runs(tmp_path_factory, dna_files) -> dict[str, Path]:
    """Tiny mlm runs (40-base windows) of both encoders, trained for one epoch."""
    from biolatent.build import load_config
    from biolatent.workflows.pretrain import pretrain

    out = {}
    for name in ("nt", "bert"):
        folder = tmp_path_factory.mktemp(name)
        config = load_config({
            "data": {"modality": "dna", "path": str(dna_files[0]), "kmer": 6},
            "method": {"name": "mlm"},
            "model": {"name": name, "hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32},
            "train": {"epochs": 1, "batch_size": 40, "seed": 0},
        })
        pretrain(config, folder / "run", progress=False, say=lambda _: None)
        out[name] = folder / "run"
    return out


def _oracle(method, name: str, contig: str, pos: int, ref: str, alt: str, width: int) -> tuple[float, float]:
    """The LLR and embedding distance computed on strings: window, tokens, mask, log-softmax in numpy."""
    start = min(max(pos - 1 - width // 2, 0), len(contig) - width) if len(contig) >= width else 0
    window = contig[start : start + width]
    offset = pos - 1 - start
    changed = window[:offset] + alt + window[offset + len(ref) :]
    if name == "nt":
        def tokens_of(seq: str) -> list[tuple[int, str]]:
            out, i = [], 0
            while i < len(seq):
                size = 6 if i + 6 <= len(seq) else 1
                out.append((i, seq[i : i + size]))
                i += size
            return out
        ref_tokens, alt_tokens = tokens_of(window), tokens_of(changed)
        ids = [CLS_ID] + [NT_VOCAB.index(t) for _, t in ref_tokens]
        shift = 1
    else:
        ref_tokens = [(i, window[i : i + 6]) for i in range(len(window) - 5)]
        alt_tokens = [(i, changed[i : i + 6]) for i in range(len(changed) - 5)]
        ids = [BERT_VOCAB.index(t) for _, t in ref_tokens]
        shift = 0
    covered = [j for j, (s, t) in enumerate(ref_tokens) if s <= offset + len(ref) - 1 and offset < s + len(t)]
    masked = list(ids)
    for j in covered:
        masked[j + shift] = MASK_ID
    with torch.no_grad():
        logits = method.logits(torch.tensor([masked]), torch.ones(1, len(masked), dtype=torch.long))[0].double()
    logits = logits.numpy()
    logp = logits - (logits.max(1, keepdims=True) + np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1,
                                                                                            keepdims=True)))
    vocab = NT_VOCAB if name == "nt" else BERT_VOCAB
    llr = sum(logp[j + shift, vocab.index(alt_tokens[j][1])] - logp[j + shift, vocab.index(ref_tokens[j][1])]
              for j in covered)
    from biolatent.data.sequence import encode_bases

    with torch.no_grad():
        pair = torch.tensor(np.stack([encode_bases(window), encode_bases(changed)]))
        embedded = method.embed(pair).double().numpy()
    return float(llr), float(np.linalg.norm(embedded[0] - embedded[1]))


@pytest.mark.parametrize("name", ["nt", "bert"])
def test_scores_match_an_independent_computation(run_cli, runs, genome, tmp_path, name):
    from biolatent.workflows.variant_effect import load_scoring_model

    fasta, vcf, contigs = genome
    out = tmp_path / "out"
    result = run_cli("variant-effect", runs[name], "--fasta", fasta, "--variants", vcf, "--out", out,
                     "--ism", "chr1:98-104")
    assert result.code == 0, result.err
    table = pd.read_csv(out / "variant_effects.tsv", sep="\t")
    assert list(table.columns) == ["#CHROM", "POS", "ID", "REF", "ALT", "score_llr", "score_embedding"]
    assert len(table) == 6 * 3 + 2
    method, width, _ = load_scoring_model(runs[name])
    assert width == 40
    for row in table.itertuples(index=False):
        chrom, pos, ref, alt = row[0], row.POS, row.REF, row.ALT
        if row.ID == "del":  # an indel: no token-wise ratio, a distance
            assert np.isnan(row.score_llr) and row.score_embedding > 0
            continue
        llr, distance = _oracle(method, name, contigs[chrom], pos, ref, alt, width)
        assert row.score_llr == pytest.approx(llr, abs=1e-4), row
        assert row.score_embedding == pytest.approx(distance, abs=1e-4), row
    assert table.score_llr.abs().max() > 1e-3  # the scores are not all zero

    ism = pd.read_csv(out / "ism.tsv", sep="\t")
    assert list(ism.columns) == ["#CHROM", "POS", "REF", "ALT", "score_llr"] and len(ism) == 7 * 3
    assert set(ism.POS) == set(range(98, 105)) and (ism.REF == [contigs["chr1"][p - 1] for p in ism.POS]).all()
    merged = ism.merge(table, on=["POS", "REF", "ALT"], suffixes=("_ism", ""))
    assert len(merged) == 6  # chr1:100 and chr1:103, three alternatives each
    np.testing.assert_allclose(merged.score_llr_ism, merged.score_llr, atol=1e-4)
    assert (out / "ism.png").stat().st_size > 1000
    assert {"variant_effect.json", "provenance.json"} <= {p.name for p in out.iterdir()}


def test_bad_inputs_are_one_line_errors_and_write_nothing(run_cli, runs, genome, tmp_path, tiny_config):
    fasta, vcf, contigs = genome
    out = tmp_path / "out"

    def vcf_with(line: str) -> Path:
        path = tmp_path / "bad.vcf"
        path.write_text(vcf.read_text() + line + "\n")
        return path

    wrong = "A" if contigs["chr1"][9] != "A" else "C"
    run_cli("variant-effect", runs["nt"], "--fasta", fasta, "--variants", vcf_with(f"chr1\t10\tx\t{wrong}\tG"),
            "--out", out).expect_error("REF", "does not match the reference", "chr1:10")
    assert not out.exists()
    run_cli("variant-effect", runs["nt"], "--fasta", fasta, "--variants", vcf_with("chrX\t10\tx\tA\tG"),
            "--out", out).expect_error("contig 'chrX' is not in")
    assert not out.exists()
    run_cli("variant-effect", runs["nt"], "--fasta", fasta, "--variants", vcf_with("chr2\t31\tx\tAA\tG"),
            "--out", out).expect_error("beyond the end of chr2")
    run_cli("variant-effect", runs["nt"], "--fasta", fasta, "--variants", vcf, "--ism", "chr1:50-20",
            "--out", out).expect_error("--ism")
    run_cli("variant-effect", runs["nt"], "--fasta", fasta, "--out", out).expect_error("--variants", "--ism")
    assert not out.exists()
    other = tmp_path / "vae"
    assert run_cli("pretrain", tiny_config("counts", "vae"), "--out", other, "--quiet").code == 0
    run_cli("variant-effect", other, "--fasta", fasta, "--variants", vcf, "--out", out).expect_error(
        "masked DNA language model")
    assert not out.exists()


def test_window_at_contig_edges_and_short_contigs():
    from biolatent.variant_scores import alt_window, window_start

    assert window_start(0, 200, 40) == 0 and window_start(199, 200, 40) == 160 and window_start(100, 200, 40) == 80
    assert window_start(15, 31, 40) == 0  # a contig shorter than the window: the whole contig
    contig = "AAAACCCCGGGGTTTT"
    assert alt_window(contig, 0, 8, 2, "AA", "T") == "AATCCCCG"  # a deletion refills the right flank
    assert alt_window(contig, 0, 8, 2, "A", "GGG") == "AAGGGACC"  # an insertion keeps the window length


def test_an_indexed_and_a_gzip_reference_give_the_same_scores(run_cli, runs, genome, tmp_path):
    """A plain FASTA is read through its index window by window, a gzip one whole: the same table."""
    import gzip

    fasta, vcf, _ = genome
    packed = tmp_path / "ref.fa.gz"
    packed.write_bytes(gzip.compress(fasta.read_bytes()))
    tables = []
    for reference, out in ((fasta, tmp_path / "plain"), (packed, tmp_path / "gz")):
        result = run_cli("variant-effect", runs["nt"], "--fasta", reference, "--variants", vcf, "--out", out)
        assert result.code == 0, result.err
        tables.append(pd.read_csv(out / "variant_effects.tsv", sep="\t"))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    run_cli("variant-effect", runs["nt"], "--fasta", tmp_path / "absent.fa", "--variants", vcf, "--out",
            tmp_path / "x").expect_error("FASTA file not found")
