"""GREML (and HE regression) wall time against the number of samples, on msprime genotypes.

For each n: msprime genotypes (one 3 Mb region, Ne = 10,000; ~3,000-5,000 variants with MAF >= 0.05), one
additive trait (h2 = 0.5, 150 causal variants), then timed separately: the GCTA GRM (Yang et al. 2011), the
eigendecomposition of K (``numpy.linalg.eigh``, O(n^3)), the REML optimisation on the rotated problem
(O(n p^2) per likelihood evaluation), and Haseman-Elston regression with its 100-block jackknife (O(n^2)
per block). ``greml_s`` = eigh + optimisation, what one ``greml`` call costs.

    python benchmarks/reml_scaling.py            # n = 250 500 1000 2000 4000
    python benchmarks/reml_scaling.py --quick    # n = 100 200, a smoke run (stem reml_scaling-cpu-quick)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.discover.genetics.grm import genetic_relationship_matrix
from biolatent.discover.genetics.heritability import greml, he_regression
from biolatent.discover.genetics.simulate import simulate_genotypes, simulate_traits

COLUMNS = ("n", "n_variants", "grm_s", "eigh_s", "reml_opt_s", "greml_s", "he_s", "h2_greml", "se_greml",
           "h2_he")
SEQUENCE_LENGTH = 3_000_000
TRUE_H2 = 0.5
N_CAUSAL = 150


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def measure(n: int, seed: int) -> dict[str, Any]:
    genotypes = simulate_genotypes(n, sequence_length=SEQUENCE_LENGTH, seed=seed)
    phen, _ = simulate_traits(genotypes, TRUE_H2, N_CAUSAL, seed=seed)
    y = phen["trait_1"].to_numpy()
    (k, used), grm_s = _timed(genetic_relationship_matrix, genotypes)
    eig, eigh_s = _timed(np.linalg.eigh, k)
    fit, opt_s = _timed(greml, y, k, eig=eig)
    he, he_s = _timed(he_regression, y, k)
    return {"n": n, "n_variants": used, "grm_s": grm_s, "eigh_s": eigh_s, "reml_opt_s": opt_s,
            "greml_s": eigh_s + opt_s, "he_s": he_s, "h2_greml": fit["h2"], "se_greml": fit["se"],
            "h2_he": he["h2"], "converged": fit["converged"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="default 250 500 1000 2000 4000")
    parser.add_argument("--quick", action="store_true", help="n = 100 200: a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([100, 200] if args.quick else [250, 500, 1000, 2000, 4000])
    if min(args.sizes) < 10:
        parser.error("--sizes must be >= 10")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time every size, print the table, write JSON + markdown; return the payload."""
    args = parse_args(argv)
    rows = []
    for n in args.sizes:
        row = measure(n, args.seed + n)
        rows.append(row)
        print(f"  n={n}: GRM {row['grm_s']:.2f} s, eigh {row['eigh_s']:.2f} s, REML {row['reml_opt_s']:.3f} s, "
              f"HE {row['he_s']:.2f} s; h2 {row['h2_greml']:.3f} (se {row['se_greml']:.3f})", flush=True)
    if len(rows) >= 2:
        logn = np.log([r["n"] for r in rows])
        exponent = {key: float(np.polyfit(logn, np.log([max(r[key], 1e-9) for r in rows]), 1)[0])
                    for key in ("grm_s", "greml_s", "he_s")}
    else:
        exponent = {}
    meta = {"sequence_length": SEQUENCE_LENGTH, "true_h2": TRUE_H2, "n_causal": N_CAUSAL, "seed": args.seed,
            "quick": args.quick, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "host": host_info(),
            "loglog_exponent": exponent}
    table = markdown_table(rows, COLUMNS)
    device = "cpu"
    stem = f"reml_scaling-{device}" + ("-quick" if args.quick else "")
    markdown = (f"# GREML / HE wall time vs samples ({device}, {os.cpu_count()} cores)\n\n{table}\n\n"
                f"log-log slope of time vs n: "
                + ", ".join(f"{k} {v:.2f}" for k, v in exponent.items())
                + "\n\nSeconds, one run per size. `greml_s` = `eigh_s` + `reml_opt_s`. Genotypes: msprime, "
                f"{SEQUENCE_LENGTH / 1e6:.0f} Mb, MAF >= 0.05; trait h2 = {TRUE_H2}, {N_CAUSAL} causal.\n")
    print(table)
    payload = {"rows": rows, "meta": meta}
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
