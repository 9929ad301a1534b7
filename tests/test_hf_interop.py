"""``biolatent export --format hf`` and ``model: {from_pretrained: DIR}``: transformers loads the exported folder
(no remote code) and embeds identically; third-party BERT / ESM folders initialise a run; bad folders are one-line
errors."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from biolatent.io.fasta import read_fasta

SIZES = {"hidden_size": 32, "layers": 2, "heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def fasta(tmp_path_factory) -> tuple[Path, Path]:
    """Sequences of 30-60 bases with a few N's (unequal lengths: padding is exercised)."""
    folder = tmp_path_factory.mktemp("seqs")
    rng = random.Random(0)
    lines, meta = [], ["id\tlabel"]
    for i in range(24):
        seq = "".join(rng.choice("ACGT" if rng.random() < 0.95 else "ACGTN") for _ in range(rng.randint(30, 60)))
        lines += [f">s{i}", seq]
        meta.append(f"s{i}\t{i % 2}")
    (folder / "s.fa").write_text("\n".join(lines) + "\n")
    (folder / "m.tsv").write_text("\n".join(meta) + "\n")
    return folder / "s.fa", folder / "m.tsv"


def _config(path: Path, fasta, model: dict, epochs: int = 1, method: str = "mlm") -> Path:
    path.write_text(yaml.safe_dump({
        "data": {"modality": "dna", "path": str(fasta[0]), "metadata": str(fasta[1]), "kmer": 6},
        "method": {"name": method}, "model": model, "train": {"epochs": epochs, "batch_size": 8, "seed": 0},
    }))
    return path


def _pooled(hidden: torch.Tensor, mask: torch.Tensor, skip_first: bool) -> np.ndarray:
    mask = mask.clone()
    if skip_first:
        mask[:, 0] = 0
    return ((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)).numpy()


def _hf_inputs(tokenizer, sequences: list[str], name: str) -> dict:
    if name == "nt":
        return tokenizer(sequences, padding=True, return_tensors="pt")
    texts = [" ".join(s[i : i + 6] for i in range(len(s) - 5)) for s in sequences]  # DNABERT's input convention
    return tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)


@pytest.mark.parametrize(("name", "hf_class"), [("nt", "EsmForMaskedLM"), ("bert", "BertForMaskedLM")])
def test_export_loads_in_transformers_and_embeds_identically(run_cli, fasta, tmp_path, name, hf_class):
    import anndata
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from biolatent.build import build_method
    from biolatent.train.checkpoint import load_weights
    from biolatent.workflows.common import load_data_info, load_run_config

    run, out = tmp_path / "run", tmp_path / "hf"
    assert run_cli("pretrain", _config(tmp_path / "c.yaml", fasta, {"name": name, **SIZES}), "--out", run,
                   "--quiet").code == 0
    result = run_cli("export", run, "--format", "hf", "--out", out)
    assert result.code == 0, result.err
    assert json.loads((out / "config.json").read_text())["architectures"] == [hf_class]
    assert "auto_map" not in json.loads((out / "config.json").read_text())  # no remote code
    model = AutoModelForMaskedLM.from_pretrained(out, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert type(model).__name__ == hf_class

    sequences = [s for _, s in read_fasta(fasta[0])]
    inputs = _hf_inputs(tokenizer, sequences, name)
    with torch.no_grad():
        hidden = model.base_model(**inputs).last_hidden_state
        hf_logits = model(**inputs).logits
    theirs = _pooled(hidden, inputs["attention_mask"], skip_first=name == "nt")
    assert run_cli("embed", run).code == 0
    ours = anndata.read_h5ad(run / "embeddings.h5ad").obsm["X_biolatent"]
    assert np.abs(ours - theirs).max() < 1e-4

    # the masked-LM head too: the same logits on the same tokens
    method = build_method(load_run_config(run), load_data_info(run))
    load_weights(run / "model.safetensors", method)
    method.eval()
    from biolatent.data.sequence import encode_bases, pad_bases

    bases = pad_bases([encode_bases(s) for s in sequences], max(map(len, sequences)))
    tokens, mask = method.tokenize(bases)
    assert torch.equal(tokens[:, : inputs["input_ids"].shape[1]] * mask[:, : inputs["input_ids"].shape[1]],
                       inputs["input_ids"] * inputs["attention_mask"])
    with torch.no_grad():
        ours_logits = method.logits(tokens, mask)
    keep = mask.bool()
    assert (ours_logits[keep] - hf_logits[keep]).abs().max().item() < 1e-4

    # the round trip: the exported folder initialises a new run with the same encoder
    config = _config(tmp_path / "again.yaml", fasta, {"from_pretrained": str(out), "pooling": "mean"})
    from biolatent.build import load_config
    from biolatent.models.huggingface import load_pretrained

    cfg = load_config(config)
    assert cfg.model.name == name and cfg.model.model_extra["hidden_size"] == 32
    fresh = build_method(cfg, load_data_info(run)).eval()
    assert load_pretrained(fresh.encoder, out, head=fresh.head) == ["encoder", "masked-LM head"]
    with torch.no_grad():
        torch.testing.assert_close(fresh.embed(bases), method.embed(bases), atol=1e-6, rtol=1e-6)


KMERS = ["".join(p) for p in itertools.product("ACGT", repeat=6)]


def _third_party_esm(folder: Path) -> None:
    """A folder as the published Nucleotide Transformer v1 lays it out: learned positions numbered after the
    padding id 1, the vocabulary <unk> <pad> <mask> <cls> <eos> <bos>, 6-mers, then A T C G N."""
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    vocab = ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>", *KMERS, "A", "T", "C", "G", "N"]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = EsmConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=1002, position_embedding_type="absolute",
                       pad_token_id=1, mask_token_id=2, emb_layer_norm_before=False, token_dropout=False,
                       tie_word_embeddings=False, architectures=["EsmForMaskedLM"])
    torch.manual_seed(1)
    EsmForMaskedLM(config).save_pretrained(folder)
    EsmTokenizer(vocab_file=str(folder / "vocab.txt"), eos_token=None).save_pretrained(folder)


def _third_party_bert(folder: Path) -> None:
    """A DNABERT-like folder: k-mers in another order than biolatent's, 512 positions, 2 token types."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    kmers = sorted(KMERS, key=lambda k: k[::-1])
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *kmers]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=512, type_vocab_size=2,
                        tie_word_embeddings=False, architectures=["BertForMaskedLM"])
    torch.manual_seed(2)
    BertForMaskedLM(config).save_pretrained(folder)
    BertTokenizer(vocab=str(folder / "vocab.txt"), do_lower_case=False).save_pretrained(folder)


@pytest.mark.parametrize(("name", "make"), [("nt", _third_party_esm), ("bert", _third_party_bert)])
def test_third_party_folder_initialises_a_run(run_cli, fasta, tmp_path, name, make):
    import anndata
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = tmp_path / "hf"
    make(folder)
    run = tmp_path / "run"
    config = _config(tmp_path / "c.yaml", fasta, {"from_pretrained": str(folder)})
    # the initial weights, seen through embed: one epoch at a learning rate of ~0 leaves them as loaded
    text = yaml.safe_load(config.read_text())
    text["train"]["lr"] = 1e-30
    config.write_text(yaml.safe_dump(text))
    result = run_cli("pretrain", config, "--out", run, "--quiet")
    assert result.code == 0, result.err
    assert "initialised the encoder and masked-LM head" in result.err
    resolved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert resolved["name"] == name and resolved["heads"] == 4 and resolved["from_pretrained"] == str(folder)
    assert run_cli("embed", run).code == 0
    ours = anndata.read_h5ad(run / "embeddings.h5ad").obsm["X_biolatent"]

    model = AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    inputs = _hf_inputs(tokenizer, [s for _, s in read_fasta(fasta[0])], name)
    with torch.no_grad():
        hidden = model.base_model(**inputs).last_hidden_state
    theirs = _pooled(hidden, inputs["attention_mask"], skip_first=name == "nt")
    assert np.abs(ours - theirs).max() < 1e-4


def test_bad_pretrained_folders_are_one_line_errors(run_cli, fasta, tmp_path):
    out = tmp_path / "run"

    def attempt(folder: Path, *fragments: str, model: dict | None = None) -> None:
        config = _config(tmp_path / "c.yaml", fasta, model or {"from_pretrained": str(folder)})
        result = run_cli("pretrain", config, "--out", out, "--quiet")
        result.expect_error(*fragments)
        assert not out.exists()

    attempt(tmp_path / "missing", "model.from_pretrained", "not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    attempt(empty, "no config.json")
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    attempt(gpt, "unsupported architecture 'gpt2'")
    esm = tmp_path / "esm"
    _third_party_esm(esm)
    attempt(esm, "model.hidden_size is set by the pretrained folder",
            model={"from_pretrained": str(esm), "hidden_size": 64})
    (esm / "model.safetensors").write_bytes(b"not weights")
    attempt(esm, "cannot load the weights")
    text = yaml.safe_load((tmp_path / "c.yaml").read_text())
    text["data"]["kmer"] = 3
    (tmp_path / "k.yaml").write_text(yaml.safe_dump({**text, "model": {"from_pretrained": str(esm)}}))
    run_cli("pretrain", tmp_path / "k.yaml", "--out", out, "--quiet").expect_error("data.kmer is 3", "6-mers")


def test_export_refuses_other_encoders(run_cli, tiny_config, tmp_path):
    run = tmp_path / "run"
    assert run_cli("pretrain", tiny_config("counts", "vae"), "--out", run, "--quiet").code == 0
    run_cli("export", run, "--out", tmp_path / "hf").expect_error("no Hugging Face format")
    assert not (tmp_path / "hf").exists()
