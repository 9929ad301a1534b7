"""BEHRT on the real NAFLD records (registry dataset nafld-records): pre-trained vs random-init encoder at 10% of
the labels on death_5y (AUROC, 95% interval over labelled-subset seeds), beside a logistic regression on counts of
codes + last lab values + age, all through the project's evaluate machinery (same held-out split, same seeds).

    python benchmarks/nafld_behrt.py [--out runs/nafld_behrt] [--epochs 10] [--seeds 10] [--supervised-steps 0]

Writes benchmarks/results/nafld_behrt-cpu.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS_DIR, host_info, markdown_table, supervised_note, write_results

from biolatent.build import load_config
from biolatent.evaluate.efficiency import label_dir, run_label_efficiency, summarise
from biolatent.evaluate.metrics import mean_ci
from biolatent.workflows.embed import embed_run
from biolatent.workflows.evaluate import evaluate_run
from biolatent.workflows.pretrain import pretrain

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "nafld_behrt.yaml"
LABEL, FRACTION = "death_5y", 0.1


def counts_last_value_features(folder: Path, ids: list[str]) -> np.ndarray:
    """Per patient, from the events at or before the landmark: log1p count of each code, the last value of each lab
    (standardised; 0 and a missing indicator when none) and age at the landmark."""
    events = pd.read_csv(folder / "events.tsv", sep="\t", dtype={"patient": str})
    meta = pd.read_csv(folder / "metadata.tsv", sep="\t", dtype={"id": str}).set_index("id")
    events = events[events["time"] <= events["patient"].map(meta["landmark"])]
    counts = np.log1p(events.groupby(["patient", "code"]).size().unstack(fill_value=0).reindex(ids).fillna(0))
    labs = events[events["value"].notna()].sort_values("time")
    last = labs.groupby(["patient", "code"])["value"].last().unstack().reindex(ids)
    missing = last.isna().astype(float).add_suffix(":missing")
    last = ((last - last.mean()) / last.std()).fillna(0.0).add_suffix(":last")
    age = meta.loc[ids, ["age"]].astype(float)
    return pd.concat([counts, last, missing, (age - age.mean()) / age.std()], axis=1).to_numpy(np.float32)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "nafld_behrt")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--supervised-steps", type=int, default=0,
                        help="most optimizer steps of the supervised baseline; 0 (the default): the budget rule "
                             "of `evaluate`, as many as the pre-training took")
    args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from biolatent.datasets import fetch

    folder = fetch("nafld-records")
    config = load_config(CONFIG, [f"train.epochs={args.epochs}"])
    run = args.out
    timings = {}
    start = time.perf_counter()
    if not (run / "model.safetensors").is_file():
        pretrain(config, run, progress=False)
    history = pd.read_csv(run / "history.tsv", sep="\t")
    timings["pretrain_s"] = float(history["time_s"].max())  # cumulative per epoch; right when an earlier call trained
    timings["final_masked_accuracy"] = float(history["masked_accuracy"].iloc[-1])
    start = time.perf_counter()
    if not (run / "embeddings.h5ad").is_file():
        embed_run(run)
        timings["embed_s"] = time.perf_counter() - start
    start = time.perf_counter()
    efficiency = label_dir(run, LABEL) / "efficiency.tsv"
    if not efficiency.is_file():  # an earlier call's evaluation is reused (delete it to redo)
        evaluate_run(run, LABEL, fractions=(FRACTION,), seeds=args.seeds,
                     supervised_steps=args.supervised_steps or None)
        timings["evaluate_s"] = time.perf_counter() - start
    summary = pd.read_csv(efficiency, sep="\t")
    supervised = json.loads((label_dir(run, LABEL) / "evaluate.json").read_text()).get("supervised", {})

    # the logistic-regression baseline on the same labelled patients, split and seeds (evaluate's defaults)
    meta = pd.read_csv(folder / "metadata.tsv", sep="\t", dtype={"id": str})
    labelled = meta[meta[LABEL].notna()]
    ids = labelled["id"].tolist()
    features = counts_last_value_features(folder, ids)
    per_seed = run_label_efficiency({"counts_last_value": features}, labelled[LABEL].astype(int).to_numpy(), 2,
                                    [FRACTION], list(range(args.seeds)), probes=("linear",))
    baseline = summarise(per_seed)
    # BEHRT minus its random-init encoder, paired by labelled subset (the same patients and test split)
    mine = pd.read_csv(label_dir(run, LABEL) / "efficiency_per_seed.tsv", sep="\t")
    mine = mine[(mine["metric"] == "auroc") & (mine["probe"] == "linear") & np.isclose(mine["fraction"], FRACTION)]
    wide = mine.pivot_table(index="seed", columns="representation", values="value")

    difference = mean_ci((wide["ssl"] - wide["random_init"]).to_numpy(dtype=float))
    paired = {"comparison": "ssl - random_init (linear, AUROC)", "mean": difference[0], "ci_low": difference[1],
              "ci_high": difference[2], "n": len(wide)}
    table = pd.concat([summary, baseline], ignore_index=True)
    table = table[(table["metric"] == "auroc") & np.isclose(table["fraction"], FRACTION)]
    rows = table.to_dict("records")
    columns = ["representation", "probe", "fraction", "metric", "mean", "ci_low", "ci_high", "n_seeds"]
    resolved = load_config(CONFIG, [f"train.epochs={args.epochs}"])
    sizes = {"patients": len(meta), "labelled": len(labelled), "positives": int(labelled[LABEL].sum()),
             "labelled_train_at_10pct": round(0.8 * len(labelled) * FRACTION),
             "max_length": resolved.data.max_length, "model": resolved.model.model_dump(),
             "epochs": args.epochs, "batch_size": resolved.train.batch_size,
             "baseline_features": int(features.shape[1])}
    text = (f"# BEHRT on nafld-records: {LABEL} at {FRACTION:.0%} labels (AUROC, 95% interval over "
            f"{args.seeds} labelled-subset seeds)\n\n{markdown_table(rows, columns)}\n\n"
            f"BEHRT minus its random-init encoder, paired by labelled subset: {paired['mean']:+.3f} "
            f"[{paired['ci_low']:+.3f}, {paired['ci_high']:+.3f}] AUROC ({paired['n']} subsets)\n\n"
            f"Sizes: {sizes}\n\nArguments: {vars(args)}\n\nWall times (s) and final masked-code accuracy: "
            f"{ {k: round(v, 3) for k, v in timings.items()} }\n\n"
            f"supervised = the BEHRT encoder trained from scratch on the labelled patients for at most "
            f"{supervised.get('max_steps', args.supervised_steps)} steps (a real baseline only with enough steps); "
            "pca = PCA of log code counts; counts_last_value = logistic regression on log code counts + last lab "
            f"values + age.\n\n{supervised_note(supervised)}\n")
    print(text)
    write_results(RESULTS_DIR, "nafld_behrt-cpu", {"rows": rows, "paired": paired, "sizes": sizes,
                                                   "timings": timings, "supervised": supervised,
                                                   "host": host_info()}, text, args=args)


if __name__ == "__main__":
    main()
