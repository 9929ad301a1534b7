"""``biolatent register``: learned deformable registration (typer sub-app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biolatent.cli_common import say

register_app = typer.Typer(help="Learned deformable registration (VoxelMorph, MICDIR-style): fit, apply, evaluate.",
                           no_args_is_help=True)


@register_app.command("fit")
def register_fit(
    config: Annotated[Path, typer.Argument(help="registration config YAML (data, method, train)")],
    out: Annotated[Path, typer.Option(help="run directory to create")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override: section.key=value")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Learn to register the volumes of a cohort (unlabelled pairs; labels only for an optional Dice loss)."""
    from biolatent.workflows.register import fit_registration

    typer.echo(str(fit_registration(config, out, set_, progress=not quiet, say=say)))


@register_app.command("apply")
def register_apply(
    run: Annotated[Path, typer.Argument(help="run directory of `biolatent register fit`")],
    moving: Annotated[Path, typer.Option(help="moving image (NIfTI), affinely aligned to the fixed one")],
    fixed: Annotated[Path, typer.Option(help="fixed image (NIfTI): the outputs are on its grid")],
    out: Annotated[Path, typer.Option(help="output folder (new or empty)")],
    labels: Annotated[Path | None, typer.Option(help="the moving image's label map: warped by nearest "
                                                     "neighbour")] = None,
    fixed_labels: Annotated[Path | None, typer.Option(help="the fixed image's label map: Dice per label")] = None,
) -> None:
    """Register one pair: warped image (and labels), displacement, Jacobian determinant, registration.json."""
    from biolatent.workflows.register import apply_registration

    typer.echo(str(apply_registration(run, moving, fixed, out, labels=labels, fixed_labels=fixed_labels,
                                      say=say)))


@register_app.command("evaluate")
def register_evaluate(
    run: Annotated[Path, typer.Argument(help="run directory of `biolatent register fit`")],
    data: Annotated[Path, typer.Option(help="held-out cohort folder (meta.tsv with the run's label column)")],
    max_pairs: Annotated[int | None, typer.Option(help="evaluate only the first N ordered pairs")] = None,
    classical: Annotated[bool, typer.Option(help="also the classical reference (SimpleITK demons, if "
                                                 "installed)")] = True,
) -> None:
    """Dice, HD95, folding and seconds of every pair: the model, identity, classical -> registration_metrics.tsv."""
    from biolatent.workflows.register import evaluate_registration

    typer.echo(str(evaluate_registration(run, data, max_pairs=max_pairs, classical=classical, say=say)))
