"""``biolatent anomaly``: detectors fitted on healthy data, scoring, evaluation and the supervised references
(typer sub-app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biolatent.cli_common import say

anomaly_app = typer.Typer(help="Anomaly detection learned from healthy data only: fit, score, evaluate.",
                          no_args_is_help=True)

LabelOpt = Annotated[str | None, typer.Option(help="label column of the data (0/1 or True/False; default: the "
                                                 "config's data.label_column, is_anomaly)")]


@anomaly_app.command("fit")
def anomaly_fit(
    config: Annotated[Path, typer.Argument(help="run config YAML, as for pretrain (data = the healthy set, method = "
                                                "a detector) + validation, window, maps")],
    out: Annotated[Path, typer.Option(help="run directory to create")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override: section.key=value (repeatable)")] = None,
    resume: Annotated[bool, typer.Option(help="continue a killed training from its last checkpoint")] = False,
) -> None:
    """Fit a detector on healthy data; the threshold comes from healthy validation data only."""
    from biolatent.workflows.anomaly import fit_from_file

    typer.echo(str(fit_from_file(config, out, overrides=set_, resume=resume, say=say)))


@anomaly_app.command("score")
def anomaly_score(
    run: Annotated[Path, typer.Argument(help="run directory of `biolatent anomaly fit`")],
    out: Annotated[Path, typer.Option(help="output folder (scores.tsv, scores.png)")],
    data: Annotated[str | None, typer.Option(help="series/features to score, or a dataset name (its test part)")]
    = None,
    label: LabelOpt = None,
) -> None:
    """Score data with a fitted detector: sample/point scores and flags (and labels, if the data has them)."""
    from biolatent.workflows.anomaly import score_anomaly

    typer.echo(str(score_anomaly(run, data, out, label_column=label, say=say)))


@anomaly_app.command("evaluate")
def anomaly_evaluate(
    run: Annotated[Path, typer.Argument(help="run directory of `biolatent anomaly fit`")],
    data: Annotated[str | None, typer.Option(help="labelled series/features, or a dataset name (its test part)")]
    = None,
    label: LabelOpt = None,
) -> None:
    """AUROC, AP and Dice against labels -> RUN/anomaly_metrics.tsv."""
    from biolatent.workflows.anomaly import evaluate_anomaly

    typer.echo(str(evaluate_anomaly(run, data, label_column=label, say=say)))


SizeEdgesOpt = Annotated[str, typer.Option(help="lesion-size bins: inclusive upper edges in pixels, comma-separated")]


@anomaly_app.command("supervised")
def anomaly_supervised(
    train: Annotated[Path, typer.Option(help="labelled image set (meta.tsv with lesion masks) to train on")],
    test: Annotated[Path, typer.Option(help="labelled test set (a different set)")],
    out: Annotated[Path, typer.Option(help="run directory to create")],
    epochs: Annotated[int | None, typer.Option(
        min=1, help="training epochs: the budget of the detectors it is compared with (default: --budget-from's "
                    "train.epochs, else 30, the 2D slice detectors' configs/anomaly/slices_*.yaml)")] = None,
    budget_from: Annotated[Path | None, typer.Option(
        help="a `biolatent anomaly fit` run directory or anomaly config whose train.epochs the reference gets")]
    = None,
    image_size: Annotated[int, typer.Option(help="side the images are resized to")] = 32,
    seed: int = 0,
    size_edges: SizeEdgesOpt = "4,16,64,256",
) -> None:
    """Supervised reference: a lesion segmenter on the detectors' backbone, trained on labelled lesions."""
    from biolatent.anomaly.lesion_sizes import parse_edges
    from biolatent.workflows.anomaly_segmentation import run_supervised

    typer.echo(str(run_supervised(train, test, out, epochs=epochs, budget_from=budget_from, image_size=image_size,
                                  seed=seed,
                                  size_edges=parse_edges(size_edges), say=say)))


@anomaly_app.command("guided")
def anomaly_guided(
    run: Annotated[Path, typer.Argument(help="image run directory of `biolatent anomaly fit`")],
    unlabelled: Annotated[Path, typer.Option(help="unlabelled image set (its masks, if any, are not used)")],
    test: Annotated[Path, typer.Option(help="labelled test set")],
    out: Annotated[Path, typer.Option(help="run directory to create")],
    epochs: Annotated[int | None, typer.Option(min=1, help="training epochs (default: the run's train.epochs, "
                                                           "the detector's budget)")] = None,
    seed: int = 0,
    pseudo: Annotated[str, typer.Option(help="pseudo-labels: postprocess (StRegA chain) or threshold (healthy "
                                             "validation pixel threshold)")] = "postprocess",
    size_edges: SizeEdgesOpt = "4,16,64,256",
) -> None:
    """Anomaly-guided segmentation: a segmenter trained on the run's anomaly maps of unlabelled images."""
    from biolatent.anomaly.lesion_sizes import parse_edges
    from biolatent.workflows.anomaly_segmentation import run_guided

    typer.echo(str(run_guided(run, unlabelled, test, out, pseudo=pseudo, epochs=epochs, seed=seed,
                              size_edges=parse_edges(size_edges), say=say)))
