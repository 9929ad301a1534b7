"""The Nucleotide-Transformer-style encoder: non-overlapping 6-mer tokens (checked against an independent
string computation), forward shapes, positions, sizes, masking of single tokens."""

import itertools
import random

import pytest
import torch

from biolatent.data.samples import DataInfo
from biolatent.data.sequence import (
    CLS_ID,
    PAD_BASE,
    PAD_ID,
    SPECIAL_TOKENS,
    NonOverlappingKmerTokenizer,
    encode_bases,
    pad_bases,
)
from biolatent.methods.mlm import MaskedKmerModel, span_mask
from biolatent.models.nucleotide_transformer import NucleotideTransformerEncoder, parameter_count

SMALL = {"hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32}
KMERS = ["".join(p) for p in itertools.product("ACGT", repeat=6)]  # lexicographic: AAAAAA, AAAAAC, ...
VOCAB = [*SPECIAL_TOKENS, *KMERS, "A", "C", "G", "T", "N"]


def reference_tokens(sequence: str) -> list[str]:
    """Greedy longest match from the left over the vocabulary: the published tokenizer's rule, on strings."""
    out, i = [], 0
    while i < len(sequence):
        if i + 6 <= len(sequence) and sequence[i : i + 6] in KMERS:
            out.append(sequence[i : i + 6])
            i += 6
        else:
            out.append(sequence[i])
            i += 1
    return out


def test_tokens_match_an_independent_string_tokenisation() -> None:
    rng = random.Random(0)
    sequences = []
    for _ in range(40):
        length = rng.randint(1, 50)
        sequences.append("".join(rng.choice("ACGT" if rng.random() < 0.9 else "ACGTN") for _ in range(length)))
    sequences += ["NNNN", "ACGTACNACGTACGTAC", "A" * 12]
    tokenizer = NonOverlappingKmerTokenizer(6)
    assert tokenizer.vocab_size == len(VOCAB) and tokenizer.tokens() == VOCAB
    tokens, mask = tokenizer(pad_bases([encode_bases(s) for s in sequences], 50))
    _, starts, sizes = tokenizer.spans(pad_bases([encode_bases(s) for s in sequences], 50))
    for row, sequence in enumerate(sequences):
        expected = reference_tokens(sequence)
        n = len(expected)
        assert [VOCAB[i] for i in tokens[row, :n].tolist()] == expected, sequence
        assert mask[row, :n].all() and not mask[row, n:].any()
        assert (tokens[row, n:] == PAD_ID).all()
        rebuilt = "".join(sequence[s : s + z] for s, z in zip(starts[row, :n].tolist(), sizes[row, :n].tolist(),
                                                               strict=True))
        assert rebuilt == sequence
    assert tokens.shape[1] == max(len(reference_tokens(s)) for s in sequences)


def test_kmer_ids_and_decode() -> None:
    tokenizer = NonOverlappingKmerTokenizer(6)
    assert tokenizer.kmer_id("AAAAAA") == 5 and tokenizer.kmer_id("TTTTTT") == 5 + 4**6 - 1
    assert tokenizer.kmer_id("N") == tokenizer.vocab_size - 1
    assert all(tokenizer.decode(tokenizer.kmer_id(t)) == t for t in ("ACGTAC", "G", "N"))
    with pytest.raises(ValueError):
        tokenizer.kmer_id("ACGNAC")


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_shapes_and_padding(positions: str) -> None:
    torch.manual_seed(0)
    enc = NucleotideTransformerEncoder.from_data(DataInfo("dna", max_length=40, kmer=6), positions=positions,
                                                 **SMALL).eval()
    assert enc.out_dim == 16 and enc.esm.config.vocab_size == 5 + 4**6 + 5
    assert enc.esm.config.position_embedding_type == ("rotary" if positions == "rotary" else "absolute")
    x = torch.randint(0, 4, (3, 40))
    assert enc(x).shape == (3, 16)
    tokens, mask = enc.tokenize(x)
    assert tokens.shape == (3, 1 + 6 + 4) and bool((tokens[:, 0] == CLS_ID).all())  # [CLS], 6 6-mers, 4 singles
    assert enc.forward_tokens(tokens, mask).shape == (3, 11, 16)
    padded = x.clone()
    padded[:, 24:] = PAD_BASE
    with torch.no_grad():
        torch.testing.assert_close(enc(padded), enc(x[:, :24]), atol=1e-5, rtol=1e-5)


def test_rotary_positions_distinguish_order() -> None:
    torch.manual_seed(0)
    enc = NucleotideTransformerEncoder(6, 24, **SMALL).eval()
    x = torch.tensor([list(encode_bases("AAAAAACCCCCCGGGGGGTTTTTT")), list(encode_bases("TTTTTTGGGGGGCCCCCCAAAAAA"))])
    tokens, mask = enc.tokenize(x)
    with torch.no_grad():
        hidden = enc.forward_tokens(tokens, mask)
    # the same 6-mer at another position gets another representation (a bag of tokens would not)
    assert not torch.allclose(hidden[0, 1], hidden[1, 4], atol=1e-4)


def test_sizes_reach_100m_parameters() -> None:
    big = {"hidden_size": 1024, "layers": 8, "heads": 16, "intermediate_size": 4096}
    n = parameter_count(**big)
    # per layer 4 h^2 + 2 h i + biases and norms; token embeddings 4106 x h; final norm
    h, i, v = 1024, 4096, 5 + 4**6 + 5
    per_layer = 4 * h * h + 4 * h + 2 * h * i + i + h + 4 * h
    assert n == 8 * per_layer + v * h + 2 * h
    assert n > 100_000_000
    assert parameter_count(**SMALL) < 100_000


def test_mlm_masks_single_tokens() -> None:
    torch.manual_seed(0)
    method = MaskedKmerModel(NucleotideTransformerEncoder(6, 600, **SMALL))
    assert method.k == 1
    bases = torch.randint(0, 4, (16, 600))
    tokens, attention = method.tokenize(bases)
    mask = span_mask(tokens, attention, method.k, 0.15)
    assert not mask[:, 0].any()  # never [CLS]
    assert abs(mask[:, 1:].float().mean().item() - 0.15) < 0.03
    out = method({"x": bases})
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()
    assert method.encoder.esm.embeddings.word_embeddings.weight.grad is not None


def test_mlm_pretrain_embed_through_the_cli(run_cli, dna_files, tmp_path) -> None:
    import json

    import anndata
    import numpy as np
    import yaml

    config = tmp_path / "nt.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"modality": "dna", "path": str(dna_files[0]), "metadata": str(dna_files[1])},
        "method": {"name": "mlm"},
        "model": {"name": "nt", "hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64},
        "train": {"epochs": 2, "batch_size": 32, "seed": 0, "lr": 0.003},
    }))
    run = tmp_path / "run"
    result = run_cli("pretrain", config, "--out", run, "--quiet")
    assert result.code == 0, result.err
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["model"]["name"] == "nt" and resolved["model"]["positions"] == "rotary"
    history = [line.split("\t") for line in (run / "history.tsv").read_text().splitlines()]
    losses = [float(row[history[0].index("loss")]) for row in history[1:]]
    vocab = 5 + 4**6 + 5
    assert losses[0] < np.log(vocab) + 0.5 and losses[-1] < losses[0]  # learns from a near-uniform start
    assert run_cli("embed", run).code == 0
    adata = anndata.read_h5ad(run / "embeddings.h5ad")
    assert adata.obsm["X_biolatent"].shape == (80, 32)
    assert json.loads((run / "metrics.json").read_text())["embed"]["n_samples"] == 80
