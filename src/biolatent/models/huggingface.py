"""Hugging Face ``transformers`` folders <-> biolatent's DNA language models, without remote code.

``bert`` (DNABERT-style) is ``BertForMaskedLM`` + ``BertTokenizer`` (a vocab.txt of [PAD] [UNK] [CLS] [SEP] [MASK]
and the k-mers; DNABERT's convention: the text is the space-separated overlapping k-mers); ``nt``
(Nucleotide-Transformer-style) is ``EsmForMaskedLM`` + ``EsmTokenizer`` (greedy 6-mers from a plain sequence, as
the published Nucleotide Transformer). The encoders are built on ``BertModel`` / ``EsmModel``, so the weights map
one to one; the masked-LM head (``methods.mlm.masked_token_head``: dense, GELU, LayerNorm, linear) is
``cls.predictions`` / ``lm_head``.

The reverse, ``model: {from_pretrained: DIR}``: the architecture is read from DIR/config.json (``model_type`` bert ->
``bert``, esm -> ``nt``), the weights with ``AutoModelForMaskedLM.from_pretrained(DIR, local_files_only=True)``
(never a download), and the rows of the token embeddings and of the MLM decoder are reordered from DIR/vocab.txt
onto biolatent's token ids (DNABERT's and the Nucleotide Transformer's own vocabularies order tokens differently).
Learned position tables are cut to the positions the data need (ESM numbers positions from its padding id + 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biolatent.data.sequence import SPECIAL_TOKENS
from biolatent.errors import ConfigError, DataError

SUPPORTED = {"bert": "bert", "esm": "nt"}  # Hugging Face model_type -> biolatent encoder
# biolatent's special tokens (ids 0..4) and the names the published vocabularies give them
ALIASES = {"[PAD]": ("[PAD]", "<pad>"), "[UNK]": ("[UNK]", "<unk>"), "[CLS]": ("[CLS]", "<cls>"),
           "[SEP]": ("[SEP]", "<eos>", "</s>"), "[MASK]": ("[MASK]", "<mask>")}
ESM_NAMES = {"[PAD]": "<pad>", "[UNK]": "<unk>", "[CLS]": "<cls>", "[SEP]": "<eos>", "[MASK]": "<mask>"}
# architecture keys of each encoder that a pretrained folder fixes (a config may not set them too)
ARCHITECTURE_KEYS = {"bert": ("hidden_size", "layers", "heads", "intermediate_size"),
                     "nt": ("hidden_size", "layers", "heads", "intermediate_size", "positions", "layer_norm_eps")}
EXPORT_NOTE = "biolatent.json"


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars and no notes from transformers (e.g. about weights of heads biolatent does not use)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _fail(folder: Path, message: str) -> ConfigError:
    return ConfigError(f"model.from_pretrained: {folder}: {message}")


def read_hf_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / "config.json"
    if not folder.is_dir():
        raise _fail(folder, "not a folder")
    if not path.is_file():
        raise _fail(folder, "no config.json: not a Hugging Face model folder")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(folder, f"config.json is not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise _fail(folder, "config.json does not hold an object")
    return config


def read_vocab(folder: Path) -> list[str]:
    path = folder / "vocab.txt"
    if not path.is_file():
        raise _fail(folder, "no vocab.txt (the tokenizer's vocabulary of a DNABERT or Nucleotide Transformer folder)")
    return path.read_text(encoding="utf-8").splitlines()


def vocab_kmer(vocab: list[str]) -> int:
    """The k of the k-mers in a vocabulary (the longest token of A/C/G/T only)."""
    lengths = [len(t) for t in vocab if t and set(t) <= set("ACGT")]
    return max(lengths, default=0)


def encoder_from_pretrained(folder: str | Path, data_kmer: int | None) -> tuple[str, dict[str, Any]]:
    """-> (encoder name, its architecture keyword arguments) from the folder's config.json and vocab.txt;
    a ConfigError names an unsupported architecture or setting."""
    folder = Path(folder)
    config = read_hf_config(folder)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED:
        raise _fail(folder, f"unsupported architecture {model_type!r} (supported: bert as DNABERT, esm as the "
                            "Nucleotide Transformer)")
    name = SUPPORTED[model_type]
    if config.get("hidden_act", "gelu") != "gelu":
        raise _fail(folder, f"unsupported hidden_act {config.get('hidden_act')!r} (only gelu)")
    if model_type == "esm":
        for key in ("token_dropout", "emb_layer_norm_before", "is_folding_model"):
            if config.get(key):
                raise _fail(folder, f"unsupported ESM setting {key}: true (the Nucleotide Transformer has false)")
        if config.get("position_embedding_type", "absolute") not in ("rotary", "absolute"):
            raise _fail(folder, f"unsupported position_embedding_type {config.get('position_embedding_type')!r}")
    k = vocab_kmer(read_vocab(folder))
    if name == "bert" and not 3 <= k <= 6:
        raise _fail(folder, "vocab.txt holds no DNABERT k-mers (k = 3..6)")
    if name == "nt" and not 1 <= k <= 6:
        raise _fail(folder, "vocab.txt holds no nucleotide k-mers")
    if data_kmer is not None and k != data_kmer:
        raise ConfigError(f"data.kmer is {data_kmer} but the pretrained model in {folder} reads {k}-mers: set "
                          f"data.kmer: {k}")
    kwargs: dict[str, Any] = {
        "hidden_size": int(config["hidden_size"]), "layers": int(config["num_hidden_layers"]),
        "heads": int(config["num_attention_heads"]), "intermediate_size": int(config["intermediate_size"]),
    }
    if name == "nt":
        kwargs["positions"] = "rotary" if config.get("position_embedding_type") == "rotary" else "learned"
        kwargs["layer_norm_eps"] = float(config.get("layer_norm_eps", 1e-12))
    elif float(config.get("layer_norm_eps", 1e-12)) != 1e-12:
        raise _fail(folder, f"unsupported layer_norm_eps {config.get('layer_norm_eps')} (BERT's 1e-12)")
    return name, kwargs


# --- weights ---------------------------------------------------------------------------------------------------

def _prefix(name: str) -> str:
    return "bert" if name == "bert" else "esm"


def _head_keys(name: str) -> dict[str, list[str]]:
    """biolatent head (nn.Sequential: 0 dense, 2 LayerNorm, 3 decoder) -> Hugging Face keys."""
    if name == "bert":
        return {"0.weight": ["cls.predictions.transform.dense.weight"],
                "0.bias": ["cls.predictions.transform.dense.bias"],
                "2.weight": ["cls.predictions.transform.LayerNorm.weight"],
                "2.bias": ["cls.predictions.transform.LayerNorm.bias"],
                "3.weight": ["cls.predictions.decoder.weight"],
                "3.bias": ["cls.predictions.decoder.bias", "cls.predictions.bias"]}
    return {"0.weight": ["lm_head.dense.weight"], "0.bias": ["lm_head.dense.bias"],
            "2.weight": ["lm_head.layer_norm.weight"], "2.bias": ["lm_head.layer_norm.bias"],
            "3.weight": ["lm_head.decoder.weight"], "3.bias": ["lm_head.bias"]}


def encoder_name(encoder: nn.Module) -> str:
    if hasattr(encoder, "bert"):
        return "bert"
    if hasattr(encoder, "esm"):
        return "nt"
    raise ConfigError("only the DNA language models (model.name: bert or nt) have a Hugging Face format")


def to_hf_state(encoder: nn.Module, head: nn.Module | None) -> dict[str, torch.Tensor]:
    """biolatent encoder (+ MLM head) -> the state dict of ``BertForMaskedLM`` / ``EsmForMaskedLM``."""
    name = encoder_name(encoder)
    inner = encoder.bert if name == "bert" else encoder.esm
    state = {f"{_prefix(name)}.{k}": v for k, v in inner.state_dict().items()}
    if head is not None:
        own = head.state_dict()
        for key, targets in _head_keys(name).items():
            for target in targets:
                state[target] = own[key]
    return state


def export_hf(encoder: nn.Module, head: nn.Module | None, out: Path, note: dict[str, Any]) -> None:
    """Write ``out`` (an existing empty folder): config.json + model.safetensors of the ``*ForMaskedLM`` model and
    the tokenizer files, loadable with ``AutoModelForMaskedLM`` / ``AutoTokenizer`` without remote code."""
    name = encoder_name(encoder)
    vocab = encoder.tokenizer.tokens()
    if name == "bert":
        from transformers import BertForMaskedLM, BertTokenizer

        config = encoder.bert.config.__class__.from_dict(encoder.bert.config.to_dict())
        config.architectures = ["BertForMaskedLM"]
        config.tie_word_embeddings = False
        model = BertForMaskedLM(config)
        (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer(vocab=str(out / "vocab.txt"), do_lower_case=False,
                                  model_max_length=int(config.max_position_embeddings))
    else:
        from transformers import EsmForMaskedLM, EsmTokenizer

        config = encoder.esm.config.__class__.from_dict(encoder.esm.config.to_dict())
        config.architectures = ["EsmForMaskedLM"]
        config.tie_word_embeddings = False
        model = EsmForMaskedLM(config)
        names = [ESM_NAMES.get(token, token) for token in vocab]
        (out / "vocab.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
        # no <eos>: biolatent's nt reads [CLS] + the sequence's tokens, as the Nucleotide Transformer
        tokenizer = EsmTokenizer(vocab_file=str(out / "vocab.txt"), eos_token=None,
                                 model_max_length=int(encoder.max_tokens))
    state = to_hf_state(encoder, head)
    for key, value in model.state_dict().items():  # what biolatent has no use for (ESM's contact head): zeros
        state.setdefault(key, torch.zeros_like(value))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:  # a mapping bug, never the user's input
        raise RuntimeError(f"Hugging Face mapping: missing {missing[:3]}, unexpected {unexpected[:3]}")
    with quiet_transformers():
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    (out / EXPORT_NOTE).write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")


def load_pretrained(encoder: nn.Module, folder: str | Path, head: nn.Module | None = None) -> list[str]:
    """Initialise ``encoder`` (and an MLM ``head``) from a local Hugging Face folder -> the names of the parts
    loaded. Never downloads (``local_files_only``)."""
    from transformers import AutoModelForMaskedLM

    folder = Path(folder)
    name = encoder_name(encoder)
    hf_config = read_hf_config(folder)
    try:
        with quiet_transformers():
            model = AutoModelForMaskedLM.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # any reason transformers gives is about the user's folder
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(folder, f"cannot load the weights ({first})") from None
    theirs = model.state_dict()
    prefix = _prefix(name) + "."
    inner = encoder.bert if name == "bert" else encoder.esm
    order = _token_rows(encoder, read_vocab(folder), folder)
    own = inner.state_dict()
    new: dict[str, torch.Tensor] = {}
    for key, value in own.items():
        source = theirs.get(prefix + key)
        if key.endswith("rotary_embeddings.inv_freq"):
            new[key] = value  # computed from the sizes: the same
            continue
        if source is None:
            raise _fail(folder, f"the weights lack {prefix + key}")
        if key == "embeddings.word_embeddings.weight":
            source = source[order]
        elif key == "embeddings.position_embeddings.weight":
            source = _positions(source, value.shape[0], name, hf_config, folder)
        elif key == "embeddings.token_type_embeddings.weight":
            source = source[: value.shape[0]]
        if source.shape != value.shape:
            raise _fail(folder, f"{prefix + key} has shape {tuple(source.shape)}, expected {tuple(value.shape)}")
        new[key] = source.to(value.dtype)
    inner.load_state_dict(new, strict=True)
    loaded = ["encoder"]
    keys = _head_keys(name)
    if head is not None and all(keys[k][0] in theirs for k in keys):
        head_state = {key: theirs[targets[0]] for key, targets in keys.items()}
        head_state["3.weight"] = head_state["3.weight"][order]
        head_state["3.bias"] = head_state["3.bias"][order]
        head.load_state_dict(head_state, strict=True)
        loaded.append("masked-LM head")
    return loaded


def _token_rows(encoder: nn.Module, vocab: list[str], folder: Path) -> torch.Tensor:
    """For each biolatent token id, the row of the folder's vocabulary that holds it."""
    index = {token: i for i, token in enumerate(vocab)}
    rows = []
    for token in encoder.tokenizer.tokens():
        names = ALIASES.get(token, (token,))
        found = next((index[n] for n in names if n in index), None)
        if found is None:
            if token in SPECIAL_TOKENS or len(token) == 1:  # e.g. DNABERT has no single nucleotides: [UNK]'s row
                found = next((index[n] for n in ALIASES["[UNK]"] if n in index), None)
            if found is None:
                raise _fail(folder, f"vocab.txt lacks the token {token!r}: not a DNABERT / Nucleotide Transformer "
                                    f"{encoder.tokenizer.k}-mer vocabulary")
        rows.append(found)
    return torch.tensor(rows)


def _positions(table: torch.Tensor, needed: int, name: str, hf_config: dict, folder: Path) -> torch.Tensor:
    """The first ``needed`` rows of a learned position table, in biolatent's numbering."""
    if name == "bert":
        if table.shape[0] < needed:
            raise DataError(f"sequences this long need {needed} positions; the pretrained model in {folder} has "
                            f"{table.shape[0]}: lower data.max_length")
        return table[:needed]
    from biolatent.data.sequence import PAD_ID

    pad = int(hf_config.get("pad_token_id", 1))  # ESM: positions pad + 1, pad + 2, ... ; the padding row at pad
    rows = [pad, *range(pad + 1, pad + needed - PAD_ID)]
    if rows[-1] >= table.shape[0]:
        raise DataError(f"sequences this long need {needed - PAD_ID - 1} positions; the pretrained model in {folder} "
                        f"has {table.shape[0] - pad - 1}: lower data.max_length")
    return table[torch.tensor(rows)]
