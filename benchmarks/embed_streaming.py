"""`biolatent embed` on up to a million simulated cells read from the .h5ad file batch by batch (`data.backed`).

Simulated counts (seeded Poisson, cell types with their own gene means, about `--density` of the values
non-zero) are written chunk by chunk as a CSR .h5ad, never as one matrix in memory. A tiny VAE (MLP encoder) is
pre-trained on a `--pretrain-cells` file of the same generator, read backed too (`--epochs` epochs), then
`biolatent embed RUN --data CELLS.h5ad` runs as a process for each size of `--cells`: wall time, peak RSS
(`os.wait4`) and cells per second. Memory that does not grow with the number of cells is the claim; the in-memory
path (`data.backed: false`: the whole matrix densified) is timed beside on the `--baseline-cells` size.

    python benchmarks/embed_streaming.py            # 1,000,000 and 100,000 cells x 2,000 genes
    python benchmarks/embed_streaming.py --quick    # 20,000 and 5,000 cells: a smoke run
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import RESULTS_DIR, host_info, markdown_table, timed, write_results

COLUMNS = ("cells", "path", "file_mb", "wall_s", "peak_rss_mb", "cells_per_s")


def write_cells(path: Path, n_cells: int, n_genes: int, density: float, chunk: int, seed: int,
                n_types: int = 5) -> float:
    """A CSR .h5ad of ``n_cells`` simulated cells written ``chunk`` cells at a time; returns its size in MB.

    Each cell type has its own gene means (log-normal); a cell's non-zero genes are a uniform ``density`` share,
    each 1 + Poisson(its type's mean). obs: ``cell_type``; var: gene names.
    """
    import anndata
    import h5py
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    means = rng.lognormal(0.0, 1.0, size=(n_types, n_genes))
    types = rng.integers(0, n_types, size=n_cells)
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"type{t}" for t in types])},
                       index=pd.Index([f"cell{i:07d}" for i in range(n_cells)], dtype=object))
    var = pd.DataFrame(index=pd.Index([f"gene{j:05d}" for j in range(n_genes)], dtype=object))
    shell = anndata.AnnData(obs=obs, var=var)  # no X: the matrix is appended below
    shell.write_h5ad(path)
    with h5py.File(path, "a") as handle:
        group = handle.create_group("X")
        group.attrs["encoding-type"] = "csr_matrix"
        group.attrs["encoding-version"] = "0.1.0"
        group.attrs["shape"] = np.array([n_cells, n_genes], dtype=np.int64)
        data = group.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1 << 18,))
        indices = group.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(1 << 18,))
        indptr = np.zeros(n_cells + 1, dtype=np.int64)
        for start in range(0, n_cells, chunk):
            stop = min(start + chunk, n_cells)
            block = sp.random(stop - start, n_genes, density=density, format="csr", random_state=rng,
                              dtype=np.float32)
            rows = np.repeat(np.arange(stop - start), np.diff(block.indptr))
            block.data = 1.0 + rng.poisson(means[types[start + rows], block.indices]).astype(np.float32)
            offset = int(indptr[start])
            size = block.nnz
            data.resize((offset + size,))
            indices.resize((offset + size,))
            data[offset:] = block.data
            indices[offset:] = block.indices.astype(np.int32)
            indptr[start + 1 : stop + 1] = offset + block.indptr[1:]
        group.create_dataset("indptr", data=indptr)
    return path.stat().st_size / 1e6


def write_cells_apart(path: Path, n_cells: int, n_genes: int, density: float, chunk: int, seed: int) -> float:
    """:func:`write_cells` in a separate process: a child forked from a parent that held the simulated obs would
    inherit that parent's resident size as its own peak RSS (Linux ``ru_maxrss`` spans the fork)."""
    import multiprocessing

    job = multiprocessing.get_context("spawn").Process(target=write_cells,
                                                       args=(path, n_cells, n_genes, density, chunk, seed))
    job.start()
    job.join()
    if job.exitcode != 0:
        raise RuntimeError(f"writing {path} failed (exit code {job.exitcode})")
    return path.stat().st_size / 1e6


def write_config(path: Path, data: Path, args: argparse.Namespace, backed: bool) -> Path:
    import yaml

    config = {
        "data": {"modality": "counts", "path": str(data), "backed": backed},
        "method": {"name": "vae"},
        "model": {"name": "mlp", "hidden_dims": [128], "out_dim": args.dim},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "seed": 0, "accelerator": "cpu"},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def biolatent(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "biolatent.cli", *arguments]


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    env_root = Path(__file__).resolve().parents[1]
    train_file = work / "pretrain.h5ad"
    write_cells_apart(train_file, args.pretrain_cells, args.genes, args.density, args.chunk, seed=1)
    run = work / "run"
    config = write_config(work / "backed.yaml", train_file, args, backed=True)
    pretrain_wall, pretrain_rss = timed(biolatent("pretrain", str(config), "--out", str(run), "--quiet"), env_root)
    steps = args.epochs * (args.pretrain_cells // args.batch_size)
    rows = []
    for n_cells in args.cells:
        cells_file = work / f"cells-{n_cells}.h5ad"
        started = time.perf_counter()
        file_mb = write_cells_apart(cells_file, n_cells, args.genes, args.density, args.chunk, seed=2)
        print(f"wrote {n_cells:,} cells ({file_mb:,.0f} MB) in {time.perf_counter() - started:.0f} s", flush=True)
        paths = [("backed", cells_file)]
        if n_cells == args.baseline_cells:
            memory = write_config(work / f"memory-{n_cells}.yaml", cells_file, args, backed=False)
            paths.append(("in memory", memory))
        for label, data in paths:
            out = work / f"embeddings-{n_cells}-{label.replace(' ', '_')}.h5ad"
            wall, rss = timed(biolatent("embed", str(run), "--data", str(data), "--out", str(out)), env_root)
            rows.append({"cells": n_cells, "path": label, "file_mb": file_mb, "wall_s": wall, "peak_rss_mb": rss,
                         "cells_per_s": n_cells / wall, "output_mb": out.stat().st_size / 1e6})
            print(rows[-1], flush=True)
            out.unlink()
        cells_file.unlink()
    parent_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"pretrain": {"cells": args.pretrain_cells, "steps": steps, "wall_s": pretrain_wall,
                         "peak_rss_mb": pretrain_rss}, "rows": rows,
            "parent_peak_rss_mb": parent_mb}  # below every row's peak: the children's figures are their own


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default=None, help="comma-separated sizes; default 1000000,100000 "
                                                      "(20000,5000 with --quick)")
    parser.add_argument("--baseline-cells", type=int, default=None,
                        help="also embed this size read into memory (default: the smallest size)")
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--chunk", type=int, default=20_000, help="cells simulated and written at a time")
    parser.add_argument("--pretrain-cells", type=int, default=None, help="default 20000 (2000 with --quick)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--dim", type=int, default=16, help="embedding dimensions")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.cells is None:
        args.cells = "20000,5000" if args.quick else "1000000,100000"
    args.cells = [int(v) for v in str(args.cells).split(",")]
    if args.baseline_cells is None:
        args.baseline_cells = min(args.cells)
    if args.pretrain_cells is None:
        args.pretrain_cells = 2000 if args.quick else 20_000
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="embed_streaming-") as tmp:
        result = run_benchmark(args, Path(tmp))
    payload = {"benchmark": "embed_streaming", "host": host_info(), **result}
    pre = result["pretrain"]
    markdown = "\n".join([
        "# `biolatent embed` streaming counts from the .h5ad file (`data.backed`)",
        "",
        f"{args.genes:,} genes, about {args.density:.0%} non-zero, CSR. Model: VAE with an MLP encoder "
        f"({args.dim} dimensions) pre-trained on {pre['cells']:,} cells read backed for {args.epochs} epochs "
        f"({pre['steps']} steps; {pre['wall_s']:.0f} s, peak RSS {pre['peak_rss_mb']:,.0f} MB). "
        "Each embedding is a separate process; peak RSS from `os.wait4`.",
        "",
        markdown_table(result["rows"], COLUMNS),
    ])
    stem = "embed_streaming-cpu" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
