"""Does a reconstruction detector on synthetic 3D brains learn more than the average healthy brain, and at which
training budget? Validation cohorts only: the test cohorts of ``anomaly_volumes.py`` are not read.

Issue 16 asks for a ceVAE fitted for 10 epochs on 60 healthy brains to reach voxel AUROC above 0.7. In
``anomaly_volumes.py`` the 3D ceVAE gave 0.704 and 0.634 on two replicates, each time equal to the trivial
``distance to mean healthy volume``. This script asks why, on the cohorts that choose settings: for each
``--cohort-seeds`` entry it simulates the healthy and validation cohorts of ``anomaly_volumes.py --cohort-seed``
(the same seeds, sizes and lesions), fits the detector (``anomaly fit``, the same healthy split and thresholds)
once per ``--modes`` entry and ``--epochs-grid`` budget, and scores the validation cohort (voxel AUROC/AP inside the
brain region eroded by ``--brain-erosion``, volume AUROC, as ``anomaly evaluate``). The two trivial baselines of
``anomaly_volumes.py`` are scored on the same validation cohort. Training settings: in 3D the grid point the
validation cohorts chose in ``anomaly_volumes.py`` on both replicates (2 volumes a step, lr 1e-3), slice-wise the
fixed settings of ``_anomaly_runs`` (16 slices a step, lr 1e-2); only the epochs change. ``steps`` is the number of
optimizer steps (fitting items / batch, rounded up, x epochs).

    python benchmarks/anomaly_budget.py            # cohort seeds 0 and 1, 10 and 30 epochs, 3D and slice-wise
    python benchmarks/anomaly_budget.py --register --epochs-grid 10  # the same in the atlas space (data.template)
    python benchmarks/anomaly_budget.py --quick    # 6 + 6 brains of 32^3, 1 and 2 epochs (a smoke run)
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from _anomaly_runs import evaluate_detector, fit_detector
from _report import RESULTS_DIR, device_tag, host_info, markdown_table, write_results
from anomaly_volumes import (
    COHORT_SEEDS,
    MODES,
    _executor,
    _grid,
    _write_cohort,
    cohort_data,
    healthy_fit_split,
    mode_train,
    trivial_baselines,
)

from biolatent.anomaly.detectors import IMAGE_DETECTORS

COLUMNS = ("cohort_seed", "detector", "mode", "epochs", "steps", "voxel_auroc", "voxel_ap", "sample_auroc",
           "final_loss", "fit_s")
SUMMARY_COLUMNS = ("detector", "mode", "epochs", "steps", "cohort_seed", "voxel_auroc", "mean_brain_voxel_auroc",
                   "difference")
MEAN_BRAIN = "distance to mean healthy volume"
COHORT = "validation"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", default="cevae", choices=sorted(IMAGE_DETECTORS))
    parser.add_argument("--cohort-seeds", default="0,1", help="replicates: anomaly_volumes.py's --cohort-seed values")
    parser.add_argument("--epochs-grid", default=None, help="training budgets (epochs); default 10,30")
    parser.add_argument("--modes", default=",".join(MODES), help="3d and/or slicewise")
    parser.add_argument("--healthy", type=int, default=None)
    parser.add_argument("--validation", type=int, default=None, help="validation brains, half of them lesioned")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--brain-erosion", type=int, default=2)
    parser.add_argument("--register", action=argparse.BooleanOptionalAction, default=False,
                        help="register every brain affinely to the set's atlas (data.template), as "
                             "anomaly_volumes.py does by default")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", type=int, default=1, help="fits run in this many processes at once")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    unknown = sorted(set(_grid(args.modes, str)) - set(MODES))
    if unknown:
        parser.error(f"--modes: unknown {', '.join(unknown)} (choose from {', '.join(MODES)})")
    args.healthy = args.healthy or (6 if args.quick else 60)
    args.validation = args.validation or (6 if args.quick else 40)
    args.size = args.size or (32 if args.quick else 64)
    args.epochs_grid = args.epochs_grid or ("1,2" if args.quick else "10,30")
    if any(epochs < 1 for epochs in _grid(args.epochs_grid, int)):
        parser.error("--epochs-grid: every budget must be >= 1 epoch")
    return args


def fit_items(root: Path, data: dict[str, Any], mode: str) -> int:
    """How many items one epoch of ``anomaly fit`` trains on: the healthy fitting volumes (``anomaly fit``'s seeded
    split by subject), or in ``slicewise`` mode their axial slices that hold brain."""
    from biolatent.anomaly.volumes import brain_slices

    healthy, fit_idx, _ = healthy_fit_split(root, data)
    return len(brain_slices(healthy[fit_idx])) if mode == "slicewise" else len(fit_idx)


def _run_task(item: tuple[tuple[Any, ...], Path, argparse.Namespace]) -> list[dict[str, Any]]:
    """``("fit", cohort_seed, mode, epochs)`` or ``("baselines", cohort_seed)`` -> rows on the validation cohort."""
    task, root, args = item
    cohort_root = root / f"cohort{task[1]}"
    data = cohort_data(cohort_root, args.size, args.register)
    if task[0] == "baselines":
        rows = [row for row, _ in trivial_baselines(cohort_root, data, args.brain_erosion, cohort=COHORT)]
        return [{**row, "cohort_seed": task[1], "epochs": 0, "steps": 0} for row in rows]
    _, cohort_seed, mode, epochs = task
    train = mode_train(args.detector, epochs, mode)
    train["epochs"] = epochs  # the budget itself, whatever the detector's epoch factor
    sections = {"maps": {"brain_erosion": args.brain_erosion, "volume_mode": mode}, "train": train}
    run, _, fit_s = fit_detector(args.detector, data, cohort_root, epochs, sections,
                                 run_name=f"{args.detector}-{mode}-e{epochs}")
    row, _ = evaluate_detector(args.detector, run, cohort_root / COHORT, args.validation, "volumes_per_s")
    items = fit_items(cohort_root, data, mode)
    history = run / "history.tsv"  # none for a detector that is not trained by gradient (PatchCore)
    loss = float(pd.read_csv(history, sep="\t")["loss"].iloc[-1]) if history.is_file() else float("nan")
    row.update({"cohort_seed": cohort_seed, "mode": mode, "epochs": epochs, "fit_s": fit_s, "final_loss": loss,
                "steps": epochs * math.ceil(items / train["batch_size"]) if history.is_file() else 0})
    print(f"{args.detector} ({mode}, {epochs} epochs, cohort {cohort_seed}): validation voxel AUROC "
          f"{row['voxel_auroc']:.3f}", flush=True)
    return [row]


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fitted row: its voxel AUROC beside the mean-brain baseline's on the same validation cohort."""
    mean_brain = {row["cohort_seed"]: row["voxel_auroc"] for row in rows if row["detector"] == MEAN_BRAIN}
    out = [{key: row[key] for key in ("detector", "mode", "epochs", "steps", "cohort_seed", "voxel_auroc")}
           | {"mean_brain_voxel_auroc": mean_brain[row["cohort_seed"]],
              "difference": row["voxel_auroc"] - mean_brain[row["cohort_seed"]]}
           for row in rows if row["epochs"] > 0]
    return sorted(out, key=lambda r: (r["mode"], r["epochs"], r["cohort_seed"]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    seeds, budgets = _grid(args.cohort_seeds, int), _grid(args.epochs_grid, int)
    tasks: list[tuple[Any, ...]] = [("fit", seed, mode, epochs) for epochs in sorted(budgets, reverse=True)
                                    for seed in seeds for mode in _grid(args.modes, str)]
    tasks += [("baselines", seed) for seed in seeds]
    with tempfile.TemporaryDirectory(prefix="anomaly-budget-") as tmp, _executor(args.jobs) as pool:
        root = Path(tmp)
        cohorts = [(root / f"cohort{seed}" / "healthy", args.healthy, args.size,
                    {"seed": 10 * seed + COHORT_SEEDS["healthy"]}) for seed in seeds]
        cohorts += [(root / f"cohort{seed}" / COHORT, args.validation, args.size,
                     {"lesions": True, "exact_fraction": True, "seed": 10 * seed + COHORT_SEEDS[COHORT]})
                    for seed in seeds]
        list(pool.map(_write_cohort, cohorts))
        rows = [row for rows in pool.map(_run_task, [(task, root, args) for task in tasks]) for row in rows]
    rows.sort(key=lambda r: (r["cohort_seed"], r["epochs"] == 0, r.get("mode", ""), r["epochs"]))
    for row in rows:
        row.setdefault("mode", "n/a")
    compared = summary(rows)
    device = device_tag()
    markdown = (f"# Training budget of the {args.detector} against the average healthy brain ({args.healthy} healthy "
                f"brains, {args.validation} validation brains (half lesioned) per cohort seed {args.cohort_seeds}; "
                f"{args.size}^3 voxels; budgets {args.epochs_grid} epochs; "
                f"{'registered to the atlas' if args.register else 'no registration'}; {device})\n\n"
                f"{markdown_table(rows, COLUMNS)}\n\n"
                "Validation cohorts of anomaly_volumes.py only (its test cohorts are not read). Maps inside the "
                f"brain mask eroded by {args.brain_erosion} voxels, as there; mode n/a: the trivial baselines "
                "without a network on the same cohort.\n\n"
                f"## Voxel AUROC minus that of the {MEAN_BRAIN} (same cohort)\n\n"
                f"{markdown_table(compared, SUMMARY_COLUMNS)}\n")
    print(markdown)
    payload = {"rows": rows, "summary": compared, "meta": {"host": host_info(), "device": device}}
    stem = f"anomaly_budget-{device}" + ("-registered" if args.register else "") + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
