"""Lead-variant clumping like plink's ``--clump`` (Purcell et al. 2007), on the genotypes (in memory or on disk).

Per trait: variants with p < ``p1`` are index candidates, taken from the most to the least significant (by
LOG10_P, so p-values below 1e-308 still order correctly). An index variant claims every not yet claimed
variant on its chromosome within ``kb`` kilobases that has p < ``p2`` and r^2 > ``r2`` with it; a claimed
variant cannot start a clump of its own (plink's default, no overlap). r^2 is the squared Pearson
correlation of the allele dosages over the samples called at both variants (plink 1.9's unphased r^2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes

LEAD_COLUMNS = ["TRAIT", "#CHROM", "POS", "ID", "REF", "ALT", "BETA", "SE", "P", "LOG10_P", "TOTAL", "SP2"]
_KEY = ["#CHROM", "POS", "ID", "REF", "ALT"]


def dosage_r2(target: np.ndarray, others: np.ndarray) -> np.ndarray:
    """r^2 of the dosage column ``target`` (n,) with each column of ``others`` (n, c), pairwise-complete."""
    target, others = np.asarray(target, float), np.asarray(others, float)
    if np.isnan(target).any() or np.isnan(others).any():
        both = ~np.isnan(others) & ~np.isnan(target)[:, None]
        x = np.where(both, target[:, None], 0.0)
        y = np.where(both, others, 0.0)
        count = both.sum(axis=0)
        sx, sy, sxy = x.sum(axis=0), y.sum(axis=0), (x * y).sum(axis=0)
        sxx, syy = (x * x).sum(axis=0), (y * y).sum(axis=0)
    else:  # every call present: the same sums as products with the one target column
        count = np.full(others.shape[1], target.size)
        sx, sy, sxy = np.full(others.shape[1], target.sum()), others.sum(axis=0), target @ others
        sxx, syy = np.full(others.shape[1], target @ target), np.einsum("nc,nc->c", others, others)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = sx / count, sy / count
        sxy = sxy / count - mx * my
        sxx = sxx / count - mx * mx
        syy = syy / count - my * my
        r2 = sxy * sxy / (sxx * syy)
    return np.where((sxx > 1e-12) & (syy > 1e-12), r2, 0.0)


def _variant_keys(genotypes: Genotypes) -> pd.DataFrame:
    """The matching key of every variant of ``genotypes`` and its column (``_col``); DataError on duplicates."""
    v = genotypes.variants
    keys = pd.DataFrame({"#CHROM": v["chrom"].astype(str).to_numpy(), "POS": v["pos"].to_numpy(np.int64),
                         "ID": v["id"].astype(str).to_numpy(), "REF": v["ref"].astype(str).to_numpy(),
                         "ALT": v["alt"].astype(str).to_numpy(), "_col": np.arange(len(v))})
    if keys.duplicated(_KEY).any():
        raise DataError("duplicate variants (same chrom, pos, id, ref, alt) in the genotypes: cannot clump")
    return keys


def _variant_index(table: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray:
    """Column of each row of ``table`` in the genotypes of ``keys`` (matched on chrom, pos, id, ref, alt)."""
    left = table[_KEY].astype({"#CHROM": str, "POS": np.int64, "ID": str, "REF": str, "ALT": str})
    merged = left.merge(keys, on=_KEY, how="left")
    if merged["_col"].isna().any():
        row = merged[merged["_col"].isna()].iloc[0]
        raise DataError(f"GWAS variant {row['ID']!r} ({row['#CHROM']}:{row['POS']}) is not in the genotypes")
    return merged["_col"].to_numpy(np.int64)


def clump(gwas: pd.DataFrame, genotypes: Genotypes, *, p1: float = 5e-8, p2: float = 1e-2, r2: float = 0.1,
          kb: float = 250.0) -> pd.DataFrame:
    """Lead variants of every trait of a ``linear_gwas`` table: one row per clump (``LEAD_COLUMNS``).

    TOTAL: variants claimed by the lead (besides itself); SP2: their ids, comma-separated ("NONE" if none).
    """
    if not 0 < p1 <= p2 <= 1:
        raise DataError(f"clumping needs 0 < p1 <= p2 <= 1, got p1={p1}, p2={p2}")
    if "TRAIT" not in gwas.columns or "LOG10_P" not in gwas.columns:
        raise DataError("the GWAS table needs TRAIT and LOG10_P columns (from linear_gwas)")
    rows = []
    # only variants with p < p2 can lead or join a clump: the rest of the (genome-wide) table is never looked at
    strong = gwas[gwas["LOG10_P"].to_numpy(float) > -np.log10(p2)]
    led = strong.groupby("TRAIT", sort=False, observed=True)["LOG10_P"].transform("max") > -np.log10(p1)
    strong = strong[led.to_numpy(bool)]
    if len(strong):
        strong = strong.assign(_col=_variant_index(strong, _variant_keys(genotypes)))
    for trait, table in strong.groupby("TRAIT", sort=False, observed=True):
        score = table["LOG10_P"].to_numpy(float)
        candidates = np.flatnonzero(score > -np.log10(p1))
        cols = table["_col"].to_numpy(np.int64)
        chrom, pos = table["#CHROM"].astype(str).to_numpy(), table["POS"].to_numpy(np.int64)
        ids = table["ID"].astype(str).to_numpy()
        eligible = np.ones(len(table), bool)
        claimed = np.zeros(len(table), bool)
        for i in candidates[np.argsort(-score[candidates], kind="stable")]:
            if claimed[i]:
                continue
            claimed[i] = True
            near = np.flatnonzero(eligible & ~claimed & (chrom == chrom[i]) & (np.abs(pos - pos[i]) <= kb * 1000))
            members = near[:0]
            if near.size:
                dose = np.asarray(genotypes.dosages[:, np.append(cols[near], cols[i])], float)  # one read
                members = near[dosage_r2(dose[:, -1], dose[:, :-1]) > r2]
                claimed[members] = True
            lead = table.iloc[i]
            rows.append({"TRAIT": trait, **{c: lead[c] for c in LEAD_COLUMNS[1:10]}, "TOTAL": int(members.size),
                         "SP2": ",".join(ids[np.sort(members)]) or "NONE"})
    return pd.DataFrame(rows, columns=LEAD_COLUMNS)
