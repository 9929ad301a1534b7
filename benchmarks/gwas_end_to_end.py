"""GWAS end to end, files to files: the `biolatent gwas` command against the `plink2 --glm` command.

Both read the same .bed/.bim/.fam, phenotype and covariate files, apply the same QC (MAF 0.01, variant
missingness 0.05, HWE exact p 1e-6, sample missingness 0.05) and write one result table (biolatent:
`gwas.tsv`, lead variants and, unless `--no-plots`, a Manhattan and a QQ plot per trait; plink2: one file per
trait). Timed as processes (wall time, and peak RSS from `os.wait4`), each in the same run on the same machine,
with genotype calls complete and with a fraction of them missing (plink2 2.00a3.5 is much slower on missing
calls). biolatent's own stages (`metrics.json`: read + QC + regression as `scan`, write, clump, plots) are
listed beside. Agreement: max relative difference of BETA and of P over the results both tools report.

A second case, 100,000 people x 5,000 variants (the same number of genotypes, ten times the people; calls
complete), shows the peak memory when the people, not the variants, are many: the genotypes are read in blocks
of a fixed number of dosages, so fewer variants per block.

    python benchmarks/gwas_end_to_end.py           # 10,000 people x 50,000 variants x 64 traits, 2 covariates
                                                   # (+ 100,000 x 5,000 x 64)
    python benchmarks/gwas_end_to_end.py --quick   # 1,000 x 5,000 x 8 (+ 4,000 x 1,250 x 8): a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _report import RESULTS_DIR, host_info, markdown_table, timed, write_results
from gwas_vs_plink2 import simulate, write_plink

QC = ["--maf", "0.01", "--geno", "0.05", "--hwe", "1e-6", "--mind", "0.05"]
COLUMNS = ("people", "variants", "missing calls", "tool", "wall_s", "peak_rss_mb", "time_ratio")


def write_inputs(folder: Path, samples: int, variants: int, traits: int, covariates: int, missing: float) -> None:
    geno, phen, cov = simulate(samples, variants, traits, covariates, missing, seed=0)
    write_plink(geno, phen, cov, folder)  # data.bed, pheno.txt / covar.txt (#FID IID ...) for plink2
    for frame, name in ((phen, "pheno.tsv"), (cov, "covar.tsv")):
        frame.rename_axis("id").reset_index().to_csv(folder / name, sep="\t", index=False)


def write_inputs_apart(folder: Path, args, samples: int, variants: int, missing: float) -> list[str]:
    """The inputs written by a separate process: a child forked from a parent that held the simulated matrix
    would inherit that parent's resident size as its own peak RSS (Linux ``ru_maxrss`` spans the fork)."""
    import multiprocessing

    job = multiprocessing.get_context("spawn").Process(
        target=write_inputs, args=(folder, samples, variants, args.traits, args.covariates, missing))
    job.start()
    job.join()
    if job.exitcode != 0:
        raise RuntimeError(f"writing the inputs failed (exit code {job.exitcode})")
    return [f"trait{t}" for t in range(args.traits)]


def agreement(folder: Path, traits: list[str]) -> dict[str, Any]:
    ours = pd.read_csv(folder / "bl" / "gwas.tsv", sep="\t", usecols=["TRAIT", "ID", "BETA", "P"],
                       dtype={"TRAIT": str, "ID": str})
    beta_diff, p_diff = [], []
    for trait in traits:
        ref = pd.read_csv(folder / f"plink.{trait}.glm.linear", sep="\t", usecols=["ID", "A1", "ALT", "BETA", "P"],
                          dtype={"ID": str})
        ref["BETA"] = np.where(ref.A1 == ref.ALT, 1.0, -1.0) * ref.BETA
        merged = ours[ours.TRAIT == trait].merge(ref, on="ID", suffixes=("", "_plink2"))
        merged = merged.dropna(subset=["BETA", "BETA_plink2", "P", "P_plink2"])
        beta_diff.append((np.abs(merged.BETA - merged.BETA_plink2) / np.abs(merged.BETA)).to_numpy())
        both = merged[(merged.P > 0) & (merged.P_plink2 > 0)]  # a P below the smallest double reads as 0
        p_diff.append((np.abs(both.P - both.P_plink2) / both.P).to_numpy())
    beta, p = np.concatenate(beta_diff), np.concatenate(p_diff)
    return {"n_compared": int(beta.size), "max_rel_diff_beta": float(beta.max()),
            "n_compared_p": int(p.size), "max_rel_diff_p": float(p.max())}


def run_case(samples: int, variants: int, missing: float, args, say, no_plots: bool = True,
             ) -> tuple[list[dict], dict[str, Any]]:
    """plink2 and the gwas command (and, with ``no_plots``, the command with --no-plots) on one simulated case."""
    folder = Path(tempfile.mkdtemp(prefix="biolatent-gwas-e2e-"))
    try:
        say(f"missing calls {missing:g}: writing {samples} x {variants} genotypes, {args.traits} traits")
        traits = write_inputs_apart(folder, args, samples, variants, missing)
        biolatent = [sys.executable, "-m", "biolatent.cli", "gwas", "--genotypes", "data", "--phenotypes",
                     "pheno.tsv", "--covariates", "covar.tsv", "--out"]
        plink2 = ["plink2", "--bfile", "data", "--pheno", "pheno.txt", "--covar", "covar.txt", "--glm", "hide-covar",
                  *QC, "--threads", str(args.threads), "--out", "plink"]
        plink_wall, plink_rss = timed(plink2, folder)
        say(f"  plink2 --glm: {plink_wall:.1f} s")
        rows = [{"tool": f"plink2 --glm (--threads {args.threads})", "wall_s": plink_wall, "peak_rss_mb": plink_rss}]
        stages = {}
        runs = (("biolatent gwas", []), ("biolatent gwas --no-plots", ["--no-plots"]))
        for name, extra in runs if no_plots else runs[:1]:
            out = "bl" if not extra else "bl_noplots"
            wall, rss = timed([*biolatent, out, *extra], folder)
            stages[name] = json.loads((folder / out / "metrics.json").read_text())["gwas"]["seconds"]
            say(f"  {name}: {wall:.1f} s ({', '.join(f'{k} {v:.1f}' for k, v in stages[name].items())})")
            rows.append({"tool": name, "wall_s": wall, "peak_rss_mb": rss})
        for row in rows:
            row.update({"people": samples, "variants": variants, "missing calls": f"{missing:g}",
                        "time_ratio": row["wall_s"] / plink_wall})
        return rows, {"stages": stages, "agreement": agreement(folder, traits)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=None, help="default 10000 (1000 with --quick)")
    parser.add_argument("--variants", type=int, default=None, help="default 50000 (5000 with --quick)")
    parser.add_argument("--traits", type=int, default=None, help="default 64 (8 with --quick)")
    parser.add_argument("--covariates", type=int, default=2)
    parser.add_argument("--missing", type=float, nargs="+", default=[0.0, 0.01],
                        help="fractions of missing genotype calls, one case each")
    parser.add_argument("--large-samples", type=int, default=None,
                        help="people of the second case, complete calls (default 100000; 4000 with --quick; 0: none)")
    parser.add_argument("--large-variants", type=int, default=None,
                        help="variants of the second case (default: as many genotypes as the first case)")
    parser.add_argument("--threads", type=int, default=2, help="plink2 --threads (biolatent uses its BLAS threads)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default=None,
                        help="result file stem (default gwas_end_to_end-cpu, -quick with --quick)")
    args = parser.parse_args(argv)
    args.samples = args.samples or (1000 if args.quick else 10_000)
    args.variants = args.variants or (5000 if args.quick else 50_000)
    args.traits = args.traits or (8 if args.quick else 64)
    if args.large_samples is None:
        args.large_samples = 4000 if args.quick else 100_000
    if args.large_variants is None and args.large_samples:
        args.large_variants = max(1, args.samples * args.variants // args.large_samples)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if shutil.which("plink2") is None:
        raise SystemExit("plink2 is not on PATH")

    def say(message: str) -> None:
        print(message, flush=True)

    rows, details = [], {}
    for missing in args.missing:
        case_rows, details[f"missing {missing:g}"] = run_case(args.samples, args.variants, missing, args, say)
        rows += case_rows
    if args.large_samples:
        case_rows, details[f"{args.large_samples:,} people"] = run_case(args.large_samples, args.large_variants, 0.0,
                                                                      args, say, no_plots=False)
        rows += case_rows
    version = subprocess.run(["plink2", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    stage_rows = [{"case": case, "run": name, **{k: round(v, 1) for k, v in seconds.items()}}
                  for case, detail in details.items() for name, seconds in detail["stages"].items()]
    agree = "; ".join(f"{case}: max relative difference of BETA {d['agreement']['max_rel_diff_beta']:.2e} "
                      f"over {d['agreement']['n_compared']:,} results, of P {d['agreement']['max_rel_diff_p']:.2e} "
                      f"over the {d['agreement']['n_compared_p']:,} with P above the smallest double"
                      for case, d in details.items())
    markdown = "\n".join([
        f"## GWAS end to end: `biolatent gwas` vs `plink2 --glm` ({args.samples:,} people x {args.variants:,} "
        f"variants x {args.traits} traits, {args.covariates} covariates, {os.cpu_count()} cores"
        + (f"; and {args.large_samples:,} people x {args.large_variants:,} variants)" if args.large_samples else ")"),
        "",
        f"Files to files, as processes, same QC, same run; {version}. `time_ratio` = wall time / plink2's.", "",
        markdown_table(rows, COLUMNS), "",
        "biolatent's stages (seconds; `scan` = read + QC + regression, the genotypes read block by block by "
        "`qc` and again by `regression`):", "",
        markdown_table(stage_rows, ["case", "run", "scan", "qc", "regression", "write", "clump", "plots",
                                    "plots_wait"]), "",
        "The plots are thinned in the command, then drawn by another process (started with the command) while "
        "gwas.tsv is written (in a thread) and the leads are clumped: `plots` is their wall time, `plots_wait` the "
        "part after clumping (what they add to the command's wall time).", "",
        f"Agreement with plink2: {agree} (plink2 prints 6 significant digits).", ""])
    print(markdown)
    payload = {"rows": rows, "details": details,
               "meta": {**{k: str(v) for k, v in vars(args).items()}, "plink2": version, "host": host_info()}}
    stem = args.name or "gwas_end_to_end-cpu" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
