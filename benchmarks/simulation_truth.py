"""Truth by simulation: GREML / HE recovery of a chosen h2 and GWAS power and false discovery at 5e-8.

For each replicate: msprime genotypes (n people, one 3 Mb region, Ne = 10,000, MAF >= 0.05), then per design
two additive traits with h2 = 0.2 and 0.5 (``simulate_traits``, random-effects model ``rescale=False``: effects
b ~ N(0, h2 / n_causal), so the realised genetic variance varies around h2 as between cohorts). Two designs:
``polygenic`` (150 causal variants) and ``oligogenic`` (10 causal variants).

Per trait: GREML h2 with its SE (95% Wald CI) and HE regression h2 on the GRM of all variants; the GWAS
(``linear_gwas``, no covariates) clumped at p1 = 5e-8 (r2 0.1, 250 kb). Reported, over replicates:

* h2: mean, SD and mean SE of the GREML estimates, CI coverage of the truth, mean HE estimate;
* per-variant power: fraction of causal variants with p < 5e-8 themselves;
* locus power: fraction of causal variants tagged by a lead variant (r2 >= 0.1 with it, or the lead itself);
* lead FDR: fraction of lead variants tagging no causal variant (r2 < 0.1 with every causal variant), pooled
  over replicates; with it the number of leads per trait.

    python benchmarks/simulation_truth.py               # 20 replicates, n = 1000
    python benchmarks/simulation_truth.py --quick       # 3 replicates, n = 300 (stem simulation_truth-cpu-quick)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.discover.genetics.clump import clump, dosage_r2
from biolatent.discover.genetics.grm import genetic_relationship_matrix
from biolatent.discover.genetics.gwas import linear_gwas
from biolatent.discover.genetics.heritability import greml, he_regression
from biolatent.discover.genetics.simulate import simulate_genotypes, simulate_traits

DESIGNS = {"polygenic": 150, "oligogenic": 10}
TRUTHS = (0.2, 0.5)
Z95 = 1.959963984540054
TAG_R2 = 0.1
COLUMNS = ("design", "h2_true", "replicates", "greml_mean", "greml_sd", "greml_mean_se", "ci_coverage", "he_mean",
           "power_variant", "power_locus", "leads_per_trait", "lead_fdr")


def _tags(genotypes, lead_cols: np.ndarray, causal_cols: np.ndarray) -> np.ndarray:
    """r2 (rows: leads, columns: causal variants) of the mean-imputed dosages."""
    dosages = np.asarray(genotypes.dosages, float)
    return np.array([dosage_r2(dosages[:, lead], dosages[:, causal_cols]) for lead in lead_cols]).reshape(
        len(lead_cols), len(causal_cols))


def replicate(n: int, seed: int) -> list[dict[str, Any]]:
    genotypes = simulate_genotypes(n, sequence_length=3_000_000, seed=seed)
    k, _ = genetic_relationship_matrix(genotypes)
    eig = np.linalg.eigh(k)
    column = {v: j for j, v in enumerate(genotypes.variants["id"].astype(str))}
    rows = []
    for d, (design, n_causal) in enumerate(DESIGNS.items()):
        phen, causal = simulate_traits(genotypes, list(TRUTHS), n_causal=n_causal, n_traits=len(TRUTHS),
                                       seed=seed * 10 + d, rescale=False)
        table = linear_gwas(genotypes, phen)
        leads = clump(table, genotypes, p1=5e-8, r2=TAG_R2)
        for h2, trait in zip(TRUTHS, phen.columns, strict=True):
            y = phen[trait].to_numpy()
            fit = greml(y, k, eig=eig)
            part = table[table.TRAIT == trait]
            causal_cols = np.array([column[v] for v in causal[trait]])
            p_causal = part.set_index("ID").loc[causal[trait], "P"].to_numpy(float)
            lead_cols = np.array([column[v] for v in leads.loc[leads.TRAIT == trait, "ID"].astype(str)], dtype=int)
            r2 = _tags(genotypes, lead_cols, causal_cols) if lead_cols.size else np.zeros((0, causal_cols.size))
            rows.append({"design": design, "h2_true": h2, "greml": fit["h2"], "se": fit["se"],
                         "he": he_regression(y, k)["h2"], "n_causal": n_causal,
                         "n_causal_significant": int(np.sum(p_causal < 5e-8)),
                         "n_causal_tagged": int(np.sum((r2 >= TAG_R2).any(axis=0))) if r2.size else 0,
                         "n_leads": int(lead_cols.size),
                         "n_false_leads": int(np.sum(~(r2 >= TAG_R2).any(axis=1))) if r2.size else 0})
    return rows


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for design in DESIGNS:
        for h2 in TRUTHS:
            sel = [r for r in records if r["design"] == design and r["h2_true"] == h2]
            est, se = np.array([r["greml"] for r in sel]), np.array([r["se"] for r in sel])
            n_causal = sum(r["n_causal"] for r in sel)
            n_leads = sum(r["n_leads"] for r in sel)
            out.append({
                "design": design, "h2_true": h2, "replicates": len(sel), "greml_mean": float(est.mean()),
                "greml_sd": float(est.std(ddof=1)), "greml_mean_se": float(se.mean()),
                "ci_coverage": float(np.mean(np.abs(est - h2) <= Z95 * se)),
                "he_mean": float(np.mean([r["he"] for r in sel])),
                "power_variant": sum(r["n_causal_significant"] for r in sel) / n_causal,
                "power_locus": sum(r["n_causal_tagged"] for r in sel) / n_causal,
                "leads_per_trait": n_leads / len(sel),
                "lead_fdr": sum(r["n_false_leads"] for r in sel) / n_leads if n_leads else float("nan"),
            })
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=None, help="default 20 (3 with --quick)")
    parser.add_argument("--samples", type=int, default=None, help="default 1000 (300 with --quick)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.replicates = args.replicates or (3 if args.quick else 20)
    args.samples = args.samples or (300 if args.quick else 1000)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    start = time.perf_counter()
    records = []
    for rep in range(args.replicates):
        records += replicate(args.samples, seed=1000 + rep)
        print(f"replicate {rep + 1}/{args.replicates} ({time.perf_counter() - start:.0f} s)", flush=True)
    rows = summarise(records)
    markdown = (f"# Truth by simulation: h2 recovery and GWAS power at 5e-8 ({args.replicates} replicates, "
                f"n = {args.samples}, msprime 3 Mb)\n\n{markdown_table(rows, COLUMNS)}\n\n"
                "GREML: REML on the GRM of all variants, 95% Wald CI; coverage = fraction of replicates whose CI "
                "holds the true h2. Power per variant: causal variants at p < 5e-8; per locus: causal variants "
                f"tagged (r2 >= {TAG_R2}) by a clumped lead variant. Lead FDR: leads tagging no causal variant, "
                "pooled over replicates. Effects b ~ N(0, h2 / n_causal), not rescaled in-sample.\n")
    print(markdown)
    payload = {"rows": rows, "records": records, "meta": {**vars(args), "out_dir": str(args.out_dir),
                                                          "seconds": time.perf_counter() - start,
                                                          "host": host_info()}}
    stem = "simulation_truth-cpu" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
