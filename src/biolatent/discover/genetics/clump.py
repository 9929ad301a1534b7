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
from biolatent.io.genotype_matrix import BLOCK_ELEMENTS, BedDosages, Genotypes, popcount, variant_rows

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
    return _r2_from_sums(count, sx, sy, sxy, sxx, syy)


def _r2_from_sums(count, sx, sy, sxy, sxx, syy) -> np.ndarray:
    """r^2 from pairwise-complete sums (0 where either variance vanishes)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = sx / count, sy / count
        sxy = sxy / count - mx * my
        sxx = sxx / count - mx * mx
        syy = syy / count - my * my
        r2 = sxy * sxy / (sxx * syy)
    return np.where((sxx > 1e-12) & (syy > 1e-12), r2, 0.0)


_EVEN_BITS = np.uint64(0x5555555555555555)  # bit 0 of every 2-bit slot, in a 64-bit word


def _words(raw: np.ndarray) -> np.ndarray:
    """Raw .bed bytes (..., bytes) as 64-bit words (..., ceil(bytes / 8)), zero-padded: the bit operations and
    population counts then work on 8 bytes at a time (a slot never straddles a word: 4 per byte)."""
    pad = -raw.shape[-1] % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((*raw.shape[:-1], pad), np.uint8)], axis=-1)
    return np.ascontiguousarray(raw).view(np.uint64)


def _bit_planes(raw: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(called, one or more ALT, two ALT) bit planes of raw .bed words (``_words``): bit 2k of a word stands
    for its k-th sample slot (00 hom A1 = 2 ALT, 01 missing, 10 het, 11 hom A2 = 0 ALT, counting A1 = ALT).
    ``kept``: the same plane of the samples analysed (padding slots and removed samples 0)."""
    lo, hi = raw & _EVEN_BITS, (raw >> np.uint64(1)) & _EVEN_BITS
    called = ~(lo & ~hi) & kept
    return called, ~lo & kept, ~lo & ~hi & kept


def packed_r2(target: np.ndarray, others: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """``dosage_r2`` of hard calls straight from their raw .bed bytes: the target's (bytes,) and the others'
    (c, bytes), with ``kept`` the (bytes,) plane (bits 0, 2, 4, 6) of the analysed samples. A dosage is
    x = a + b with a = [x >= 1] and b = [x = 2], so x^2 = a + 3b and xy = ab' + ... (four AND-ed planes): every
    sum is a population count over the samples called at both variants (plink's bit-level r^2, with no decoding
    to numbers: 2 bits per sample instead of 64), on 64-bit words."""
    kept = _words(kept)
    tc, ta, tb = _bit_planes(_words(target)[None, :], kept)
    oc, oa, ob = _bit_planes(_words(others), kept)

    def count(x: np.ndarray) -> np.ndarray:
        return popcount(x).sum(axis=1, dtype=np.int64).astype(np.float64)

    both = tc & oc
    a_x, b_x = count(ta & both), count(tb & both)  # the target's calls where the other is called too
    a_y, b_y = count(oa & tc), count(ob & tc)
    sxy = count(ta & oa) + count(ta & ob) + count(tb & oa) + count(tb & ob)
    return _r2_from_sums(count(both), a_x + b_x, a_y + b_y, sxy, a_x + 3 * b_x, a_y + 3 * b_y)


def _kept_plane(dosages: BedDosages) -> np.ndarray:
    """The (bytes,) bit plane (bits 0, 2, 4, 6) of the file's samples that ``dosages`` exposes."""
    slots = np.zeros(((dosages.n_file_samples + 3) // 4) * 4, np.uint8)
    slots[np.arange(dosages.n_file_samples) if dosages.sample_index is None else dosages.sample_index] = 1
    return (slots.reshape(-1, 4) << np.array([0, 2, 4, 6], np.uint8)).sum(axis=1, dtype=np.uint8)


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


def _window_partners(table: pd.DataFrame, p1: float, kb: float) -> dict[int, np.ndarray]:
    """For every index candidate of one trait's table (genotype column -> sorted genotype columns): the variants
    of the table on its chromosome within ``kb`` kilobases, itself excluded. A superset of what the clumping
    looks at (claimed variants drop out as it goes), so the r^2 can be computed before it starts."""
    score = table["LOG10_P"].to_numpy(float)
    cols = table["_col"].to_numpy(np.int64)
    chrom, pos = table["#CHROM"].astype(str).to_numpy(), table["POS"].to_numpy(np.int64)
    partners = {}
    for i in np.flatnonzero(score > -np.log10(p1)):
        near = (chrom == chrom[i]) & (np.abs(pos - pos[i]) <= kb * 1000)
        near[i] = False
        partners[int(cols[i])] = cols[near]
    return partners


def lead_r2(genotypes: Genotypes, partners: dict[int, np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """r^2 (``dosage_r2``) of each lead column with each of its partner columns: lead -> (sorted unique partner
    columns, their r^2). Every lead is read once and its partners in blocks (memory bounded by a block whatever
    the window), so a lead shared by many traits (a pleiotropic variant) costs one pass over the union of its
    partners instead of one per trait. A .bed on disk is not decoded: its raw bytes give the r^2 of the hard
    calls (``packed_r2``); genotypes in memory (dosages) go through ``dosage_r2``."""
    out = {}
    dosages = genotypes.dosages
    on_disk = isinstance(dosages, BedDosages)
    kept = _kept_plane(dosages) if on_disk else None
    block = max(1, BLOCK_ELEMENTS // max(genotypes.n_samples, 1)) * (32 if on_disk else 1)  # 2 bits, not 64
    for lead, cols in partners.items():
        cols = np.unique(cols)
        values = np.empty(cols.size)
        if cols.size:
            target = dosages.packed(np.array([lead]))[0] if on_disk else variant_rows(dosages, np.array([lead]))[0]
            for start in range(0, cols.size, block):
                part = cols[start:start + block]
                values[start:start + block] = (packed_r2(target, dosages.packed(part), kept) if on_disk
                                               else dosage_r2(target, variant_rows(dosages, part).T))
        out[lead] = (cols, values)
    return out


def clump(gwas: pd.DataFrame, genotypes: Genotypes, *, p1: float = 5e-8, p2: float = 1e-2, r2: float = 0.1,
          kb: float = 250.0) -> pd.DataFrame:
    """Lead variants of every trait of a ``linear_gwas`` table: one row per clump (``LEAD_COLUMNS``).

    TOTAL: variants claimed by the lead (besides itself); SP2: their ids, comma-separated ("NONE" if none).
    The r^2 of every (index candidate, nearby variant with p < p2) pair is computed first, once per candidate
    variant over all traits (``lead_r2``); the clumping itself then only looks them up.
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
    traits = list(strong.groupby("TRAIT", sort=False, observed=True))
    partners: dict[int, list[np.ndarray]] = {}
    for _, table in traits:
        for lead, cols in _window_partners(table, p1, kb).items():
            partners.setdefault(lead, []).append(cols)
    r2_of = lead_r2(genotypes, {lead: np.concatenate(parts) for lead, parts in partners.items()})
    for trait, table in traits:
        score = table["LOG10_P"].to_numpy(float)
        candidates = np.flatnonzero(score > -np.log10(p1))
        cols = table["_col"].to_numpy(np.int64)
        chrom, pos = table["#CHROM"].astype(str).to_numpy(), table["POS"].to_numpy(np.int64)
        ids = table["ID"].astype(str).to_numpy()
        claimed = np.zeros(len(table), bool)
        for i in candidates[np.argsort(-score[candidates], kind="stable")]:
            if claimed[i]:
                continue
            claimed[i] = True
            near = np.flatnonzero(~claimed & (chrom == chrom[i]) & (np.abs(pos - pos[i]) <= kb * 1000))
            members = near[:0]
            if near.size:
                partner_cols, partner_r2 = r2_of[int(cols[i])]
                members = near[partner_r2[np.searchsorted(partner_cols, cols[near])] > r2]
                claimed[members] = True
            lead = table.iloc[i]
            rows.append({"TRAIT": trait, **{c: lead[c] for c in LEAD_COLUMNS[1:10]}, "TOTAL": int(members.size),
                         "SP2": ",".join(ids[np.sort(members)]) or "NONE"})
    return pd.DataFrame(rows, columns=LEAD_COLUMNS)
