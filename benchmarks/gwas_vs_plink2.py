"""GWAS of many traits at once: biolatent's numpy engine (in-process) vs ``plink2 --glm`` (subprocess).

Same genotypes, covariates and traits for every tool: random (binomial dosages, MAF 0.05-0.5, a fraction of
calls missing) or the real GEUVADIS chr22 genotypes (``--dataset geuvadis-chr22``: 358 people x 85,485 SNPs,
the expression of the first 128 genes as traits, the first 4 shipped covariates). The Hail engine (Spark,
local mode, ``make hail-env``) runs the same regressions when it is available: wall time and peak RSS of the
reaped child processes (the Python driver; the Spark JVM may not be counted). biolatent: wall time of
``linear_gwas`` and its peak traced memory (tracemalloc, a second run);
plink2: wall time and peak RSS of the process (``os.wait4``), reading the .bed and writing one file per
trait. Agreement: max relative difference of BETA (sign aligned to ALT) and of -log10 P over all results.

    python benchmarks/gwas_vs_plink2.py                  # 128 traits, 2,000 samples, 20,000 variants
    python benchmarks/gwas_vs_plink2.py --quick          # 16 traits, 500 x 2,000: a smoke run
    python benchmarks/gwas_vs_plink2.py --dataset geuvadis-chr22   # real genotypes (fetched via the registry)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.discover.genetics.gwas import linear_gwas
from biolatent.io.genotype_matrix import Genotypes

COLUMNS = ("tool", "wall_s", "peak_mem_mb", "time_ratio", "mem_ratio")


def simulate(n: int, m: int, n_traits: int, n_cov: int, missing: float, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    dosages = rng.binomial(2, rng.uniform(0.05, 0.5, m), (n, m)).astype(np.float32)
    dosages[rng.random((n, m)) < missing] = np.nan
    ids = [f"s{i}" for i in range(n)]
    variants = pd.DataFrame({"chrom": np.repeat(["1", "2"], [m // 2, m - m // 2]),
                             "pos": np.r_[np.arange(m // 2), np.arange(m - m // 2)] * 100 + 1,
                             "id": [f"v{j}" for j in range(m)], "ref": "A", "alt": "G"})
    causal = rng.choice(m, 10, replace=False)
    g = np.nan_to_num(dosages[:, causal].astype(float), nan=0.6)
    phen = pd.DataFrame(rng.normal(size=(n, n_traits)) + g @ rng.normal(0, 0.3, (10, n_traits)), index=ids,
                        columns=[f"trait{t}" for t in range(n_traits)])
    cov = pd.DataFrame(rng.normal(size=(n, n_cov)), index=ids, columns=[f"pc{c + 1}" for c in range(n_cov)])
    return Genotypes(dosages, ids, variants), phen, cov


def geuvadis(n_traits: int, n_cov: int) -> tuple:
    """Real genotypes, the first ``n_traits`` genes' expression as traits, the first ``n_cov`` covariates."""
    from biolatent.datasets import fetch
    from biolatent.io import read_table
    from biolatent.io.genotypes import read_genotypes

    folder = fetch("geuvadis-chr22", progress=lambda message: print(message, flush=True))
    geno = read_genotypes(folder / "geuvadis_chr22")
    expression = read_table(folder / "expression.tsv").reindex(geno.samples)
    covariates = read_table(folder / "covariates.tsv").reindex(geno.samples)
    return geno, expression.iloc[:, :n_traits].astype(float), covariates.iloc[:, :n_cov].astype(float)


def run_hail(folder: Path, phen: pd.DataFrame, cov: pd.DataFrame) -> tuple[pd.DataFrame, float, float]:
    """(table, wall seconds, peak RSS in MB of the Hail process) of the Hail engine on ``folder``'s .bed."""
    import resource

    from biolatent.discover.genetics.hail_engine import hail_gwas

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    table = hail_gwas(folder / "data", phen, cov)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return table, wall, (after if after > before else float("nan")) / 1024.0


def engine_agreement(ours: pd.DataFrame, other: pd.DataFrame, complete_ids: set[str]) -> dict[str, Any]:
    """Relative differences of BETA and -log10 P: all results, and those of variants without missing calls."""
    merged = ours.merge(other, on=["TRAIT", "ID"], suffixes=("", "_other"), validate="one_to_one")
    ok = (merged.BETA.notna() & merged.BETA_other.notna()).to_numpy()
    beta = (np.abs(merged.BETA - merged.BETA_other) / np.abs(merged.BETA)).to_numpy()
    logp = (np.abs(merged.LOG10_P - merged.LOG10_P_other) / np.abs(merged.LOG10_P)).to_numpy()
    complete = ok & merged.ID.astype(str).isin(complete_ids).to_numpy()
    out = {"n_compared": int(ok.sum()), "median_rel_diff_beta": float(np.median(beta[ok])),
           "p99_rel_diff_beta": float(np.quantile(beta[ok], 0.99)), "max_rel_diff_beta": float(beta[ok].max()),
           "max_rel_diff_log10_p": float(logp[ok].max()), "n_complete": int(complete.sum())}
    if complete.any():
        out.update({"max_rel_diff_beta_complete": float(beta[complete].max()),
                    "max_rel_diff_log10_p_complete": float(logp[complete].max())})
    return out


def write_plink(geno: Genotypes, phen: pd.DataFrame, cov: pd.DataFrame, folder: Path) -> None:
    from bed_reader import to_bed

    v = geno.variants
    to_bed(str(folder / "data.bed"), geno.dosages, properties={
        "iid": geno.samples, "fid": geno.samples, "sid": v.id.tolist(), "chromosome": v.chrom.tolist(),
        "bp_position": v.pos.to_numpy(), "allele_1": v.alt.tolist(), "allele_2": v.ref.tolist()})
    for frame, name in ((phen, "pheno.txt"), (cov, "covar.txt")):
        out = frame.copy()
        out.insert(0, "IID", out.index)
        out.insert(0, "#FID", out.index)
        out.to_csv(folder / name, sep="\t", index=False, na_rep="NA")


def run_plink2(folder: Path, threads: int) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of plink2 --glm on ``folder``'s files."""
    command = ["plink2", "--bfile", "data", "--pheno", "pheno.txt", "--covar", "covar.txt", "--glm", "hide-covar",
               "log10", "--threads", str(threads), "--out", "out"]
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"plink2 failed: {(folder / 'out.log').read_text()[-1000:]}")
    return wall, usage.ru_maxrss / 1024.0


def agreement(ours: pd.DataFrame, folder: Path, traits: list[str]) -> dict[str, Any]:
    rel_beta, rel_logp, n_na_plink, n_na_ours = [], [], 0, 0
    for trait in traits:
        ref = pd.read_csv(folder / f"out.{trait}.glm.linear", sep="\t", na_values=["NA"])
        mine = ours[ours.TRAIT == trait].reset_index(drop=True)
        sign = np.where(ref.A1 == ref.ALT, 1.0, -1.0)
        ok = (ref.BETA.notna() & mine.BETA.notna()).to_numpy()
        n_na_plink += int(ref.BETA.isna().sum())
        n_na_ours += int(mine.BETA.isna().sum())
        rel_beta.append((np.abs(sign * ref.BETA - mine.BETA) / np.abs(mine.BETA))[ok].to_numpy())
        rel_logp.append((np.abs(ref.LOG10_P - mine.LOG10_P) / np.abs(mine.LOG10_P))[ok].to_numpy())
    beta, logp = np.concatenate(rel_beta), np.concatenate(rel_logp)
    return {"max_rel_diff_beta": float(beta.max()), "median_rel_diff_beta": float(np.median(beta)),
            "max_rel_diff_log10_p": float(logp.max()), "median_rel_diff_log10_p": float(np.median(logp)),
            "n_compared": int(beta.size), "n_na_plink2": n_na_plink, "n_na_biolatent": n_na_ours}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traits", type=int, default=None, help="default 128 (16 with --quick)")
    parser.add_argument("--samples", type=int, default=None, help="default 2000 (500 with --quick)")
    parser.add_argument("--variants", type=int, default=None, help="default 20000 (2000 with --quick)")
    parser.add_argument("--covariates", type=int, default=4)
    parser.add_argument("--missing", type=float, default=0.01, help="fraction of missing genotype calls")
    parser.add_argument("--threads", type=int, default=2, help="plink2 --threads (numpy uses its BLAS threads)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dataset", choices=("simulated", "geuvadis-chr22"), default="simulated")
    parser.add_argument("--no-hail", action="store_true", help="skip the Hail engine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.traits = args.traits or (16 if args.quick else 128)
    args.samples = args.samples or (500 if args.quick else 2000)
    args.variants = args.variants or (2000 if args.quick else 20000)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if shutil.which("plink2") is None:
        raise SystemExit("plink2 is not on PATH")
    from biolatent.discover.genetics.hail_engine import hail_available

    if args.dataset == "geuvadis-chr22":
        geno, phen, cov = geuvadis(args.traits, args.covariates)
        args.samples, args.variants = geno.n_samples, geno.n_variants
        args.missing = float(np.isnan(geno.dosages).mean())
    else:
        geno, phen, cov = simulate(args.samples, args.variants, args.traits, args.covariates, args.missing, args.seed)
    hail_reason = "skipped (--no-hail)" if args.no_hail else hail_available()
    with tempfile.TemporaryDirectory(prefix="gwas-bench-") as tmp:
        folder = Path(tmp)
        write_plink(geno, phen, cov, folder)
        if hail_reason is None:
            hail_table, hail_wall, hail_mem = run_hail(folder, phen, cov)
        plink_wall, plink_mem = run_plink2(folder, args.threads)
        start = time.perf_counter()
        ours = linear_gwas(geno, phen, cov)
        our_wall = time.perf_counter() - start
        tracemalloc.start()
        linear_gwas(geno, phen, cov)
        our_mem = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        agree = agreement(ours, folder, list(phen.columns))
    rows = [{"tool": "biolatent linear_gwas", "wall_s": our_wall, "peak_mem_mb": our_mem, "time_ratio": 1.0,
             "mem_ratio": 1.0},
            {"tool": f"plink2 --glm (--threads {args.threads})", "wall_s": plink_wall, "peak_mem_mb": plink_mem,
             "time_ratio": plink_wall / our_wall, "mem_ratio": plink_mem / our_mem}]
    hail_agree = None
    if hail_reason is None:
        rows.append({"tool": "biolatent hail engine (Spark local[2])", "wall_s": hail_wall, "peak_mem_mb": hail_mem,
                     "time_ratio": hail_wall / our_wall, "mem_ratio": hail_mem / our_mem})
        complete_ids = set(geno.variants["id"].astype(str)[~np.isnan(geno.dosages).any(axis=0)])
        hail_agree = engine_agreement(ours, hail_table, complete_ids)
    table = markdown_table(rows, COLUMNS)
    sizes = f"{args.traits} traits x {args.samples} samples x {args.variants} variants"
    source = ("real GEUVADIS chr22 genotypes, expression traits" if args.dataset == "geuvadis-chr22"
              else "simulated genotypes")
    results = args.traits * args.variants
    if hail_agree is None:
        hail_text = f"Hail engine: {hail_reason}.\n"
    else:
        exact = (f"on the {hail_agree['n_complete']:,} results of variants without missing calls: max relative "
                 f"difference BETA {hail_agree['max_rel_diff_beta_complete']:.2e}, -log10 P "
                 f"{hail_agree['max_rel_diff_log10_p_complete']:.2e}" if hail_agree["n_complete"]
                 else "no variant is free of missing calls here")
        hail_text = (f"Hail engine vs biolatent over {hail_agree['n_compared']:,} results: {exact}. Hail "
                     f"mean-imputes missing calls where plink2 and biolatent drop the sample, so results of variants "
                     f"with missing calls differ by design: median relative difference of BETA "
                     f"{hail_agree['median_rel_diff_beta']:.1e}, 99th percentile {hail_agree['p99_rel_diff_beta']:.1e}"
                     f" (the maximum, {hail_agree['max_rel_diff_beta']:.1e}, is at a beta near zero). Hail's memory "
                     f"is getrusage's peak RSS of the reaped child processes: the Python driver; the Spark JVM it "
                     f"starts may not be counted.\n")
    markdown = (f"# GWAS: biolatent vs plink2 ({sizes}, {source}, {os.cpu_count()} cores)\n\n{table}\n\n"
                f"Ratios are tool / biolatent. {results:,} regressions, {args.covariates} covariates, "
                f"{args.missing:.1%} of genotype calls missing. biolatent: in-process `linear_gwas`, peak memory "
                f"= tracemalloc peak (the {geno.dosages.nbytes / 2**20:.0f} MB genotype matrix is not counted); "
                f"plink2: subprocess reading the .bed and writing {args.traits} result files, peak RSS.\n\n"
                f"Agreement with plink2 over {agree['n_compared']:,} results: max relative difference BETA "
                f"{agree['max_rel_diff_beta']:.2e} (median {agree['median_rel_diff_beta']:.1e}), -log10 P "
                f"{agree['max_rel_diff_log10_p']:.2e} (median {agree['median_rel_diff_log10_p']:.1e}); "
                f"NA results: plink2 {agree['n_na_plink2']}, biolatent {agree['n_na_biolatent']}. plink2 prints "
                f"6 significant digits.\n\n{hail_text}")
    print(markdown)
    meta = {**vars(args), "out_dir": str(args.out_dir), "plink2": _plink2_version(), "host": host_info()}
    payload = {"rows": rows, "agreement": agree, "hail_agreement": hail_agree, "meta": meta}
    stem = "gwas_vs_plink2-cpu" + ("-geuvadis" if args.dataset == "geuvadis-chr22" else "") + (
        "-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


def _plink2_version() -> str:
    out = subprocess.run(["plink2", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


if __name__ == "__main__":
    main()
