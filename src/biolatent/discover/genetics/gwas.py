"""Linear-regression GWAS of many traits at once (the numpy engine), the same model as ``plink2 --glm``.

For each trait y and variant g: OLS of y on [1, covariates, g]; BETA/SE/T_STAT of g, two-sided P from
Student's t with n - k - 1 df (k = intercept + covariates). All traits and a chunk of variants are handled
by a few matrix products (Frisch-Waugh-Lovell): traits are residualised once on the orthonormal basis Q of
the covariate matrix; then per variant ``beta = <g_r, y_r> / <g_r, g_r>``.

Missing phenotypes: a sample without a value is dropped for that trait only. Traits are grouped by their
missingness pattern; each group has its own Q. Missing genotype calls (as in plink2): the sample is dropped
for that variant. With W the mask of called samples and M = 1 - W, regressing y_r on [Q, g] over W needs
only masked sums: ``A = Q'WQ = I - Q'MQ``, ``b_y = Q'W y_r = -Q'M y_r``, ``b_g = Q'W g``; the per-variant
re-projection on the covariates is then ``gg = g'Wg - b_g'A^-1 b_g``, ``gy = g'W y_r - b_g'A^-1 b_y``,
``yy = y_r'W y_r - b_y'A^-1 b_y`` (M is sparse: the correction costs O(missing calls)). Variants that are
monomorphic or all-missing among a trait's samples, or collinear with the covariates, get NaN statistics.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse
from scipy import special

from biolatent.errors import DataError
from biolatent.io.genotype_matrix import BLOCK_ELEMENTS, BedDosages, Genotypes, variant_blocks

GWAS_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "A1", "TRAIT", "OBS_CT", "BETA", "SE", "T_STAT", "P",
                "LOG10_P"]
_COLLINEAR_TOL = 1e-8  # a variant whose residual variance is below this fraction of its variance is untested
_LOG_P_SWITCH = 1e-250  # below this p, LOG10_P comes from the log-space continued fraction


def t_log10_p(t: np.ndarray, df: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
    """-log10 of the two-sided Student-t p-value, accurate far below the smallest double (1e-308).

    ``p``: the p-values when already computed (``2 * stdtr(df, -|t|)``), to save their recomputation.
    """
    t, df = np.broadcast_arrays(np.asarray(t, float), np.asarray(df, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2.0 * special.stdtr(df, -np.abs(t)) if p is None else np.asarray(p, float)
        out = -np.log10(p)
    tiny = np.isfinite(t) & (df > 0) & ~(p > _LOG_P_SWITCH)
    if tiny.any():
        out[tiny] = -_log_t_two_sided(t[tiny], df[tiny]) / np.log(10.0)
    return out


def _log_t_two_sided(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """ln P(|T| > |t|) = ln I_x(df/2, 1/2), x = df / (df + t^2), by the continued fraction of I_x in log space."""
    a, b = df / 2.0, 0.5
    log_den = np.log(df + t * t)
    x = np.exp(np.log(df) - log_den)
    log_prefix = a * (np.log(df) - log_den) + b * (2.0 * np.log(np.abs(t)) - log_den) - np.log(a) - special.betaln(a, b)
    tiny = 1e-300
    c = np.ones_like(x)
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    for m in range(1, 20001):  # Lentz's algorithm (Numerical Recipes' betacf)
        for aa in (m * (b - m) * x / ((a - 1 + 2 * m) * (a + 2 * m)),
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1 + 2 * m))):
            d = 1.0 + aa * d
            d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
            c = 1.0 + aa / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            step = d * c
            h = h * step
        if np.all(np.abs(step - 1.0) < 1e-15):
            break
    return log_prefix + np.log(h)


def genomic_inflation(p: np.ndarray | pd.Series) -> float:
    """Genomic control lambda: median of the 1-df chi-square statistics of ``p`` over its expected median.

    The statistic falls as p rises, so its median is that of the one or two middle p-values: only they are
    converted (the same number as converting all, without a million special-function calls)."""
    p = np.asarray(p, float)
    p = p[np.isfinite(p)]
    if p.size == 0:
        return float("nan")
    middle = [(p.size - 1) // 2, p.size // 2]
    statistics = _chi2_1df_isf(np.partition(p, middle)[middle])
    return float(statistics.mean() / _chi2_1df_isf(np.array([0.5]))[0])


def _chi2_1df_isf(p: np.ndarray) -> np.ndarray:
    """The 1-df chi-square statistic exceeded with probability ``p``: Z^2 with P(|Z| > z) = erfc(z / sqrt 2) = p,
    so x = 2 erfcinv(p)^2 (scipy.special, without importing scipy.stats for a command that needs nothing else
    of it)."""
    return 2.0 * special.erfcinv(np.asarray(p, float)) ** 2


def _numeric(table: pd.DataFrame, what: str) -> pd.DataFrame:
    out = table.copy()
    out.index = out.index.astype(str)
    for column in out.columns:
        values = pd.to_numeric(out[column], errors="coerce")
        if values.notna().sum() != out[column].notna().sum():
            raise DataError(f"{what} {column!r} has non-numeric values")
        out[column] = values.astype(float)
    return out


def _collinear_message(x: np.ndarray, names: list[str], context: str) -> str | None:
    """None if ``x`` has full column rank, else a one-line message naming the collinear columns."""
    scale = np.linalg.norm(x, axis=0)
    xs = x / np.where(scale > 0, scale, 1.0)
    _, r, piv = scipy.linalg.qr(xs, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int(np.sum(diag > 1e-9 * max(diag[0], 1e-300)))
    if rank == x.shape[1]:
        return None
    kept, dropped = piv[:rank], piv[rank:]
    coef = np.linalg.lstsq(xs[:, kept], xs[:, dropped[0]], rcond=None)[0]
    partners = [names[kept[i]] for i in np.flatnonzero(np.abs(coef) > 1e-6)]
    return (f"the covariate matrix{context} is singular (rank {rank} of {x.shape[1]} columns): "
            f"{', '.join(repr(names[i]) for i in dropped)} collinear with "
            f"{', '.join(map(repr, partners)) or 'nothing (all zero)'}")


def _match(genotypes: Genotypes, phenotypes: pd.DataFrame, covariates: pd.DataFrame | None) -> tuple:
    """Matched rows of the genotypes, aligned phenotypes/covariates, and the summary of the matching."""
    geno_ids = [str(s) for s in genotypes.samples]
    phen = _numeric(phenotypes, "trait")
    cov = None if covariates is None else _numeric(covariates, "covariate")
    if phen.shape[1] == 0:
        raise DataError("the phenotype table has no trait columns")
    wanted = set(phen.index) if cov is None else set(phen.index) & set(cov.index)
    rows = [i for i, s in enumerate(geno_ids) if s in wanted]
    if not rows:
        if cov is not None and set(phen.index) & set(geno_ids):
            other, example = "covariates", cov.index[0] if len(cov) else "none"
        else:
            other, example = "phenotypes", phen.index[0] if len(phen) else "none"
        raise DataError(f"no sample ids in common between genotypes (e.g. {geno_ids[0]!r}) and {other} "
                        f"(e.g. {example!r})")
    ids = [geno_ids[i] for i in rows]
    complete = np.ones(len(ids), bool) if cov is None else cov.reindex(ids).notna().all(axis=1).to_numpy()
    rows, ids = [r for r, ok in zip(rows, complete, strict=True) if ok], [s for s, ok in zip(ids, complete,
                                                                                            strict=True) if ok]
    if not rows:
        raise DataError("every matched sample has a missing covariate value")
    summary = {"n_genotyped": len(geno_ids), "n_phenotyped": len(phen), "n_matched": len(complete),
               "n_genotyped_unmatched": len(geno_ids) - len(complete),
               "n_phenotyped_unmatched": len(set(phen.index) - set(geno_ids)),
               "n_missing_covariate": int((~complete).sum()), "n_samples": len(ids)}
    cov_x = np.empty((len(ids), 0)) if cov is None else cov.reindex(ids).to_numpy(float)
    cov_names = [] if cov is None else [str(c) for c in cov.columns]
    return np.asarray(rows), phen.reindex(ids), cov_x, cov_names, summary


def _trait_groups(y: np.ndarray, x: np.ndarray, names: list[str], traits: list[str]) -> list[dict]:
    """Traits sharing a missingness pattern: their samples, covariate basis Q and residualised values."""
    patterns: dict[bytes, list[int]] = {}
    for t, trait in enumerate(traits):
        have = ~np.isnan(y[:, t])
        values = y[have, t]
        if values.size == 0 or np.ptp(values) == 0:
            raise DataError(f"trait {trait!r} is constant (or has no values) over the matched samples: "
                            f"nothing to regress")
        patterns.setdefault(have.tobytes(), []).append(t)
    groups = []
    for key, members in patterns.items():
        have = np.frombuffer(key, dtype=bool)
        xs = x[have]
        label = f" among the {have.sum()} samples with trait {traits[members[0]]!r}"
        message = _collinear_message(xs, names, label if not have.all() else "")
        if message:
            raise DataError(message)
        if have.sum() <= xs.shape[1] + 1:
            raise DataError(f"trait {traits[members[0]]!r} has {have.sum()} samples for {xs.shape[1] + 1} "
                            f"parameters: too few to regress")
        q = np.linalg.qr(xs)[0]
        yv = y[np.ix_(have, members)]
        yr = yv - q @ (q.T @ yv)
        groups.append({"rows": np.flatnonzero(have), "traits": np.asarray(members), "q": q, "yr": yr,
                       "yq": np.hstack([yr, q]), "yq1": np.hstack([yr, q, np.ones((len(q), 1))]),
                       "yq_sums": np.hstack([yr, q]).sum(axis=0),
                       "yy": np.einsum("nt,nt->t", yr, yr)})
    return groups


_CANCELLATION = 1e-6  # sum of squares below this fraction of the raw one: recomputed from centred values


def _chunk_stats(g: np.ndarray, grp: dict, out: np.ndarray | None = None, squares: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, ...]:
    """(obs count, beta, se, t, df) of every variant row of ``g`` (variant-major float64 dosages, (m, n), NaN =
    missing) for the traits of ``grp``.

    Complete rows (no missing call: their float64 sum, a column of the matrix product, is not NaN) are not
    centred: with mean mu and the raw products ``G Y`` (one matrix product with the residualised traits, the
    covariate basis and ones, ``yq1``), the centred products are ``G Y - mu (1'Y)`` and the sum of squares
    ``sum g^2 - n mu^2``. Where that difference
    loses more than six of the sixteen digits (``_CANCELLATION``: nearly constant rows) the row is centred
    and recomputed; a constant row then has a sum of squares of exactly 0 (its float64 mean is that constant),
    which marks it untested. Blocks with missing calls go through ``_centred_stats``; ``out``: its float64
    (n, >= m) Fortran-order buffer, reused across blocks. ``squares``: each row's sum of squares, when already
    computed (by the reader thread)."""
    raw = g @ grp["yq1"]  # the last column, a product with ones, is each row's sum (NaN where a call is missing)
    sums = raw[:, -1]
    if np.isnan(sums).any():
        return _centred_stats(g.T, grp, out)
    n = g.shape[1]
    mean = sums / n
    products = raw[:, :-1] - np.outer(mean, grp["yq_sums"])
    squares = np.einsum("mn,mn->m", g, g) if squares is None else squares
    ss = squares - n * mean * mean
    exact = np.flatnonzero(ss <= _CANCELLATION * squares)
    if exact.size:
        centred = g[exact] - mean[exact, None]
        products[exact] = centred @ grp["yq"]
        ss[exact] = np.einsum("mn,mn->m", centred, centred)
    return _regression_stats(products, ss, np.full(g.shape[0], n), grp)


def _centred_stats(g: np.ndarray, grp: dict, out: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """``_chunk_stats`` of a (samples, variants) block with missing calls: its values centred on the called
    samples' mean into ``out`` (missing calls 0), then the products; see the module docstring for the
    missing-call correction."""
    n, m = g.shape
    g = np.asarray(g, dtype=np.float32)
    gc = np.empty((n, m), np.float64, order="F") if out is None else out[:, :m]
    miss = np.isnan(g)
    g = np.where(miss, np.float32(0), g)
    obs = n - np.count_nonzero(miss, axis=0)
    np.subtract(g, g.sum(axis=0, dtype=np.float64) / np.maximum(obs, 1), out=gc)
    np.putmask(gc, miss, 0.0)
    return _regression_stats(gc.T @ grp["yq"], np.einsum("nm,nm->m", gc, gc), obs, grp, miss)


def _regression_stats(products: np.ndarray, ss: np.ndarray, obs: np.ndarray, grp: dict,
                      miss: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(obs, beta, se, t, df) from the centred products with ``yq`` (m, traits + k), the centred sums of squares
    and the called counts; ``miss`` (samples, m): the missing-call mask, for the correction of partly called
    variants."""
    q, yr, n = grp["q"], grp["yr"], grp["q"].shape[0]
    k, nt, m = q.shape[1], yr.shape[1], products.shape[0]
    gy, bg = products[:, :nt], np.ascontiguousarray(products[:, nt:])  # <g, y_r> per trait, <g, q> per basis
    gg, yy = ss - np.einsum("mk,mk->m", bg, bg), np.broadcast_to(grp["yy"], (m, nt)).copy()
    holes = np.flatnonzero((obs < n) & (obs > 0))
    if miss is not None and holes.size:
        if "qq" not in grp:  # per-sample products for the missing-call correction, made when first needed
            grp["qy"] = (q[:, :, None] * yr[:, None, :]).reshape(n, -1)
            grp["qq"] = (q[:, :, None] * q[:, None, :]).reshape(n, -1)
        mt = scipy.sparse.csc_matrix(miss[:, holes].astype(float)).T.tocsr()
        a = np.eye(k) - (mt @ grp["qq"]).reshape(-1, k, k)
        by = -(mt @ grp["qy"]).reshape(-1, k, nt)
        bad = np.linalg.cond(a) > 1e10
        a[bad] = np.eye(k)
        sol = np.linalg.solve(a, np.concatenate([bg[holes, :, None], by], axis=2))
        gg[holes] = ss[holes] - np.einsum("jk,jk->j", bg[holes], sol[:, :, 0])
        gy[holes] -= np.einsum("jk,jkt->jt", bg[holes], sol[:, :, 1:])
        yy[holes] = yy[holes] - mt @ (yr * yr) - np.einsum("jkt,jkt->jt", by, sol[:, :, 1:])
        gg[holes[bad]] = np.nan
    df = (obs - k - 1).astype(float)
    ok = (ss > 0) & (gg > _COLLINEAR_TOL * ss) & (df > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(ok[:, None], gy / gg[:, None], np.nan)
        rss = np.maximum(yy - beta * gy, 0.0)
        se = np.sqrt(rss / df[:, None] / gg[:, None])
    return obs, beta, se, beta / se, df


def _blas_beside_reader(genotypes: Genotypes):
    """While a .bed is decoded in a background thread (``variant_blocks``), BLAS gets the other cores: with as
    many BLAS threads as cores, the reader and OpenBLAS's spinning threads compete, and the scan took twice as
    long on 2 cores (measured). Arrays in memory keep BLAS's own setting."""
    if not isinstance(genotypes.dosages, BedDosages):
        return nullcontext()
    from threadpoolctl import threadpool_limits

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return threadpool_limits(limits=max(1, cores - 1), user_api="blas")


def _scan(genotypes: Genotypes, groups: list[dict], rows: np.ndarray, chunk_size: int,
          results: tuple[np.ndarray, ...]) -> None:
    """Fill ``results`` (obs count, beta, se, t, df; traits x variants) block by block of variants."""
    obs_ct, beta, se, tstat, df = results
    buffers: dict[int, np.ndarray] = {}  # per group size: where a block with missing calls is centred, reused
    every_sample = len(rows) == genotypes.n_samples and bool((np.asarray(rows) == np.arange(len(rows))).all())
    m = genotypes.n_variants
    def prepare(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """In the reader thread: the matched samples (a gather copies the block: only when needed) and every
        variant's sum of squared dosages."""
        block = block if every_sample else block[:, rows]
        return block, np.einsum("mn,mn->m", block, block)

    for start, stop, (block, squares) in variant_blocks(genotypes.dosages, chunk_size, variant_major=True,
                                                         prepare=prepare):
        for grp in groups:
            cols = grp["traits"]
            whole = grp["rows"].size == block.shape[1]  # every matched sample has the group's traits
            size = grp["rows"].size
            if size not in buffers:
                buffers[size] = np.empty((size, min(chunk_size, m)), np.float64, order="F")
            o, b, s, t, d = _chunk_stats(block if whole else block[:, grp["rows"]], grp, buffers[size],
                                         squares if whole else None)
            obs_ct[cols, start:stop] = o[None, :]
            beta[cols, start:stop], se[cols, start:stop], tstat[cols, start:stop] = b.T, s.T, t.T
            df[cols, start:stop] = d[None, :]


def linear_gwas(genotypes: Genotypes, phenotypes: pd.DataFrame, covariates: pd.DataFrame | None = None, *,
                chunk_size: int | None = None) -> pd.DataFrame:
    """OLS of every trait on every variant (+ intercept + covariates): the long plink2-style table.

    ``phenotypes`` / ``covariates``: index = sample ids matched to ``genotypes.samples``; one column per trait
    / covariate. Samples with a missing covariate are dropped; a missing trait value drops the sample for
    that trait, a missing call for that variant. Rows are trait-major, variants in genotype order; A1 = ALT
    (the counted allele). ``table.attrs["summary"]`` holds the sample matching and untested-variant counts.
    ``chunk_size``: variants per block (default: ``BLOCK_ELEMENTS`` dosages per block, so the working memory
    does not grow with the number of samples either); the genotypes are read one block at a time.
    """
    chunk_size = max(1, BLOCK_ELEMENTS // max(genotypes.n_samples, 1)) if chunk_size is None else chunk_size
    if chunk_size < 1:
        raise DataError(f"chunk_size must be >= 1, got {chunk_size}")
    rows, phen, cov_x, cov_names, summary = _match(genotypes, phenotypes, covariates)
    traits = [str(c) for c in phen.columns]
    x = np.column_stack([np.ones(len(rows)), cov_x])
    message = _collinear_message(x, ["intercept", *cov_names], "")
    if message:
        raise DataError(message)
    groups = _trait_groups(phen.to_numpy(float), x, ["intercept", *cov_names], traits)
    m, nt = genotypes.n_variants, len(traits)
    obs_ct = np.zeros((nt, m), np.int64)  # trait-major, the row order of the table
    beta, se, tstat, df = (np.full((nt, m), np.nan) for _ in range(4))
    with _blas_beside_reader(genotypes):
        _scan(genotypes, groups, rows, chunk_size, (obs_ct, beta, se, tstat, df))
    with np.errstate(invalid="ignore"):
        p = 2.0 * special.stdtr(df, -np.abs(tstat))
        log10_p = t_log10_p(tstat, df, p=p)
    untested = np.isnan(beta)
    summary.update({"n_variants": m, "n_traits": nt, "n_variants_untested": int(untested.all(axis=0).sum()),
                    "n_results_untested": int(untested.sum()), "covariates": cov_names})
    variants = genotypes.variants
    variant_codes = np.tile(np.arange(m), nt)

    def per_variant(column: str) -> pd.Categorical:
        """Text column repeated for every trait, as a categorical (codes, not 13 million Python strings)."""
        values = variants[column].astype(str).to_numpy(object)
        categories, codes = np.unique(values, return_inverse=True)
        return pd.Categorical.from_codes(codes[variant_codes], categories=categories)

    alt = per_variant("alt")
    table = pd.DataFrame({
        "#CHROM": per_variant("chrom"), "POS": np.tile(variants["pos"].to_numpy(np.int64), nt),
        "ID": per_variant("id"), "REF": per_variant("ref"), "ALT": alt, "A1": alt.copy(),
        "TRAIT": pd.Categorical.from_codes(np.repeat(np.arange(nt), m), categories=pd.Index(traits, dtype=object)),
        "OBS_CT": obs_ct.ravel(), "BETA": beta.ravel(), "SE": se.ravel(), "T_STAT": tstat.ravel(),
        "P": p.ravel(), "LOG10_P": log10_p.ravel(),
    })
    table.attrs["summary"] = summary
    return table
