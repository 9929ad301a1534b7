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
