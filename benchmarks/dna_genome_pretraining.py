"""Does genome-scale pre-training help a small DNA task? Masked language modelling on a whole human chromosome vs on
the task's own sequences, transferred to a held-out promoter task.

Task: the registry's ``promoters-chr20`` (889 RefSeq promoters vs 889 background windows of 200 bases on GRCh37
chr20, label column ``label``). Pre-training corpora, one Nucleotide-Transformer-style encoder (``nt``: 6-mer tokens,
pre-layer-norm transformer) and one masked-modelling recipe (``mlm``) for all of them:

* ``genome``: the registry's ``grch37-chr20`` (63 Mb) in windows of 200 bases every ``--stride`` bases, streamed
  from the indexed FASTA, with every window that overlaps a task window left out (``data.exclude_regions`` =
  the task's ``task_regions.bed``), ``--genome-epochs`` epochs;
* ``task, equal steps``: the task's own 1,778 sequences (labels unused) for as many optimizer steps as ``genome``
  took (the same compute, far less data);
* ``task, 5 epochs``: the task's own sequences for 5 epochs, the protocol under which the issue measured 0.80.

Every run is ``biolatent pretrain`` (subprocesses, ``--jobs`` at once, one torch thread each); the transfer is
``biolatent evaluate``'s machinery (``workflows.evaluate``: ``load_labelled_run(..., data=...)`` embeds the task with
each run). Baselines on the same splits and labelled subsets: the random-init encoder (one init per pre-training
seed), PCA of the 4-mer spectrum, and the supervised encoder (same architecture, trained on the labelled subset;
its step budget the genome run's pre-training steps, learning rate and step chosen on a validation part of the
labelled subset). Probes: logistic regression and kNN on the frozen embeddings, AUROC on the test split.
Nothing is chosen on the test samples. Intervals: mean and 95% Student-t CI over test splits x labelled subsets x
pre-training seeds (``--seeds``), paired differences over the same draws; at fraction 1.0 the labelled subset is
the whole training split whatever its seed, so its repeats count as one draw (intervals over test splits only).

    python benchmarks/dna_genome_pretraining.py            # the published run (about 45 min on 2 CPU cores)
    python benchmarks/dna_genome_pretraining.py --quick    # a smoke run (a few minutes)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from _report import RESULTS_DIR, host_info, markdown_table, write_results

LABEL = "label"
TASK = "promoters-chr20"
GENOME = "grch37-chr20"
WINDOW = 200
MODEL = {"name": "nt", "hidden_size": 128, "layers": 2, "heads": 4, "intermediate_size": 512}
RUNS = ("genome", "task_equal_steps", "task_5_epochs")
NAMES = {"genome": "SSL, chr20 (genome)", "task_equal_steps": "SSL, task sequences, equal steps",
         "task_5_epochs": "SSL, task sequences, 5 epochs", "random_init": "random init", "pca": "PCA of 4-mers",
         "supervised": "supervised encoder"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/biolatent-dna-genome"),
                        help="run folders (a finished run is reused)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--stride", type=int, default=1000, help="bases between genome window starts")
    parser.add_argument("--genome-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seeds", type=int, default=1, help="pre-training seeds of every run")
    parser.add_argument("--fractions", default="0.1,1.0")
    parser.add_argument("--subsets", type=int, default=3, help="labelled subsets per fraction and split")
    parser.add_argument("--test-splits", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2, help="pre-training runs at once")
    parser.add_argument("--quick", action="store_true", help="smoke run: stride 20000, 1 epoch, 2 subsets")
    args = parser.parse_args(argv)
    if args.quick:
        args.stride, args.genome_epochs, args.subsets = 20_000, 1, 2
    return args


def dataset_folder(name: str) -> Path:
    from biolatent.datasets import fetch

    return fetch(name)


def run_config(run: str, args: argparse.Namespace, epochs: int) -> dict[str, Any]:
    if run == "genome":
        data = {"modality": "dna", "dataset": GENOME, "window": WINDOW, "window_stride": args.stride,
                "exclude_regions": str(dataset_folder(TASK) / "task_regions.bed")}
    else:
        data = {"modality": "dna", "dataset": TASK}
    return {"data": data, "method": {"name": "mlm", "mask_probability": 0.15}, "model": dict(MODEL),
            "train": {"epochs": epochs, "batch_size": args.batch_size, "lr": args.lr, "warmup_epochs": 0,
                      "seed": 0}}


def pretrain(run: str, config: dict[str, Any], args: argparse.Namespace) -> Path:
    """``biolatent pretrain`` of one run (reused when its weights exist); returns its folder."""
    out = args.work / run
    if (out / "metrics.json").is_file() and "pretrain" in yaml.safe_load((out / "metrics.json").read_text()):
        return out
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / f"{run}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "biolatent.cli", "pretrain", str(path), "--out", str(out), "--seeds",
               str(args.seeds), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pretrain {run} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    print(f"{run}: pre-trained in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def planned_steps(config: dict[str, Any]) -> int:
    """The optimizer steps a run config will take (its data loaded, windows counted, nothing trained)."""
    from biolatent.build import load_config
    from biolatent.data.loaders import load_samples
    from biolatent.train.supervised import pretraining_steps

    resolved = load_config(config)
    return pretraining_steps(len(load_samples(resolved.data)), resolved.train)


def steps_of(run_dir: Path) -> int:
    import json

    from biolatent.train.supervised import pretraining_steps
    from biolatent.workflows.common import load_run_config

    n = json.loads((run_dir / "metrics.json").read_text())["pretrain"]["n_samples"]
    return pretraining_steps(int(n), load_run_config(run_dir).train)


def paired(per_seed: pd.DataFrame, a: str, b: str, probe: str, fraction: float) -> dict[str, float]:
    """Mean and 95% t-interval of a - b over the draws (test split, labelled subset, pre-training seed) both share."""
    from biolatent.evaluate.metrics import mean_ci

    keys = ["test_split", "seed", "pretrain_seed"]

    def values(rep: str, rep_probe: str) -> pd.Series:
        rows = per_seed[(per_seed.representation == rep) & (per_seed.probe == rep_probe)
                        & (per_seed.fraction == fraction) & (per_seed.metric == "auroc")]
        return rows.set_index(keys)["value"]

    left, right = values(a, probe), values(b, probe if b not in ("supervised",) else "finetune")
    if b in ("pca", "supervised"):  # no pre-training seed: pair on (split, subset)
        left = left.groupby(level=["test_split", "seed"]).mean()
        right = right.droplevel("pretrain_seed")
    joined = pd.concat([left.rename("a"), right.rename("b")], axis=1, join="inner")
    diff = (joined["a"] - joined["b"]).to_numpy(dtype=float)
    mean, low, high = mean_ci(diff)
    return {"mean": float(mean), "ci_low": float(low), "ci_high": float(high), "n": int(diff.size)}


def evaluate(run_dirs: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    from biolatent.evaluate.efficiency import one_draw_per_fit, pca_features, run_label_efficiency, summarise
    from biolatent.train.supervised import budget
    from biolatent.workflows.evaluate import (
        build_representations,
        load_labelled_run,
        pretraining_samples,
        supervised_finetune,
    )

    task_yaml = args.work / "task.yaml"
    task_yaml.write_text(yaml.safe_dump({"data": {"modality": "dna", "dataset": TASK}}))
    fractions = [float(f) for f in args.fractions.split(",")]
    reps: dict[str, Any] = {}
    labelled = {run: load_labelled_run(run_dir, LABEL, "classification", data=task_yaml)
                for run, run_dir in run_dirs.items()}
    genome_run = labelled["genome"]
    for run, labelled_run in labelled.items():
        if labelled_run.samples.ids != genome_run.samples.ids:
            raise RuntimeError(f"{run}: the task's samples differ between runs")
        reps[run] = build_representations(labelled_run, say=lambda m: None)
    labels = genome_run.labels
    supervised_budget = budget(genome_run.config.train, pretraining_samples(genome_run))
    supervised_runs: list[dict] = []
    tables = []
    seeds = reps["genome"].pretrain_seeds
    for split_seed in range(args.test_splits):
        pca = pca_features(reps["genome"].raw, seed=0)
        for index, pretrain_seed in enumerate(seeds):
            representations = {run: reps[run].ssl[index] for run in run_dirs}
            representations["random_init"] = reps["genome"].random_init[index]
            first = index == 0
            if first:
                representations["pca"] = pca
            finetune = supervised_finetune(genome_run, reps["genome"].x, supervised_budget["max_steps"],
                                           on_trained=supervised_runs.append) if first else None
            table = run_label_efficiency(representations, labels.values, labels.n_classes, fractions,
                                         list(range(args.subsets)), split_seed=split_seed, finetune=finetune,
                                         progress=lambda m: print(m, flush=True))
            varies = ~table["representation"].isin(["pca", "supervised"])
            table.insert(3, "pretrain_seed", pd.array(np.where(varies, pretrain_seed, 0), dtype="Int64"))
            table.loc[~varies, "pretrain_seed"] = pd.NA
            table.insert(4, "test_split", split_seed)
            tables.append(table)
    per_seed = pd.concat(tables, ignore_index=True)
    per_seed["pretrain_seed"] = per_seed["pretrain_seed"].fillna(-1).astype(int)
    draws = one_draw_per_fit(per_seed)  # the paired differences count draws too
    summary = summarise(draws.assign(pretrain_seed=draws["pretrain_seed"].replace(-1, pd.NA)))
    rows = []
    for record in summary[summary.metric == "auroc"].to_dict("records"):
        rows.append({"representation": NAMES[record["representation"]], "key": record["representation"],
                     "probe": record["probe"], "fraction": float(record["fraction"]), "auroc": record["mean"],
                     "ci_low": record["ci_low"], "ci_high": record["ci_high"], "n": int(record["n_seeds"])})
    differences = []
    for fraction in fractions:
        for probe in ("linear", "knn"):
            for other in ("random_init", "task_5_epochs", "task_equal_steps", "pca", "supervised"):
                differences.append({"fraction": fraction, "probe": probe, "versus": NAMES[other],
                                    **paired(draws, "genome", other, probe, fraction)})
    stopped = [int(r.get("best_step", r.get("steps", 0)) or 0) for r in supervised_runs]
    return {"rows": rows, "differences": differences, "per_seed": per_seed.to_dict("records"),
            "supervised": {**supervised_budget, "best_steps": stopped,
                           "budget_binding": bool(stopped) and max(stopped) >= supervised_budget["max_steps"]},
            "n_labelled_samples": int(labels.keep.sum())}


def markdown(result: dict[str, Any]) -> str:
    table = markdown_table(
        [{**r, "fraction": f"{r['fraction']:g}", "auroc": f"{r['auroc']:.3f}",
          "95% CI": f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"} for r in result["rows"]],
        ["representation", "probe", "fraction", "auroc", "95% CI", "n"])
    diffs = markdown_table(
        [{**d, "fraction": f"{d['fraction']:g}", "genome minus": d["versus"], "AUROC difference": f"{d['mean']:+.3f}",
          "95% CI": f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"} for d in result["differences"]],
        ["fraction", "probe", "genome minus", "AUROC difference", "95% CI", "n"])
    runs = ", ".join(f"{k}: {v['epochs']} epochs of {v['n_samples']:,} samples ({v['steps']:,} steps, "
                     f"{v['seconds']:.0f} s)" for k, v in result["runs"].items())
    return (f"# Genome-scale DNA pre-training, transferred to promoters-chr20\n\n{runs}.\n\n{table}\n\n"
            "AUROC on the test split, mean [95% t-interval] over n draws: test splits x labelled subsets x "
            "pre-training seeds (fraction 1: test splits x pre-training seeds; its labelled subset is the whole "
            f"training split).\n\nPaired differences (same test split and labelled subset):\n\n{diffs}\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    genome_config = run_config("genome", args, args.genome_epochs)
    genome_steps = planned_steps(genome_config)
    equal_epochs = max(1, round(genome_steps / planned_steps(run_config("task_equal_steps", args, 1))))
    configs = {"genome": genome_config, "task_equal_steps": run_config("task_equal_steps", args, equal_epochs),
               "task_5_epochs": run_config("task_5_epochs", args, 5)}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:  # the long runs first
        futures = {run: pool.submit(pretrain, run, config, args) for run, config in configs.items()}
        run_dirs = {run: future.result() for run, future in futures.items()}
    if steps_of(run_dirs["genome"]) != genome_steps:
        raise RuntimeError("the genome run took another number of steps than planned")
    import json

    runs = {}
    for run, run_dir in run_dirs.items():
        metrics = json.loads((run_dir / "metrics.json").read_text())["pretrain"]
        runs[run] = {"epochs": int(metrics["epochs"]), "n_samples": int(metrics["n_samples"]),
                     "steps": steps_of(run_dir), "seconds": float(metrics["train_seconds"]),
                     "final_loss": float(metrics.get("final_loss", float("nan")))}
    result = evaluate(run_dirs, args)
    result["runs"] = runs
    windows = yaml.safe_load((run_dirs["genome"] / "config.yaml").read_text())["data"]
    payload = {"benchmark": "dna_genome_pretraining", "host": host_info(), "model": MODEL, "genome_data": windows,
               "seconds": time.perf_counter() - started, **result}
    md = markdown(result)
    json_path, _ = write_results(args.out, "dna_genome_pretraining-cpu", payload, md, args=args)
    print(md)
    print(json_path)


if __name__ == "__main__":
    main()
