"""``biolatent robustness``: the robustness checks and the augmentation ablation (typer sub-app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from typer.core import TyperGroup

from biolatent.cli_common import say


class DefaultCommandGroup(TyperGroup):
    """A command group whose first argument, when it names none of its commands (and is no option), is handed to
    its ``checks`` command: ``biolatent robustness RUN ...`` is ``biolatent robustness checks RUN ...``."""

    default_command = "checks"

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


robustness_app = typer.Typer(
    cls=DefaultCommandGroup, no_args_is_help=True,
    help="The robustness checks: `biolatent robustness RUN --label COL` (cross-site, site leakage, label noise) "
         "and `biolatent robustness ablate CONFIG --label COL` (one view family removed at a time).")


def _noise_levels(text: str) -> list[float]:
    from biolatent.errors import BiolatentError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BiolatentError(f"--noise must be numbers separated by commas, got {text!r}") from None


RobustFractionOpt = Annotated[float, typer.Option(help="labelled fraction of each training pool drawn per seed")]
RobustSeedsOpt = Annotated[int, typer.Option(help="repeats (95% CI over them): each draws a labelled subset (and a "
                                                  "test split, where the test set is not a site)")]
TaskOpt = Annotated[Literal["auto", "classification", "regression"], typer.Option(
    help="auto: a numeric column with more than 10 distinct values (or fractional values) is a regression target")]


@robustness_app.command("checks")
def robustness_run(
    run_dir: Annotated[Path, typer.Argument(help="a pretrain run directory")],
    label: Annotated[str, typer.Option(help="metadata column with the labels")],
    site_column: Annotated[str | None, typer.Option(help="metadata column with the site or batch (default: site, "
                                                         "else batch, if present)")] = None,
    noise: Annotated[str | None, typer.Option(help="comma-separated fractions of training labels flipped, each "
                                                   "in [0, 1) (default 0.1,0.2,0.4; class labels only)")] = None,
    fraction: RobustFractionOpt = 0.8,
    seeds: RobustSeedsOpt = 3,
    supervised_steps: Annotated[int | None, typer.Option(
        min=1, help="most optimizer steps of the supervised baseline (default: the rule of `evaluate`, as many as "
                    "the pre-training took)")] = None,
    task: TaskOpt = "auto",
) -> None:
    """Cross-site (leave one site out), site leakage and label noise for ssl, random_init, pca and supervised ->
    RUN/robustness.tsv (check, representation, probe, setting, metric, mean, ci_low, ci_high)."""
    from biolatent.workflows.robustness import robustness_run as run

    levels = None if noise is None else _noise_levels(noise)
    typer.echo(str(run(run_dir, label, site_column=site_column, noise=levels, fraction=fraction, seeds=seeds,
                       supervised_steps=supervised_steps, task=task, say=say)))


@robustness_app.command("ablate")
def robustness_ablate(
    config: Annotated[Path, typer.Argument(help="run config (YAML) to pre-train with and without each view family")],
    label: Annotated[str, typer.Option(help="metadata column with the labels the variants are probed on")],
    out: Annotated[Path | None, typer.Option(help="new folder: one run per variant + robustness.tsv (default: "
                                                  "runs/<config name>-ablation)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override for every variant: section.key=value")]
    = None,
    families: Annotated[str | None, typer.Option(help="comma-separated view families to remove one at a time "
                                                      "(default: every family of the modality)")] = None,
    fraction: RobustFractionOpt = 0.8,
    seeds: RobustSeedsOpt = 3,
    task: TaskOpt = "auto",
) -> None:
    """Pre-train one variant per view family removed (same seeds, same budget) and compare their probes ->
    OUT/robustness.tsv (check augmentation_ablation, setting = variant)."""
    from biolatent.workflows.robustness import ablate

    chosen = None if families is None else [f.strip() for f in families.split(",") if f.strip()]
    out_dir = out or Path("runs") / f"{config.stem}-ablation"
    typer.echo(str(ablate(config, label, out_dir, overrides=set_, families=chosen, fraction=fraction, seeds=seeds,
                          task=task, say=say)))
