"""The ``biolatent`` command: thin typer commands over the workflows (heavy imports happen inside them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from biolatent.cli_anomaly import anomaly_app
from biolatent.cli_common import say
from biolatent.cli_dna import export, variant_effect
from biolatent.cli_genetics import discover, export_hail, gwas, h2
from biolatent.cli_register import register_app
from biolatent.cli_robustness import robustness_app

app = typer.Typer(
    name="biolatent",
    help="Learning without labels for biomedical data: pre-train, embed, evaluate with few labels, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="The dataset registry: real data obtained from package registries.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(anomaly_app, name="anomaly")
app.add_typer(robustness_app, name="robustness")
app.add_typer(register_app, name="register")
app.command("export")(export)
app.command("variant-effect")(variant_effect)
app.command("gwas")(gwas)
app.command("discover")(discover)
app.command("h2")(h2)
app.command("export-hail")(export_hail)

FractionsOpt = Annotated[
    str, typer.Option(help="comma-separated label fractions of the training pool")
]


def _fractions(text: str) -> list[float]:
    from biolatent.errors import BiolatentError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BiolatentError(f"--fractions must be numbers separated by commas, got {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise BiolatentError(f"--fractions must lie in (0, 1], got {text!r}")
    return values


@app.command()
def pretrain(
    config: Annotated[Path, typer.Argument(help="run config (YAML: data, method, model, train)")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override: section.key=value")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (default: runs/<config name>)")] = None,
    resume: Annotated[bool, typer.Option(help="continue a killed run from its last checkpoint")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
    seeds: Annotated[int, typer.Option(help="pre-training seeds train.seed, train.seed+1, ...: the first is the run "
                                            "itself, the others go to RUN/seeds/<seed>/ (evaluate's intervals then "
                                            "cover the pre-training seed)")] = 1,
    holdout_splits: Annotated[int, typer.Option(help="keep the test ids of S splits (split seeds 0..S-1) out of "
                                                     "pre-training, recorded in RUN/holdout.json: the run can then "
                                                     "be evaluated with --protocol inductive")] = 0,
    test_fraction: Annotated[float, typer.Option(help="with --holdout-splits: the test fraction of each split")] = 0.2,
    holdout_label: Annotated[str | None, typer.Option(help="with --holdout-splits: stratify the splits by this "
                                                           "metadata column (as evaluate does)")] = None,
) -> None:
    """Self-supervised pre-training; writes weights, checkpoints and training curves to a run directory."""
    from biolatent.build import load_config
    from biolatent.workflows.pretrain import pretrain as run

    cfg = load_config(config, set_)
    run_dir = out or Path("runs") / config.stem
    metrics = run(cfg, run_dir, resume=resume, progress=not quiet, seeds=seeds, holdout=holdout_splits,
                  test_fraction=test_fraction, holdout_label=holdout_label, say=say)
    if not metrics:  # a secondary DDP process: the first one reports
        return
    say(f"final loss {metrics.get('final_loss', float('nan')):.4f}; "
         f"{metrics['samples_per_second']:.0f} samples/s")
    typer.echo(str(run_dir))


@app.command()
def embed(
    run_dir: Annotated[Path, typer.Argument(help="a pretrain run directory")],
    data: Annotated[Path | None, typer.Option(help="other data: a config YAML (its data section) or a path")] = None,
    out: Annotated[Path | None, typer.Option(help="output .h5ad (default: RUN_DIR/embeddings.h5ad)")] = None,
) -> None:
    """Embed every sample: embeddings.h5ad (obs = ids + metadata, obsm['X_biolatent']); a run pre-trained with
    --seeds K also embeds each RUN/seeds/<seed>/ into its own embeddings.h5ad (not with --out)."""
    from biolatent.workflows.embed import embed_all_seeds, embed_run

    if out is not None:
        typer.echo(str(embed_run(run_dir, data, out, say=say)))
        return
    for path in embed_all_seeds(run_dir, data, say=say):
        typer.echo(str(path))


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a pretrain run directory")],
    label: Annotated[str | None, typer.Option(help="metadata column with the labels")] = None,
    expression: Annotated[bool, typer.Option(
        "--expression", help="spatial runs: predict the genes' expression of held-out tissue regions from the "
                             "image -> evaluate/expression/")] = False,
    genes: Annotated[int, typer.Option(min=1, help="with --expression: the most variable genes to predict")] = 50,
    fractions: Annotated[str | None, typer.Option(
        help="comma-separated labelled fractions in (0, 1] (default 0.01,0.05,0.1,0.2,0.5,1.0; with "
             "--expression 0.1,0.2,1.0)")] = None,
    seeds: Annotated[int, typer.Option(min=1, help="repeats per fraction (95% CI over them)")] = 3,
    supervised_steps: Annotated[int | None, typer.Option(
        min=1, help="most optimizer steps of the supervised baseline (default: the rule, as many as the "
                    "pre-training took: train.epochs x its batches per epoch); its learning rate (train.lr x "
                    "0.3, 1, 3) and step are chosen on 20% of the labels held out")] = None,
    task: Annotated[Literal["auto", "classification", "regression"], typer.Option(
        help="auto: a numeric column with more than 10 distinct values (or fractional values) is a regression "
             "target (ridge/kNN probes, pearson_r and r2); anything else is classification")] = "auto",
    test_splits: Annotated[int, typer.Option(help="repeated stratified test splits (split seeds 0..S-1); with "
                                                  "--protocol inductive, the first S splits recorded at "
                                                  "pre-training")] = 1,
    protocol: Annotated[str | None, typer.Option(
        help="transductive: SSL, PCA and scalers fitted on all samples, test samples included (the default for a "
             "run pre-trained on all samples); inductive: fitted on training samples only (the default, and only "
             "possible, for a run pre-trained with --holdout-splits)")] = None,
    data: Annotated[Path | None, typer.Option(
        help="evaluate on other data than the run's (transfer: a config YAML, its data section, or a path, as embed "
             "--data) -> RUN/transfer/<name>/evaluate/LABEL/")] = None,
    split_column: Annotated[str | None, typer.Option(
        help="metadata column of train / test values (e.g. a UCR/UEA set's official `split`): the one test split, "
             "instead of random stratified ones")] = None,
    batch: Annotated[str | None, typer.Option(
        help="metadata column with each sample's batch: adds batch integration metrics (iLISI, kBET, batch ASW; "
             "label ASW, NMI, ARI of --label) of the embedding, its random init and PCA -> "
             "evaluate/integration/integration.tsv (needs biolatent[integration])")] = None,
) -> None:
    """Label efficiency: SSL, random-init and PCA probes vs the supervised baseline -> evaluate/LABEL/efficiency.tsv.

    Each interval (mean, 95% Student-t CI) covers every pre-training seed (pretrain --seeds) x test split
    (--test-splits) x labelled subset (--seeds here); efficiency.tsv's `sources` column names those that varied
    and `n_seeds` counts the values behind each mean. The random-init baseline gets one init per pre-training
    seed; PCA and the supervised baseline vary with the split and the labelled subset."""
    from biolatent.errors import ConfigError

    if batch is not None and label is None:
        raise ConfigError("--batch needs --label COLUMN (the cell types whose conservation is measured)")
    if (label is None) == (not expression):
        raise ConfigError("give either --label COLUMN or --expression (spatial runs), not both or neither")
    if expression and (test_splits != 1 or protocol is not None or split_column is not None):
        raise ConfigError("--test-splits, --split-column and --protocol apply to --label evaluations, not "
                          "--expression")
    if data is not None and (batch is not None or expression):
        raise ConfigError("--data (transfer) evaluates --label columns; it does not combine with --batch or "
                          "--expression")
    if batch is not None:  # first: its bad input stops the command before anything is written
        from biolatent.workflows.integration import evaluate_integration

        typer.echo(evaluate_integration(run_dir, batch, label, say=say))
    if expression:
        from biolatent.workflows.expression import EXPRESSION_FRACTIONS, evaluate_expression_run

        head = evaluate_expression_run(
            run_dir, n_genes=genes, fractions=_fractions(fractions) if fractions else EXPRESSION_FRACTIONS,
            seeds=seeds, supervised_steps=supervised_steps, say=say)
    else:
        from biolatent.workflows.evaluate import DEFAULT_FRACTIONS, evaluate_run

        head = evaluate_run(run_dir, label, fractions=_fractions(fractions) if fractions else DEFAULT_FRACTIONS,
                            seeds=seeds, supervised_steps=supervised_steps, task=task, test_splits=test_splits,
                            protocol=protocol, data=data, split_column=split_column, say=say)
    _print_headline(head)
    typer.echo(head["efficiency"])


@app.command()
def probe(
    embeddings: Annotated[Path, typer.Argument(help="embeddings .h5ad (obsm['X_biolatent'] or X)")],
    label: Annotated[str, typer.Option(help="obs column with the labels")],
    fractions: FractionsOpt = "0.01,0.05,0.1,0.2,0.5,1.0",
    seeds: Annotated[int, typer.Option(min=1)] = 3,
    key: Annotated[str, typer.Option(help="obsm key of the embeddings")] = "X_biolatent",
    out: Annotated[Path | None, typer.Option(help="output folder (default: next to the file)")] = None,
    task: Annotated[Literal["auto", "classification", "regression"], typer.Option(
        help="auto: a numeric column with more than 10 distinct values (or fractional values) is a regression "
             "target (ridge/kNN probes, pearson_r and r2); anything else is classification")] = "auto",
    split_column: Annotated[str | None, typer.Option(
        help="obs column of train / test values: the one test split, instead of a random stratified one")] = None,
) -> None:
    """Linear and kNN probes on any embeddings file (classification, or regression on a numeric column)."""
    from biolatent.workflows.evaluate import probe_embeddings

    out_dir = out or embeddings.parent / f"probe-{label}"
    head = probe_embeddings(embeddings, label, out_dir, fractions=_fractions(fractions), seeds=seeds, key=key,
                            task=task, split_column=split_column, say=say)
    _print_headline(head)
    typer.echo(head["efficiency"])


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory")]) -> None:
    """Write RUN_DIR/report.html: one self-contained file."""
    from biolatent.errors import BiolatentError
    from biolatent.report import build_report

    if not run_dir.is_dir():
        raise BiolatentError(f"run directory not found: {run_dir}")
    typer.echo(str(build_report(run_dir, say=typer.echo)))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the demo run")] = Path("runs/demo"),
    epochs: Annotated[int | None, typer.Option(min=1, help="override the demo's training epochs")] = None,
    seeds: Annotated[int, typer.Option(min=1)] = 3,
) -> None:
    """The whole chain on real PBMC cells: fetch, pre-train a VAE, embed, evaluate, report."""
    from biolatent.workflows.demo import run_demo

    run_demo(out, epochs=epochs, seeds=seeds, say=typer.echo)


@data_app.command("list")
def data_list() -> None:
    """The registered datasets and where each comes from."""
    from biolatent.datasets import list_datasets

    for recipe in list_datasets():
        source = f"{recipe.package}=={recipe.version}"
        typer.echo(f"{recipe.name:<20} {recipe.modality:<10} {source:<32} {recipe.description}")


SIMULATORS = ("heart", "slices2d", "brain", "brainslices2d", "spatial", "chest")


@data_app.command("simulate")
def data_simulate(
    kind: Annotated[str, typer.Argument(help="heart (3D+time cine phantom), slices2d (2D brain-like slices), "
                                             "brain (3D brains from the MNI152 template) or brainslices2d (one "
                                             "axial slice of each such brain, through its largest lesion) or "
                                             "spatial (a Visium-like H&E + spot counts folder with its truth) or "
                                             "chest (3D chest CT in Hounsfield units)")],
    out: Annotated[Path, typer.Option(help="output folder (cine/*.nii.gz, meta.tsv; spatial: a new or empty "
                                           "folder)")],
    n: Annotated[int, typer.Option(help="number of subjects (ignored with --genotypes)")] = 100,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    png: Annotated[bool, typer.Option(help="also write slices/<id>.png (ED/ES short axis, long axis) for 2D methods")]
    = False,
    genotypes: Annotated[Path | None, typer.Option(help="PLINK prefix or VCF: one subject per sample, parameters "
                                                        "driven by the genotypes")] = None,
    h2: Annotated[float, typer.Option(help="with --genotypes: heritability of every parameter")] = 0.5,
    n_causal: Annotated[int, typer.Option(help="with --genotypes: causal variants per parameter")] = 20,
    lesions: Annotated[bool, typer.Option(help="slices2d, brain, brainslices2d: plant lesions, write masks")] = False,
    size: Annotated[int, typer.Option(help="slices2d: image side in pixels; brain, chest: cube side in voxels")] = 64,
    mass_effect: Annotated[bool, typer.Option(help="brain: lesions push the tissue around them away")] = False,
    lesion_fraction: Annotated[float, typer.Option(help="slices2d, brain: fraction of subjects with lesions; chest: "
                                                        "with nodules")] = 0.5,
    nodules: Annotated[bool, typer.Option(help="chest: plant lung nodules (3-15 mm; solid, part-solid, "
                                               "ground-glass), write masks")] = False,
    sites: Annotated[int, typer.Option(help="brain: number of scanner sites (contrast, noise, bias profiles)")] = 0,
    subject_parameters: Annotated[bool, typer.Option(
        help="brain: per-subject atrophy (GM partial volume to CSF) and age, recorded in meta.tsv")] = False,
    scans_per_subject: Annotated[int, typer.Option(
        help="brain: scans of every subject (same anatomy re-acquired; a subject column), for MICLe")] = 1,
    contrast: Annotated[str, typer.Option(help="brain: t1 or t2 (the same anatomy T2-like: inter-modal registration "
                                               "pairs)")] = "t1",
    atlas: Annotated[str, typer.Option(help="brain: the anatomy, mni152 (labels: GM, WM, CSF) or colin27-aal (the "
                                            "Colin27 brain; labels: AAL's 116 regions, for many-label "
                                            "registration)")] = "mni152",
    spots: Annotated[int, typer.Option(help="spatial: number of spots (Visium grid, 100 um apart)")] = 1500,
    genes: Annotated[int, typer.Option(help="spatial: number of genes (5..765, 20% morphology-independent)")] = 200,
    records: Annotated[bool, typer.Option(help="heart: also health records (records.tsv) from the same latent "
                                               "health state, with a rare disease")] = False,
    prevalence: Annotated[float, typer.Option(help="heart --records: prevalence of the rare disease")] = 0.03,
) -> None:
    """Write a synthetic cohort with a known truth; prints the path of meta.tsv."""
    from biolatent.data.simulate.heart import PARAMETERS, simulate_heart_cohort
    from biolatent.errors import BiolatentError

    if kind not in SIMULATORS:
        raise BiolatentError(f"unknown simulator {kind!r} (choose from {', '.join(SIMULATORS)})")
    if kind == "spatial":
        from biolatent.data.simulate.spatial import write_spatial_dataset

        typer.echo(str(write_spatial_dataset(out, spots, genes, seed=seed, progress=say)))
        return
    if (out / "meta.tsv").exists():
        raise BiolatentError(f"{out} already holds a cohort (meta.tsv): choose another --out")
    if kind == "slices2d":
        from biolatent.anomaly.images import write_slice_set

        typer.echo(str(write_slice_set(out, n, size=size, lesions=lesions, seed=seed, lesion_fraction=lesion_fraction)))
        return
    if kind == "brainslices2d":
        from biolatent.anomaly.volumes import write_brain_slice_set

        typer.echo(str(write_brain_slice_set(out, n, size=size, lesions=lesions, seed=seed,
                                             lesion_fraction=lesion_fraction, say=say)))
        return
    if kind == "chest":
        from biolatent.data.simulate.chest import write_chest_set

        typer.echo(str(write_chest_set(out, n, size=size, nodules=nodules, seed=seed, nodule_fraction=lesion_fraction,
                                       say=say)))
        return
    if kind == "brain":
        from biolatent.anomaly.volumes import write_brain_set
        from biolatent.data.simulate.brain import atlas_template

        template = None if atlas == "mni152" else atlas_template(atlas, progress=say)  # mni152: write_brain_set's
        typer.echo(str(write_brain_set(out, n, size=size, lesions=lesions, mass_effect=mass_effect, seed=seed,
                                       lesion_fraction=lesion_fraction, sites=sites, template=template,
                                       subject_parameters=subject_parameters,
                                       scans_per_subject=scans_per_subject, contrast=contrast, say=say)))
        return
    parameters = None
    if genotypes is not None:
        from biolatent.discover.genetics.simulate import heart_parameters
        from biolatent.io.genotypes import read_genotypes

        if not 0.0 <= h2 <= 1.0:
            raise BiolatentError(f"--h2 must lie in [0, 1], got {h2}")
        parameters, _, causal = heart_parameters(read_genotypes(genotypes), dict.fromkeys(PARAMETERS, h2), n_causal,
                                                 seed=seed)
    elif n < 1:
        raise BiolatentError(f"--n must be >= 1, got {n}")
    meta = simulate_heart_cohort(n, out, seed=seed, parameters=parameters, write_png=png, records=records,
                                 prevalence=prevalence, progress=say)
    if genotypes is not None:
        import json

        (out / "causal_variants.json").write_text(json.dumps(causal, indent=1))
    typer.echo(str(meta))


@data_app.command("fetch")
def data_fetch(name: Annotated[str, typer.Argument(help="dataset name (see `biolatent data list`)")]) -> None:
    """Obtain, verify (sha256), convert and cache a dataset; prints its folder."""
    from biolatent.datasets import fetch

    typer.echo(str(fetch(name, progress=say)))


def _print_headline(head: dict) -> None:
    for key, value in head.items():
        if isinstance(value, float):
            say(f"  {key}: {value:.3f}")
    if head.get("ratio_withheld"):
        say(f"  no SSL / supervised ratio: {head['ratio_withheld']}")


def main() -> None:
    from biolatent.errors import BiolatentError

    try:
        app()
    except BiolatentError as exc:
        message = " ".join(str(exc).split())
        typer.echo(f"error: {message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
