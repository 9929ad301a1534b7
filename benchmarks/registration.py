"""Learned deformable registration vs the classical reference and identity, on synthetic brains with known anatomy.

    python benchmarks/registration.py [--quick] [--n-train N] [--n-test M] [--size S] [--image-size I]
                                      [--epochs E] [--max-pairs P] [--work DIR] [--out-dir DIR]

Cohorts: ``data simulate brain`` subjects from the real MNI152 template (``--quick``: the ellipsoid template),
each with its tissue label map (1 GM, 2 WM, 3 CSF): a training cohort (seed 0), a held-out test cohort (seed 1)
and the same held-out anatomy rendered T2-like (``contrast="t2"``).

* Intra-modal: ``voxelmorph`` (NCC) and ``micdir`` (NCC) are trained on the training cohort with the example
  configs of ``configs/registration`` (``--epochs``, ``--image-size`` replacing theirs) through
  ``workflows.register.fit_registration`` (random pairs within the cohort) and evaluated with
  ``evaluate_registration`` on the first ``--max-pairs`` ordered pairs of the test cohort: the model, ``identity``
  and ``demons`` (SimpleITK).
* Inter-modal: ``voxelmorph`` with ``similarity: local_mi`` is trained subject -> atlas, the atlas the first test
  subject's T2-like scan; evaluated on every other test subject's T1 scan -> that atlas (``register_pair``), with
  identity and demons (whose histogram matching assumes one contrast: not an inter-modal tool).

Per method and setting: mean tissue Dice (the mean over labels of each pair) with a 95% t interval over pairs,
HD95 (mm), folding fraction, seconds per pair (CPU) and the training throughput (pairs/s). Written to
``<out-dir>/registration-cpu[-quick].{json,md}`` with the host's provenance. Nothing here runs in the test suite
except ``--quick``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS_DIR, host_info, markdown_table, write_results

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "registration"
COLUMNS = ["setting", "method", "n_pairs", "dice", "dice_ci_low", "dice_ci_high", "hd95", "folding_fraction",
           "seconds_per_pair", "train_pairs_per_s"]


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) of a 95% t interval (the mean itself when there is one value)."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def make_cohorts(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    from biolatent.anomaly.volumes import write_brain_set
    from biolatent.data.simulate.brain import ellipsoid_template

    template = ellipsoid_template() if args.quick else None
    folders = {"train": (args.n_train, 0, "t1"), "test": (args.n_test, 1, "t1"), "test_t2": (args.n_test, 1, "t2")}
    paths = {}
    for name, (n, seed, contrast) in folders.items():
        paths[name] = work / "cohorts" / name
        if not (paths[name] / "meta.tsv").is_file():
            write_brain_set(paths[name], n, size=args.size, seed=seed, template=template, contrast=contrast)
    return paths


def config_file(work: Path, name: str, data: dict[str, Any], method: dict[str, Any], args) -> Path:
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    config["data"].update({"image_size": args.image_size, **data})
    config["method"].update(method)
    config["train"].update({"epochs": args.epochs})
    if args.quick:
        config["method"].update({"widths": [4, 8, 8], "ncc_window": 5, "mi_patch": 4})
        config["train"]["batch_size"] = 2
    path = work / f"{name}-{method.get('similarity', 'ncc')}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def summarise(setting: str, method: str, pairs: list[dict[str, float]], train_rate: float | None) -> dict:
    dice, low, high = t_interval([p["dice"] for p in pairs])
    finite = [p["hd95"] for p in pairs if math.isfinite(p["hd95"])]
    return {"setting": setting, "method": method, "n_pairs": len(pairs), "dice": dice, "dice_ci_low": low,
            "dice_ci_high": high, "hd95": statistics.fmean(finite) if finite else float("nan"),
            "folding_fraction": statistics.fmean(p["folding_fraction"] for p in pairs),
            "seconds_per_pair": statistics.fmean(p["seconds"] for p in pairs), "train_pairs_per_s": train_rate}


def intra_modal(work: Path, cohorts: dict[str, Path], args) -> list[dict]:
    import pandas as pd

    from biolatent.rundir import read_json
    from biolatent.workflows.register import evaluate_registration, fit_registration

    rows = []
    for name in ("voxelmorph", "micdir"):
        run = work / "runs" / name
        if not (run / "model.safetensors").is_file():
            config = config_file(work, name, {"path": str(cohorts["train"]), "labels_column": "labels"}, {}, args)
            fit_registration(config, run, progress=False, say=print)
        rate = read_json(run / "metrics.json")["register"]["pairs_per_second"]
        table = pd.read_csv(evaluate_registration(run, cohorts["test"], max_pairs=args.max_pairs, say=print),
                            sep="\t", keep_default_na=False)
        means = table[table.label == "mean"]
        for method, group in means.groupby("method", sort=False):
            if method in ("identity", "demons") and name != "voxelmorph":
                continue  # the same pairs: reported once
            pairs = group[["dice", "hd95", "folding_fraction", "seconds"]].astype(float).to_dict("records")
            rows.append(summarise("intra-modal (T1 -> T1)", str(method), pairs, rate if method == name else None))
    return rows


def inter_modal(work: Path, cohorts: dict[str, Path], args) -> list[dict]:
    import numpy as np
    import pandas as pd

    from biolatent.registration.classical import classical_tool
    from biolatent.registration.data import read_image, read_labels
    from biolatent.registration.metrics import hd95
    from biolatent.registration.pairwise import identity_fn, register_pair
    from biolatent.rundir import read_json
    from biolatent.workflows.register import fit_registration, load_run

    t1 = pd.read_csv(cohorts["test"] / "meta.tsv", sep="\t")
    t2 = pd.read_csv(cohorts["test_t2"] / "meta.tsv", sep="\t")
    atlas, atlas_labels = cohorts["test_t2"] / t2.path[0], cohorts["test_t2"] / t2.labels[0]
    run = work / "runs" / "voxelmorph_mi"
    if not (run / "model.safetensors").is_file():
        config = config_file(work, "voxelmorph", {"path": str(cohorts["train"]), "labels_column": "labels",
                                                  "atlas": str(atlas), "atlas_labels": str(atlas_labels)},
                             {"similarity": "local_mi"}, args)
        fit_registration(config, run, progress=False, say=print)
    rate = read_json(run / "metrics.json")["register"]["pairs_per_second"]
    config, method = load_run(run)
    fixed = read_image(atlas, "atlas")
    fixed_labels = read_labels(atlas_labels, fixed, "atlas labels")
    spacing = [float(np.linalg.norm(fixed.affine[:3, k])) for k in range(3)]
    methods: dict[str, dict] = {"voxelmorph (local MI)": {"cube_fn": method.register},
                                "identity": {"cube_fn": identity_fn}}
    tool = classical_tool()
    if tool is not None:
        methods[tool[0]] = {"full_fn": tool[1]}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in methods}
    for i in range(1, len(t1)):
        moving = read_image(cohorts["test"] / t1.path[i], "moving")
        labels = read_labels(cohorts["test"] / t1.labels[i], moving, "moving labels")
        for name, how in methods.items():
            result = register_pair(moving, fixed, config.data, moving_labels=labels, fixed_labels=fixed_labels, **how)
            assert result.warped_labels is not None
            distances = [hd95(result.warped_labels == k, fixed_labels == k, spacing) for k in result.dice]
            results[name].append({"dice": result.dice_mean, "hd95": float(np.nanmean(distances)),
                                  "folding_fraction": result.folding_fraction, "seconds": result.seconds})
    return [summarise("inter-modal (T1 -> T2 atlas)", name, pairs, rate if name.startswith("voxelmorph") else None)
            for name, pairs in results.items()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved (``--quick`` shrinks them): what the result JSON records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny cohorts (ellipsoid template), 1 epoch")
    parser.add_argument("--n-train", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=10)
    parser.add_argument("--size", type=int, default=64, help="side of the simulated brains (voxels)")
    parser.add_argument("--image-size", type=int, default=64, help="the models' cube")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--max-pairs", type=int, default=90, help="intra-modal: the first P ordered test pairs")
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "registration")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.size, args.image_size, args.epochs, args.max_pairs = 4, 3, 32, 16, 1, 2
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    cohorts = make_cohorts(args.work, args)
    rows = intra_modal(args.work, cohorts, args) + inter_modal(args.work, cohorts, args)
    stem = "registration-cpu" + ("-quick" if args.quick else "")
    payload = {"meta": {**host_info(), "quick": args.quick}, "columns": COLUMNS, "rows": rows}
    markdown = "# Learned registration vs demons vs identity\n\n" + markdown_table(rows, COLUMNS)
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(markdown)
    print(f"wrote {json_path} and {md_path}")
    return rows


if __name__ == "__main__":
    main()
