"""Real-data results for docs/results.md: every run from a committed config, every baseline side by side.

    python benchmarks/real_data_results.py [--out runs/results] [--quick]

Runs, on the datasets of the registry (fetched and verified on first use):
  pbmc68k   VAE and SimCLR  -> label efficiency on bulk_labels (10 cell types)
  oct4-mafk masked k-mer LM -> label efficiency on tf (Oct4 vs MafK)
  cmu1-tiles SimCLR and MAE -> no labels: effective rank + UMAP in each run's report
and stores each run's outputs under benchmarks/results/ (never the doc itself):
  real_data-<name>.md    the section for docs/results.md (summary line + efficiency table)
  real_data-<name>.tsv   the run's efficiency rows (every metric, representation, probe and fraction)
  real_data-<name>.json  git SHA, arguments, host, pre-training metrics and headline
Then `python benchmarks/results_doc.py` (`make results-doc`) puts them into docs/results.md where the doc has a
block `<!-- generated from benchmarks/results/real_data-<name>.md: do not edit -->`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd
from _report import RESULTS_DIR, host_info, supervised_note, write_results

from biolatent.build import load_config
from biolatent.embed import EMBEDDING_KEY, read_embeddings
from biolatent.evaluate.efficiency import label_dir
from biolatent.evaluate.quality import effective_rank
from biolatent.provenance import git_sha
from biolatent.report import build_report
from biolatent.rundir import read_json, write_text
from biolatent.workflows.embed import embed_run
from biolatent.workflows.evaluate import evaluate_run
from biolatent.workflows.pretrain import pretrain

ROOT = Path(__file__).resolve().parents[1]
RUNS = [
    # (name, config, label or None, extra overrides)
    ("pbmc68k-vae", "configs/pbmc68k_vae.yaml", "bulk_labels", []),
    ("pbmc68k-simclr", "configs/pbmc68k_simclr.yaml", "bulk_labels", []),
    ("oct4-mafk-mlm", "configs/oct4_mafk_mlm.yaml", "tf", []),
    ("cmu1-simclr", "configs/cmu1_simclr.yaml", None, []),
    ("cmu1-mae", "configs/cmu1_mae.yaml", None, []),
]
FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)


def run_one(out: Path, name: str, config_path: str, label: str | None, overrides: list[str], seeds: int,
            supervised_steps: int | None, fractions: tuple[float, ...]) -> Path:
    run_dir = out / name
    if (run_dir / "model.safetensors").is_file():
        print(f"[{name}] already trained, reusing {run_dir}")
    else:
        pretrain(load_config(ROOT / config_path, overrides), run_dir, progress=False)
    if not (run_dir / "embeddings.h5ad").is_file():
        embed_run(run_dir)
    if label and not (label_dir(run_dir, label) / "efficiency.tsv").is_file():
        evaluate_run(run_dir, label, fractions=fractions, seeds=seeds, supervised_steps=supervised_steps)
    build_report(run_dir)
    return run_dir


def efficiency_table(run_dir: Path, label: str, metric: str = "balanced_accuracy") -> str:
    table = pd.read_csv(label_dir(run_dir, label) / "efficiency.tsv", sep="\t")
    table = table[table.metric == metric]
    table["cell"] = table.apply(lambda r: f"{r['mean']:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]", axis=1)
    wide = table.pivot_table(index=["representation", "probe"], columns="fraction", values="cell",
                             aggfunc="first")
    order = ["ssl", "random_init", "pca", "supervised"]
    wide = wide.reindex(sorted(wide.index, key=lambda i: (order.index(i[0]), i[1])))
    header = "| representation | probe | " + " | ".join(f"{f:g}" for f in wide.columns) + " |"
    lines = [header, "|" + "---|" * (len(wide.columns) + 2)]
    for (rep, probe), row in wide.iterrows():
        lines.append(f"| {rep} | {probe} | " + " | ".join(str(v) for v in row.values) + " |")
    return "\n".join(lines)


def store_run(results_dir: Path, stem: str, name: str, config_path: str, label: str | None,
              overrides: list[str], run_dir: Path, minutes: float, args: argparse.Namespace) -> None:
    """Write ``stem``.md (the doc's section), .json (SHA, arguments, metrics) and .tsv (efficiency rows)."""
    metrics = read_json(run_dir / "metrics.json")
    adata = read_embeddings(run_dir / "embeddings.h5ad")
    rank = effective_rank(adata.obsm[EMBEDDING_KEY])
    pre = metrics["pretrain"]
    lines = [f"## {name} (`{config_path}`)", "",
             f"{int(pre['n_samples'])} samples, {int(pre['epochs'])} epochs, "
             f"{pre['samples_per_second']:.0f} samples/s, final loss {pre.get('final_loss', float('nan')):.4f}; "
             f"embedding dim {adata.obsm[EMBEDDING_KEY].shape[1]}, effective rank {rank:.2f}; "
             f"wall time {minutes:.1f} min (pretrain + embed + evaluation)."]
    payload: dict[str, Any] = {
        "name": name, "config": config_path, "overrides": overrides, "label": label,
        "git_sha": git_sha(),
        "host": host_info(), "wall_minutes": minutes, "effective_rank": rank, "pretrain": pre,
    }
    if label:
        head = metrics["evaluate"][label]["headline"]
        payload["headline"] = head
        payload["supervised"] = {k: v for k, v in metrics["evaluate"][label].get("supervised", {}).items()
                                 if k != "runs"}
        lines += ["", f"Balanced accuracy on `{label}`, mean [95% CI] over {args.seeds} seeds, by label fraction:",
                  "", efficiency_table(run_dir, label), "",
                  "Headline at 10% labels: " + ", ".join(f"{k} {v:.3f}" for k, v in head.items()
                                                       if isinstance(v, float)),
                  "", supervised_note(payload["supervised"])]
        efficiency = pd.read_csv(label_dir(run_dir, label) / "efficiency.tsv", sep="\t")
        efficiency.insert(0, "git_sha", payload["git_sha"])
        write_text(results_dir / f"{stem}.tsv", efficiency.to_csv(sep="\t", index=False))
    write_results(results_dir, stem, payload, "\n".join(lines), args=args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "results")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--supervised-steps", type=int, default=300,
                        help="most optimizer steps of the supervised baseline (default: the published run's); "
                             "0: the budget rule, as many as the pre-training took")
    parser.add_argument("--only", nargs="*", help="names of runs to do (default: all)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where the stored outputs go (default: benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 epoch, 2 fractions, 5 supervised steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.supervised_steps = min(args.supervised_steps or 5, 5)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    fractions = (0.1, 1.0) if args.quick else FRACTIONS

    for name, config_path, label, overrides in RUNS:
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        extra = [*overrides, "train.epochs=1"] if args.quick else overrides
        run_dir = run_one(args.out, name, config_path, label, extra, args.seeds,
                         args.supervised_steps or None, fractions)
        minutes = (time.perf_counter() - started) / 60
        stem = f"real_data-{name}" + ("-quick" if args.quick else "")
        store_run(args.results_dir, stem, name, config_path, label, extra, run_dir, minutes, args)
        print(f"[{name}] stored {args.results_dir / stem}.md / .tsv / .json")


if __name__ == "__main__":
    main()
