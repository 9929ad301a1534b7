"""GREML (and HE regression) wall time against the number of samples, on msprime genotypes.

For each n: msprime genotypes (one 3 Mb region, Ne = 10,000; ~3,000-5,000 variants with MAF >= 0.05), one
additive trait (h2 = 0.5, 150 causal variants), then timed separately: the GCTA GRM (Yang et al. 2011), the
standardised genotypes ``Z`` (``K = Z Z^T / m``), the eigendecomposition GREML runs, the REML optimisation on
the rotated problem (O(n p^2) per likelihood evaluation), and Haseman-Elston regression with its 100-block
jackknife (O(n^2) per block). ``greml`` picks its path by the shapes: with m < n variants the low-rank path
(FaST-LMM, Lippert et al. 2011: eigenpairs from ``Z``, O(n m^2)), otherwise ``numpy.linalg.eigh(K)`` (O(n^3)).
``eigh_s`` is that path's decomposition, ``greml_s`` = ``eigh_s`` + ``reml_opt_s``, what one ``greml`` call
costs; ``peak_mib`` its peak of traced (numpy) memory. For n <= ``--full-max-n`` the full path also runs
(``full_eigh_s``, ``full_greml_s``, ``full_peak_mib``: the cost before the low-rank path) and the two fits are
compared (``h2_diff``, ``se_rel_diff``, ``loglik_diff``; 0 when the full path is the one that ran).

    python benchmarks/reml_scaling.py            # n = 250 500 1000 2000 4000 10000
    python benchmarks/reml_scaling.py --quick    # n = 100 200, a smoke run (stem reml_scaling-cpu-quick)
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.discover.genetics.grm import genetic_relationship_matrix, standardised_genotypes
from biolatent.discover.genetics.heritability import greml, he_regression, low_rank_eig
from biolatent.discover.genetics.simulate import simulate_genotypes, simulate_traits

COLUMNS = ("n", "n_variants", "path", "grm_s", "z_s", "eigh_s", "reml_opt_s", "greml_s", "peak_mib", "full_eigh_s",
           "full_greml_s", "full_peak_mib", "he_s", "h2_greml", "se_greml", "h2_diff", "se_rel_diff", "loglik_diff",
           "h2_he")
SEQUENCE_LENGTH = 3_000_000
TRUE_H2 = 0.5
N_CAUSAL = 150


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _greml_path(y: np.ndarray, k: np.ndarray, z: np.ndarray, full: bool) -> dict[str, Any]:
    """One ``greml`` call on the low-rank (``full=False``) or full path: decomposition and optimisation timed
    apart, peak traced memory over both (MiB)."""
    tracemalloc.start()
    eig, eigh_s = _timed(np.linalg.eigh, k) if full else _timed(low_rank_eig, z)
    fit, opt_s = _timed(greml, y, None, eig=eig)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"fit": fit, "eigh_s": eigh_s, "opt_s": opt_s, "peak_mib": peak}


def measure(n: int, seed: int, full_max_n: int) -> dict[str, Any]:
    genotypes = simulate_genotypes(n, sequence_length=SEQUENCE_LENGTH, seed=seed)
    phen, _ = simulate_traits(genotypes, TRUE_H2, N_CAUSAL, seed=seed)
    y = phen["trait_1"].to_numpy()
    (k, used), grm_s = _timed(genetic_relationship_matrix, genotypes)
    (z, _), z_s = _timed(standardised_genotypes, genotypes)
    low_rank = z.shape[1] < n  # greml's own rule for the genotypes route
    run = _greml_path(y, k, z, full=not low_rank)
    fit = run["fit"]
    row = {"n": n, "n_variants": used, "path": fit["path"], "grm_s": grm_s, "z_s": z_s, "eigh_s": run["eigh_s"],
           "reml_opt_s": run["opt_s"], "greml_s": run["eigh_s"] + run["opt_s"], "peak_mib": run["peak_mib"]}
    if n <= full_max_n:
        ref = _greml_path(y, k, z, full=True) if low_rank else run
        row.update({"full_eigh_s": ref["eigh_s"], "full_greml_s": ref["eigh_s"] + ref["opt_s"],
                    "full_peak_mib": ref["peak_mib"], "h2_diff": abs(fit["h2"] - ref["fit"]["h2"]),
                    "se_rel_diff": abs(fit["se"] / ref["fit"]["se"] - 1.0),
                    "loglik_diff": abs(fit["loglik"] - ref["fit"]["loglik"])})
    he, he_s = _timed(he_regression, y, k)
    row.update({"he_s": he_s, "h2_greml": fit["h2"], "se_greml": fit["se"], "h2_he": he["h2"],
                "converged": fit["converged"]})
    return row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="default 250 500 1000 2000 4000 10000")
    parser.add_argument("--quick", action="store_true", help="n = 100 200: a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full-max-n", type=int, default=10_000,
                        help="also run the full eigh(K) path up to this n, to time and compare it")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([100, 200] if args.quick else [250, 500, 1000, 2000, 4000, 10_000])
    if min(args.sizes) < 10:
        parser.error("--sizes must be >= 10")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time every size, print the table, write JSON + markdown; return the payload."""
    args = parse_args(argv)
    load_start = list(os.getloadavg())  # a shared machine: how busy it was (1, 5, 15 min averages)
    rows = []
    for n in args.sizes:
        row = measure(n, args.seed + n, args.full_max_n)
        rows.append(row)
        print(f"  n={n}: GRM {row['grm_s']:.2f} s, {row['path']} eigh {row['eigh_s']:.2f} s, "
              f"REML {row['reml_opt_s']:.3f} s, full eigh {row.get('full_eigh_s', float('nan')):.2f} s, "
              f"HE {row['he_s']:.2f} s; h2 {row['h2_greml']:.3f} (se {row['se_greml']:.3f})", flush=True)
    if len(rows) >= 2:
        logn = np.log([r["n"] for r in rows])
        exponent = {key: float(np.polyfit(logn, np.log([max(r[key], 1e-9) for r in rows]), 1)[0])
                    for key in ("grm_s", "greml_s", "he_s")}
        full = [r for r in rows if "full_greml_s" in r]
        if len(full) >= 2:
            exponent["full_greml_s"] = float(np.polyfit(np.log([r["n"] for r in full]),
                                                        np.log([max(r["full_greml_s"], 1e-9) for r in full]), 1)[0])
    else:
        exponent = {}
    meta = {"sequence_length": SEQUENCE_LENGTH, "true_h2": TRUE_H2, "n_causal": N_CAUSAL, "seed": args.seed,
            "quick": args.quick, "full_max_n": args.full_max_n, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()), "host": host_info(), "loglog_exponent": exponent}
    table = markdown_table(rows, COLUMNS)
    device = "cpu"
    stem = f"reml_scaling-{device}" + ("-quick" if args.quick else "")
    load = " / ".join(", ".join(f"{v:.1f}" for v in meta[key]) for key in ("load_average_start", "load_average_end"))
    markdown = (f"# GREML / HE wall time vs samples ({device}, {os.cpu_count()} cores, OMP_NUM_THREADS="
                f"{meta['omp_num_threads']}, load average (1, 5, 15 min) at start / end {load})\n\n{table}\n\n"
                f"log-log slope of time vs n: "
                + ", ".join(f"{k} {v:.2f}" for k, v in exponent.items())
                + "\n\nSeconds, one run per size. `path`: the path `greml` took (low_rank: FaST-LMM, eigenpairs of K "
                "from the standardised genotypes Z when variants < samples; full: `numpy.linalg.eigh(K)`). "
                "`eigh_s`: that path's decomposition; `greml_s` = `eigh_s` + `reml_opt_s`; `z_s`: building Z; "
                "`peak_mib`: peak traced (numpy) memory of the greml call. `full_*`: the full path on the same K "
                f"(n <= {args.full_max_n}); `h2_diff`, `se_rel_diff`, `loglik_diff`: |low rank - full| (0 where the "
                "full path ran). Genotypes: msprime, "
                f"{SEQUENCE_LENGTH / 1e6:.0f} Mb, MAF >= 0.05; trait h2 = {TRUE_H2}, {N_CAUSAL} causal.\n")
    print(table)
    payload = {"rows": rows, "meta": meta}
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
