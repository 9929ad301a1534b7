"""``biolatent export-hail``: latent phenotypes -> column fields of a Hail MatrixTable.

Source: an embeddings file (``.h5ad``, or a run directory holding ``embeddings.h5ad``), whose latent phenotypes
are computed as ``discover`` computes them (``discover.phenotypes.latent_phenotypes``: covariates residualised,
PCA/ICA, rank inverse normal transform) over every embedded sample; or a phenotype table (``id`` + traits), e.g.
the ``phenotypes.tsv`` of a ``discover`` folder (also given as the folder itself): the exact traits that run
analysed. Every input is read and checked before Hail starts, and nothing is written on failure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from biolatent.embed import EMBEDDING_KEY
from biolatent.errors import DataError
from biolatent.workflows.discover import PHENOTYPES_FILE

EMBEDDINGS_FILE = "embeddings.h5ad"


def resolve_source(source: Path) -> tuple[Path, Literal["embeddings", "table"]]:
    """The file behind ``source``: a folder's ``phenotypes.tsv`` (discover) or ``embeddings.h5ad`` (a run)."""
    if source.is_dir():
        for name, kind in ((PHENOTYPES_FILE, "table"), (EMBEDDINGS_FILE, "embeddings")):
            if (source / name).is_file():
                return source / name, kind  # type: ignore[return-value]
        raise DataError(f"{source} holds neither {PHENOTYPES_FILE} (a discover folder) nor {EMBEDDINGS_FILE} (a run)")
    if not source.is_file():
        raise DataError(f"not found: {source}")
    return source, "embeddings" if source.suffix == ".h5ad" else "table"


def source_phenotypes(source: Path, *, decorrelate: Literal["none", "pca", "ica"] = "pca",
                      n_components: int | None = 10, covariates: Path | None = None, seed: int = 0,
                      say: Callable[[str], object] = print) -> tuple[pd.DataFrame, str]:
    """(phenotypes indexed by sample id, a note of where they came from)."""
    from biolatent.io import read_table

    path, kind = resolve_source(source)
    if kind == "table":
        if covariates is not None:
            raise DataError("--covariates applies to an embeddings source (a table holds finished phenotypes)")
        table = read_table(path, id_column="id")
        say(f"{table.shape[1]} phenotypes of {table.shape[0]} samples from {path}")
        return table, f"table {path}"
    from biolatent.discover.phenotypes import latent_phenotypes
    from biolatent.embed import read_embeddings

    adata = read_embeddings(path, key=EMBEDDING_KEY)
    x = np.asarray(adata.obsm[EMBEDDING_KEY], dtype=np.float64)
    if decorrelate != "none" and n_components is not None:
        n_components = min(n_components, x.shape[1], x.shape[0] - 1)
    elif decorrelate == "none":
        n_components = None
    cov = None if covariates is None else read_table(covariates, id_column="id")
    table = latent_phenotypes(x, [str(s) for s in adata.obs_names], decorrelate=decorrelate,
                              n_components=n_components, covariates=cov, inverse_normal=True, seed=seed)
    say(f"{table.shape[1]} latent phenotypes ({decorrelate} of {x.shape[1]} embedding dimensions, inverse-normal "
        f"transformed) for {table.shape[0]} samples of {path}")
    return table, f"embeddings {path} ({decorrelate}, {table.shape[1]} traits)"


def run_hail_export(source: str | Path, out: str | Path, *, genotypes: str | None = None,
                    matrix_table: str | Path | None = None, field: str = "biolatent",
                    decorrelate: Literal["none", "pca", "ica"] = "pca", n_components: int | None = 10,
                    covariates: str | Path | None = None, seed: int = 0, spark_master: str | None = None,
                    say: Callable[[str], object] = print) -> Path:
    """Write the MatrixTable ``out``; return its path."""
    from biolatent.discover.genetics.engines import PLINK_SUFFIXES
    from biolatent.discover.genetics.hail_export import check_export, export_matrix_table

    out = Path(out)
    prefix = None
    if genotypes is not None:
        text = str(genotypes)
        prefix = text[:-4] if text.lower().endswith(PLINK_SUFFIXES) else text
        missing = [prefix + s for s in PLINK_SUFFIXES if not Path(prefix + s).is_file()]
        if missing:
            raise DataError(f"--genotypes must be a PLINK file set (.bed/.bim/.fam; for a VCF write a MatrixTable "
                            f"with hl.import_vcf first and give --matrix-table): missing {missing[0]}")
    check_export(out, field, prefix, None if matrix_table is None else Path(matrix_table), spark_master)
    phenotypes, note = source_phenotypes(Path(source), decorrelate=decorrelate, n_components=n_components,
                                         covariates=None if covariates is None else Path(covariates), seed=seed,
                                         say=say)
    if prefix is not None:
        from biolatent.io.genotypes import read_sample_ids

        genotyped = set(read_sample_ids(prefix))
        if not genotyped & set(map(str, phenotypes.index)):
            raise DataError(f"no sample of {prefix}.fam has a phenotype (genotyped e.g. {sorted(genotyped)[:3]}, "
                            f"phenotyped e.g. {list(map(str, phenotypes.index[:3]))})")
    report: dict[str, Any] = export_matrix_table(phenotypes, out, genotypes=prefix, matrix_table=matrix_table,
                                                 field=field, source=note, master=spark_master, say=say)
    say(f"MatrixTable -> {out} (column field {field!r}: {', '.join(map(str, phenotypes.columns))}; read with "
        f"hl.read_matrix_table; Spark application {report['spark']['application_id']})")
    return out
