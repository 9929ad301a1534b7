"""The genetics commands: ``gwas``, ``discover`` (latent phenotypes -> clusters -> GWAS -> h2) and ``h2``
(registered on the main app by ``biolatent.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biolatent.cli_common import say

DOSAGE_HELP = "VCF FORMAT/DS dosages instead of hard calls (numpy engine)"
SPARK_HELP = ("Spark master of the hail engine (spark://HOST:PORT, yarn, local[N]) [default: $BIOLATENT_HAIL_MASTER, "
              "else local[2]]")
QC_HELP = "plink-style QC before the scan: --maf, --geno, --hwe, --mind (off: --no-qc)"


def _qc_config(qc: bool, maf: float, geno: float, hwe: float, mind: float):
    from biolatent.discover.genetics.qc import QCConfig

    if not qc:
        return None
    return QCConfig(min_maf=maf, max_variant_missing=geno, min_hwe_p=hwe, min_sample_call_rate=1.0 - mind)


def _output_format(value: str) -> str:
    from biolatent.errors import BiolatentError

    if value not in ("tsv", "parquet"):
        raise BiolatentError(f"--output-format must be tsv or parquet, got {value!r}")
    return value


def gwas(
    genotypes: Annotated[Path, typer.Option(help="PLINK prefix (.bed/.bim/.fam) or VCF(.gz)")],
    phenotypes: Annotated[Path, typer.Option(help="table: id column + one column per trait")],
    out: Annotated[Path, typer.Option(help="output folder (gwas.tsv, lead_variants.tsv, plots)")],
    covariates: Annotated[Path | None, typer.Option(help="table: id column + covariates")] = None,
    engine: Annotated[str, typer.Option(help="numpy (in-process) or hail (Spark, `make hail-env`)")] = "numpy",
    qc: Annotated[bool, typer.Option(help=QC_HELP)] = True,
    maf: Annotated[float, typer.Option(help="minimum minor allele frequency")] = 0.01,
    geno: Annotated[float, typer.Option(help="maximum fraction of missing calls per variant")] = 0.05,
    hwe: Annotated[float, typer.Option(help="minimum Hardy-Weinberg exact p-value")] = 1e-6,
    mind: Annotated[float, typer.Option(help="maximum fraction of missing calls per sample")] = 0.05,
    pcs: Annotated[int, typer.Option(help="genetic PCs of the analysed samples added as covariates")] = 0,
    dosage: Annotated[bool, typer.Option(help=DOSAGE_HELP)] = False,
    plots: Annotated[bool, typer.Option(help="Manhattan and QQ plot of every trait (thinned: every p < 1e-3, "
                                             "a sample of the rest)")] = True,
    spark_master: Annotated[str | None, typer.Option(help=SPARK_HELP)] = None,
    output_format: Annotated[str, typer.Option(help="gwas.tsv (plink2 --glm text) or gwas.parquet (the same "
                                                    "columns as float64, plus LOG10_P)")] = "tsv",
) -> None:
    """Linear regression of every trait on every variant (plink2 --glm columns) -> OUT/gwas.tsv."""
    from biolatent.workflows.gwas import run_gwas

    config = _qc_config(qc, maf, geno, hwe, mind)
    typer.echo(str(run_gwas(genotypes, phenotypes, covariates, out, engine=_engine(engine), qc=config, n_pcs=pcs,
                            dosage=dosage, plots=plots, spark_master=spark_master, output_format=_output_format(
                                output_format), say=say)))


def discover(
    embeddings: Annotated[Path, typer.Argument(help="embeddings.h5ad (or any AnnData of per-sample vectors)")],
    genotypes: Annotated[Path, typer.Option(help="PLINK prefix (.bed/.bim/.fam) or VCF(.gz)")],
    covariates: Annotated[Path | None, typer.Option(help="table: id column + covariates")] = None,
    engine: Annotated[str, typer.Option(help="numpy (in-process) or hail (Spark, `make hail-env`)")] = "numpy",
    out: Annotated[Path | None, typer.Option(help="output folder [default: EMBEDDINGS' folder/discover]")] = None,
    decorrelate: Annotated[str, typer.Option(help="pca, ica or none: how embedding dimensions become traits")] = "pca",
    n_components: Annotated[int, typer.Option(help="number of latent traits Z0..Zk (pca/ica)")] = 10,
    pcs: Annotated[int, typer.Option(help="genetic PCs added as covariates")] = 5,
    qc: Annotated[bool, typer.Option(help=QC_HELP)] = True,
    maf: Annotated[float, typer.Option(help="minimum minor allele frequency")] = 0.01,
    geno: Annotated[float, typer.Option(help="maximum fraction of missing calls per variant")] = 0.05,
    hwe: Annotated[float, typer.Option(help="minimum Hardy-Weinberg exact p-value")] = 1e-6,
    mind: Annotated[float, typer.Option(help="maximum fraction of missing calls per sample")] = 0.05,
    h2_method: Annotated[str, typer.Option(help="greml or he")] = "greml",
    cluster_method: Annotated[str, typer.Option(help="leiden, kmeans or gmm")] = "leiden",
    n_clusters: Annotated[int | None, typer.Option(help="k for kmeans/gmm")] = None,
    polygenic_score: Annotated[str | None, typer.Option(help="obs column tested against the clusters")] = None,
    pgs_weights: Annotated[Path | None, typer.Option(
        help="ID/A1/BETA table (plink2 --glm style): polygenic score computed and tested against the clusters")] = None,
    dosage: Annotated[bool, typer.Option(help=DOSAGE_HELP)] = False,
    spark_master: Annotated[str | None, typer.Option(help=SPARK_HELP)] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Latent phenotypes -> clusters -> GWAS -> h2 of an embeddings file -> OUT/report.html."""
    from biolatent.errors import BiolatentError
    from biolatent.workflows.discover import DiscoverSettings, run_discover

    choices = {"decorrelate": (decorrelate, ("pca", "ica", "none")), "h2-method": (h2_method, ("greml", "he"))}
    for option, (value, valid) in choices.items():
        if value not in valid:
            raise BiolatentError(f"--{option} must be one of {', '.join(valid)}, got {value!r}")
    if polygenic_score is not None and pgs_weights is not None:
        raise BiolatentError("give --polygenic-score (a metadata column) or --pgs-weights (a weights table), not both")
    if pgs_weights is not None and not pgs_weights.is_file():
        raise BiolatentError(f"--pgs-weights: file not found: {pgs_weights}")
    settings = DiscoverSettings(
        decorrelate=decorrelate, n_components=n_components, engine=_engine(engine),  # type: ignore[arg-type]
        qc=_qc_config(qc, maf, geno, hwe, mind), n_pcs=pcs, h2_method=h2_method,  # type: ignore[arg-type]
        cluster_method=cluster_method, n_clusters=n_clusters, polygenic_score=polygenic_score, dosage=dosage,
        pgs_weights=None if pgs_weights is None else str(pgs_weights), seed=seed, spark_master=spark_master)
    folder = out if out is not None else embeddings.parent / "discover"
    typer.echo(str(run_discover(embeddings, genotypes, folder, covariates_tsv=covariates, settings=settings,
                                say=say)))


def h2(
    genotypes: Annotated[Path, typer.Option(help="PLINK prefix (.bed/.bim/.fam) or VCF(.gz)")],
    phenotypes: Annotated[Path, typer.Option(help="table: id column + one column per trait")],
    out: Annotated[Path, typer.Option(help="output folder (h2.tsv)")],
    covariates: Annotated[Path | None, typer.Option(help="table: id column + covariates")] = None,
    method: Annotated[str, typer.Option(help="greml (REML on the GRM) or he (Haseman-Elston)")] = "greml",
) -> None:
    """SNP-heritability of every trait with its standard error -> OUT/h2.tsv."""
    from biolatent.errors import BiolatentError
    from biolatent.workflows.h2 import run_h2

    if method not in ("greml", "he"):
        raise BiolatentError(f"--method must be greml or he, got {method!r}")
    typer.echo(str(run_h2(genotypes, phenotypes, covariates, out, method=method, say=say)))


def _engine(name: str) -> str:
    from biolatent.errors import BiolatentError

    if name not in ("numpy", "hail"):
        raise BiolatentError(f"--engine must be numpy or hail, got {name!r}")
    return name


def export_hail(
    source: Annotated[Path, typer.Argument(help="embeddings.h5ad (or a run folder holding it), or a phenotype table "
                                                "(id + traits; or a discover folder: its phenotypes.tsv)")],
    out: Annotated[Path, typer.Option(help="the new MatrixTable (e.g. OUT.mt; must not exist)")],
    genotypes: Annotated[str | None, typer.Option(help="PLINK prefix: rows = its variants, columns = its "
                                                       "samples")] = None,
    matrix_table: Annotated[Path | None, typer.Option(help="an existing MatrixTable (.mt) to annotate instead "
                                                           "(columns keyed by one string id)")] = None,
    field: Annotated[str, typer.Option(help="column struct field holding the traits")] = "biolatent",
    decorrelate: Annotated[str, typer.Option(help="embeddings only: pca, ica or none")] = "pca",
    n_components: Annotated[int, typer.Option(min=1, help="embeddings only: number of latent traits")] = 10,
    covariates: Annotated[Path | None, typer.Option(help="embeddings only: covariates residualised out "
                                                         "(id + columns)")] = None,
    seed: Annotated[int, typer.Option(help="random seed (ica)")] = 0,
    spark_master: Annotated[str | None, typer.Option(help=SPARK_HELP)] = None,
) -> None:
    """Latent phenotypes as column fields of a Hail MatrixTable -> OUT (runs in the Hail environment)."""
    from biolatent.errors import BiolatentError
    from biolatent.workflows.hail_export import run_hail_export

    if decorrelate not in ("pca", "ica", "none"):
        raise BiolatentError(f"--decorrelate must be one of pca, ica, none, got {decorrelate!r}")
    typer.echo(str(run_hail_export(source, out, genotypes=genotypes, matrix_table=matrix_table, field=field,
                                   decorrelate=decorrelate, n_components=n_components,  # type: ignore[arg-type]
                                   covariates=covariates, seed=seed, spark_master=spark_master, say=say)))
