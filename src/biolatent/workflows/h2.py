"""``biolatent h2``: SNP heritability of every trait of a phenotype table (GREML or Haseman-Elston).

Genotypes -> GCTA GRM (Yang et al. 2011) on the samples that have genotypes and phenotypes (and
covariates, when given) -> one ``h2_table`` row per trait. With GREML and fewer variants than samples the
n x n GRM is not formed: its standardised genotypes go to GREML's low-rank path (FaST-LMM, Lippert et al.
2011). Writes into ``out_dir``: ``h2.tsv`` (trait h2 se
method n ci_low ci_high), ``metrics.json`` (section ``h2``), ``config.yaml`` and ``provenance.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from biolatent import provenance
from biolatent.errors import DataError
from biolatent.rundir import atomic_path, update_json, write_json, write_text

H2_FILE = "h2.tsv"


def _matched_ids(genotype_ids: list[str], phenotypes: pd.DataFrame, covariates: pd.DataFrame | None) -> list[str]:
    """Genotyped ids (in genotype order) that appear in the phenotype (and covariate) tables."""
    wanted = set(phenotypes.index)
    if covariates is not None:
        wanted &= set(covariates.index)
    common = [s for s in genotype_ids if s in wanted]
    if not common:
        tables = "phenotype and covariate tables" if covariates is not None else "phenotype table"
        raise DataError(f"no sample id in common between the genotypes ({len(genotype_ids)} samples, e.g. "
                        f"{genotype_ids[0]!r}) and the {tables} (e.g. {phenotypes.index[0]!r})")
    return common


def run_h2(
    genotypes_path: str | Path,
    phenotypes_tsv: str | Path,
    covariates_tsv: str | Path | None,
    out_dir: str | Path,
    *,
    method: str = "greml",
    say: Callable[[str], object] = print,
) -> Path:
    """Estimate h2 of each phenotype column; return the path of ``h2.tsv``."""
    from biolatent.discover.genetics.grm import genetic_relationship_matrix, standardised_genotypes
    from biolatent.discover.genetics.heritability import METHODS, h2_table
    from biolatent.io import read_table
    from biolatent.io.genotypes import read_genotypes

    if method not in METHODS:
        raise DataError(f"unknown heritability method {method!r} (choose from {', '.join(METHODS)})")
    out_dir = Path(out_dir)
    phenotypes = read_table(phenotypes_tsv, id_column="id")
    covariates = None if covariates_tsv is None else read_table(covariates_tsv, id_column="id")
    if phenotypes.shape[1] == 0:
        raise DataError(f"phenotype table {phenotypes_tsv} has no trait columns besides 'id'")
    for trait in phenotypes.columns:
        values = pd.to_numeric(phenotypes[trait], errors="coerce")
        if values.notna().sum() != phenotypes[trait].notna().sum():
            raise DataError(f"trait {trait!r} in {phenotypes_tsv} has non-numeric values")
        if values.nunique(dropna=True) < 2:
            raise DataError(f"trait {trait!r} in {phenotypes_tsv} is constant: heritability is undefined")
    genotypes = read_genotypes(genotypes_path)
    ids = _matched_ids([str(s) for s in genotypes.samples], phenotypes, covariates)
    position = {s: i for i, s in enumerate(map(str, genotypes.samples))}
    genotypes = genotypes.subset(sample_index=np.array([position[s] for s in ids]))
    say(f"{len(ids)} samples with genotypes and phenotypes, {genotypes.n_variants} variants")
    grm, z = None, None
    if method == "greml" and genotypes.n_variants < len(ids):  # FaST-LMM low rank: no n x n GRM, no O(n^3)
        z, n_used = standardised_genotypes(genotypes)
    else:
        grm, n_used = genetic_relationship_matrix(genotypes)
    say(f"GRM from {n_used} polymorphic variants; estimating h2 ({method}) for {phenotypes.shape[1]} traits")
    table = h2_table(phenotypes.reindex(ids), grm, ids, None if covariates is None else covariates.reindex(ids),
                     method, z=z)

    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {"genotypes": str(genotypes_path), "phenotypes": str(phenotypes_tsv),
                "covariates": None if covariates_tsv is None else str(covariates_tsv), "method": method}
    write_text(out_dir / "config.yaml", yaml.safe_dump({"h2": settings}, sort_keys=False))
    write_json(out_dir / "provenance.json", provenance.collect("h2", **settings))
    path = out_dir / H2_FILE
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    update_json(out_dir / "metrics.json", "h2", {
        **settings, "n_samples": len(ids), "n_variants_used": n_used,
        "traits": {row.trait: {"h2": row.h2, "se": row.se, "n": int(row.n)} for row in table.itertuples()},
    })
    for row in table.itertuples():
        say(f"{row.trait}: h2 = {row.h2:.3f} (se {row.se:.3f}, n = {row.n})")
    say(f"heritability -> {path}")
    return path
