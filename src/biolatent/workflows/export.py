"""``biolatent export``: a pre-trained DNA language model as a Hugging Face ``transformers`` folder."""

from __future__ import annotations

from pathlib import Path

from biolatent.build import build_method
from biolatent.errors import ConfigError
from biolatent.rundir import staged_dir
from biolatent.train.checkpoint import load_weights
from biolatent.workflows.common import WEIGHTS_FILE, load_data_info, load_run_config

FORMATS = ("hf",)
TOKENIZATION = {
    "bert": "DNABERT: the text is the space-separated overlapping k-mers; biolatent's embedding is the mean of the "
            "last hidden states over them without [CLS]/[SEP] (tokenizer(..., add_special_tokens=False)) or, with "
            "pooling cls, [CLS] + the k-mers and the [CLS] state",
    "nt": "Nucleotide Transformer: the text is the plain sequence (upper case); EsmTokenizer adds <cls> and splits "
          "greedy 6-mers; biolatent's embedding is the mean of the last hidden states over the tokens after <cls> "
          "(pooling mean) or the <cls> state (pooling cls)",
}


def export_run(run_dir: Path, out: Path, fmt: str = "hf", say=print) -> Path:
    """Write ``out`` (new or empty; nothing is left behind on failure): the run's encoder and masked-LM head as
    ``BertForMaskedLM`` (``bert``) or ``EsmForMaskedLM`` (``nt``) + tokenizer + ``biolatent.json``."""
    from biolatent.models.huggingface import EXPORT_NOTE, export_hf

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    config = load_run_config(run_dir)
    if config.model.name not in TOKENIZATION:
        raise ConfigError(f"export --format hf: encoder {config.model.name!r} has no Hugging Face format (only the "
                          f"DNA language models: {', '.join(TOKENIZATION)})")
    info = load_data_info(run_dir)
    method = build_method(config, info)
    load_weights(run_dir / WEIGHTS_FILE, method)
    method.eval()
    head = getattr(method, "head", None) if config.method.name == "mlm" else None
    encoder = method.encoder
    note = {"encoder": config.model.name, "method": config.method.name, "kmer": encoder.kmer,
            "max_length": info.max_length, "pooling": encoder.pooling, "tokenization": TOKENIZATION[config.model.name],
            "masked_lm_head": "trained" if head is not None else "untrained (the run's method has none)",
            "run": str(run_dir.resolve()), "config_hash": config.hash()}
    with staged_dir(out) as tmp:
        export_hf(encoder, head, tmp, note)
    say(f"wrote {out} ({EXPORT_NOTE} says how to tokenise)")
    return out
