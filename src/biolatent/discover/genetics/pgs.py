"""Polygenic scores: the additive score ``sum_j w_j * dosage_j(A1)`` of each sample over weighted variants.

The standard additive polygenic (risk) score (International Schizophrenia Consortium 2009, Nature 460:748;
Choi, Mak & O'Reilly 2020, Nat Protoc 15:2759), as ``plink2 --score ... cols=+scoresums`` computes it: weights
come from a table with the plink2 ``--glm`` columns ``ID``, ``A1`` and ``BETA`` (e.g. another cohort's
``gwas.tsv`` or ``lead_variants.tsv``); a weight whose A1 is the genotype's REF counts ``2 - dosage``; a
missing call contributes the variant's mean dosage over the called samples (plink2's default mean
imputation); variants absent from the genotypes or with other alleles are skipped and counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes

WEIGHT_COLUMNS = ("ID", "A1", "BETA")


def read_weights(path: str | Path) -> pd.DataFrame:
    """``ID``, ``A1``, ``BETA`` of a plink2-style table (tsv; other columns ignored, NA weights dropped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"score weights not found: {path}")
    table = pd.read_csv(path, sep="\t", dtype={"ID": str, "A1": str})
    missing = [c for c in WEIGHT_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"score weights {path} lack the column(s) {', '.join(missing)} (plink2 --glm columns)")
    table = table[list(WEIGHT_COLUMNS)].dropna()
    if table["ID"].duplicated().any():
        raise DataError(f"score weights {path}: variant {table['ID'][table['ID'].duplicated()].iloc[0]!r} appears "
                        "twice (one weight per variant: give one trait's rows)")
    return table


def polygenic_score(genotypes: Genotypes, weights: pd.DataFrame, name: str = "pgs") -> pd.Series:
    """Score of every sample (index = sample ids); ``attrs``: variants used / skipped."""
    variants = genotypes.variants.reset_index(drop=True)
    position = pd.Series(np.arange(len(variants)), index=variants["id"].astype(str))
    if position.index.has_duplicates:
        position = position[~position.index.duplicated(keep=False)]
    found = weights[weights["ID"].astype(str).isin(position.index)]
    columns = position.loc[found["ID"].astype(str)].to_numpy()
    alt = variants["alt"].astype(str).to_numpy()[columns]
    ref = variants["ref"].astype(str).to_numpy()[columns]
    a1 = found["A1"].astype(str).to_numpy()
    sign_alt, sign_ref = a1 == alt, a1 == ref
    usable = sign_alt | sign_ref
    if not usable.any():
        raise DataError(f"none of the {len(weights)} weighted variants is in the genotypes with a matching allele")
    dosages = np.asarray(genotypes.dosages[:, columns[usable]], dtype=np.float64)
    missing = np.isnan(dosages)
    if missing.all(axis=0).any():
        raise DataError("a weighted variant has no called genotype: its mean dosage is undefined")
    means = np.nanmean(dosages, axis=0)
    dosages = np.where(missing, means, dosages)
    counted = np.where(sign_alt[usable], dosages, 2.0 - dosages)
    score = counted @ found["BETA"].to_numpy(float)[usable]
    out = pd.Series(score, index=pd.Index(list(map(str, genotypes.samples)), name="id"), name=name)
    out.attrs = {"n_weights": len(weights), "n_used": int(usable.sum()),
                 "n_absent": len(weights) - len(found), "n_allele_mismatch": int((~usable).sum())}
    return out
