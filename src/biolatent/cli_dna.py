"""``biolatent export`` and ``biolatent variant-effect``: DNA language models beyond embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biolatent.cli_common import say


def export(
    run_dir: Annotated[Path, typer.Argument(help="a pretrain run directory (model.name bert or nt)")],
    out: Annotated[Path, typer.Option(help="output folder (new or empty)")],
    format_: Annotated[str, typer.Option("--format", help="hf: a Hugging Face transformers folder (BertForMaskedLM "
                                                          "for bert, EsmForMaskedLM for nt + tokenizer)")] = "hf",
) -> None:
    """Export a DNA language model: AutoModelForMaskedLM / AutoTokenizer.from_pretrained(OUT) load it, no remote
    code."""
    from biolatent.workflows.export import export_run

    typer.echo(str(export_run(run_dir, out, format_, say=say)))


def variant_effect(
    run_dir: Annotated[Path, typer.Argument(help="a pretrain run directory (method mlm, model bert or nt)")],
    fasta: Annotated[Path, typer.Option(help="reference genome FASTA the VCF positions refer to: plain (read "
                                             "window by window through its .fai, built if absent) or gzip (read "
                                             "whole)")],
    out: Annotated[Path, typer.Option(help="output folder (new or empty)")],
    variants: Annotated[Path | None, typer.Option(help="VCF (plain or gzip): CHROM POS ID REF ALT are read")] = None,
    ism: Annotated[str | None, typer.Option(help="in-silico mutagenesis of CHR:START-END (1-based, inclusive): "
                                                 "every substitution -> ism.tsv + ism.png")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="windows per forward pass")] = 64,
) -> None:
    """Zero-shot variant effects: masked marginal log-likelihood ratio (alt vs ref at the variant's tokens) and
    embedding distance of the ref and alt windows -> OUT/variant_effects.tsv."""
    from biolatent.workflows.variant_effect import variant_effect_run

    typer.echo(str(variant_effect_run(run_dir, fasta, out, variants_path=variants, ism=ism, batch_size=batch_size,
                                      say=say)))
