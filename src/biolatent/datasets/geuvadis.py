"""geuvadis-chr22: real genotypes, expression and covariates of the GEUVADIS samples, chromosome 22.

Source: the Debian package ``qtltools-example`` (the QTLtools example data, Delaneau et al. 2017, Nat Commun
8:15452), file ``/usr/share/doc/qtltools/examples/examples.tar.xz``. Its genotypes are 1000 Genomes phase 3
phased calls (GRCh37; 1000 Genomes Project Consortium 2015, Nature 526:68) of the individuals with
lymphoblastoid RNA-seq in GEUVADIS (Lappalainen et al. 2013, Nature 501:506); ``genes.50percent`` holds the
quantified expression of chr22 genes, ``genes.covariates.pc50`` 3 genotype PCs and 50 expression PCs. (The
archive's ``genes.simulated...`` file is simulated and not used.)

Conversion (``convert``):

* ``geuvadis_chr22.bed/.bim/.fam``: PLINK files of the bi-allelic SNPs (hard calls of GT; A1 = ALT);
* ``expression.tsv``: samples x genes (``id`` column, then one column per gene id), from the genes x samples BED;
* ``genes.tsv``: the gene coordinates of the BED (gene, chrom, start, end, length, strand);
* ``covariates.tsv``: samples x covariates (``id``, then ``genotypes_1_1_svd_PC1``..., the file's row names
  without their directory), from the covariates x samples table.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.datasets.recipe import AptRecipe
from biolatent.errors import DataError
from biolatent.io.tables import write_table

GENOTYPES = "genotypes.chr22.vcf.gz"
EXPRESSION = "genes.50percent.chr22.bed.gz"
COVARIATES = "genes.covariates.pc50.txt.gz"
PREFIX = "geuvadis_chr22"
_BED_COLUMNS = ("#chr", "start", "end", "gene", "length", "strand")
_BASES = re.compile(r"^[ACGT]$")


def convert_genotypes(vcf: Path, out_dir: Path) -> None:
    """PLINK prefix ``geuvadis_chr22`` of the bi-allelic SNPs (single-base REF and ALT) of the VCF."""
    from biolatent.io.genotypes import read_genotypes, write_plink

    genotypes = read_genotypes(vcf)
    v = genotypes.variants
    snp = v["ref"].str.upper().str.match(_BASES) & v["alt"].str.upper().str.match(_BASES)
    if not snp.all():
        genotypes = genotypes.subset(variant_index=np.flatnonzero(snp.to_numpy()))
    write_plink(genotypes, out_dir / PREFIX)


def convert_expression(bed: Path, out_dir: Path) -> None:
    """``expression.tsv`` (samples x genes) and ``genes.tsv`` from the genes x samples BED."""
    table = pd.read_csv(bed, sep="\t", dtype={"gene": str})
    if tuple(table.columns[:6]) != _BED_COLUMNS:
        raise DataError(f"{bed.name}: expected the columns {', '.join(_BED_COLUMNS)}, got {list(table.columns[:6])}")
    if table["gene"].duplicated().any():
        raise DataError(f"{bed.name}: duplicate gene ids")
    genes = table[list(_BED_COLUMNS)].rename(columns={"#chr": "chrom"}).set_index("gene")
    values = table.set_index("gene").drop(columns=[c for c in _BED_COLUMNS if c != "gene"])
    expression = values.T.astype(np.float64)
    expression.index = pd.Index([str(s) for s in expression.index], name="id")
    expression.columns.name = None
    write_table(out_dir / "expression.tsv", expression)
    write_table(out_dir / "genes.tsv", genes[["chrom", "start", "end", "length", "strand"]].rename_axis("gene"))


def convert_covariates(path: Path, out_dir: Path) -> None:
    """``covariates.tsv`` (samples x covariates) from the whitespace-separated covariates x samples table."""
    table = pd.read_csv(path, sep=r"\s+", index_col=0)
    names = [str(name).rstrip("/").rsplit("/", 1)[-1] for name in table.index]
    if len(set(names)) != len(names):
        raise DataError(f"{path.name}: covariate names are not unique without their directories")
    table.index = names
    covariates = table.T.astype(np.float64)
    covariates.index = pd.Index([str(s) for s in covariates.index], name="id")
    covariates.columns.name = None
    write_table(out_dir / "covariates.tsv", covariates)


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """Write the PLINK genotypes, expression, gene and covariate tables (module docstring)."""
    convert_genotypes(members[GENOTYPES], out_dir)
    convert_expression(members[EXPRESSION], out_dir)
    convert_covariates(members[COVARIATES], out_dir)


RECIPE = AptRecipe(
    name="geuvadis-chr22",
    description="GEUVADIS chr22: 358 people x 85,485 SNPs (1000G phase 3) + expression of 608 genes + 53 covariates",
    modality="genotypes",
    package="qtltools-example",
    version="1.3.1+dfsg-4",
    members=(GENOTYPES, EXPRESSION, COVARIATES),
    sha256={
        GENOTYPES: "28ec28eede71d3bfe3ed06a5da1c818924459380ddd1ee16201f334361e345c0",
        EXPRESSION: "fc50a0750194971d18ba28ac69f787ba10c26bd03eb204ef1cd88b3d22b28d7d",
        COVARIATES: "a8936c43d74c657ecfbb18169c9ffc553e3d6254b48334b75580c6f142555c02",
    },
    convert=convert,
    data_config={"modality": "genotypes", "path": PREFIX, "phenotypes": "expression.tsv",
                 "covariates": "covariates.tsv"},
    labels=[],
    archive="/usr/share/doc/qtltools/examples/examples.tar.xz",
    archive_sha256="1adcbc3aa735d0cebe85afa38d10b1718dda054a6b540a927d24eab11f9f444d",
)
