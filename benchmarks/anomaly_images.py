"""Image anomaly detectors on 2D slices with planted lesions, next to the supervised reference.

Slices (``--source brain``, the default: one axial slice per synthetic brain of ``biolatent data simulate
brainslices2d``, drawn from the real MNI ICBM152 template, through the largest lesion; ``--source toy``: the
simple brain-like slices of ``slices2d``): a healthy training set, a test set (half lesioned, masks known), a
labelled lesioned set for the supervised reference and an unlabelled mixed set for anomaly-guided segmentation.
Each registered image detector is trained on the healthy set only (a seeded quarter held out to set the
thresholds at a 5% healthy false-positive rate) and evaluated: sample AUROC/AP, pixel AUROC/AP, Dice at the
healthy-validation pixel threshold, the best Dice (chosen on the test labels: an upper bound), Dice after the
StRegA post-processing chain, lesion-wise detection rate, training time and scoring throughput (images per
second). The supervised reference (``biolatent anomaly supervised``: the same ConvEncoder backbone, trained on
labelled lesions) and the ``ae``-guided segmenter (``biolatent anomaly guided``: trained on the post-processed
ae maps of the unlabelled set) are evaluated on the same test set.

    python benchmarks/anomaly_images.py                 # 200 healthy + 100 test + 200 labelled + 200 unlabelled
    python benchmarks/anomaly_images.py --quick         # 24 + 16 + 16 + 16 slices, 1 epoch (smoke run)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from _anomaly_settings import train_settings
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.anomaly.config import load_anomaly_config
from biolatent.anomaly.detectors import IMAGE_DETECTORS
from biolatent.anomaly.lesion_sizes import DEFAULT_EDGES, bin_labels
from biolatent.workflows.anomaly import LESION_SIZES_FILE, evaluate_anomaly, fit_anomaly, score_anomaly

COLUMNS = ("detector", "sample_auroc", "sample_ap", "pixel_auroc", "pixel_ap", "pixel_dice_val_threshold",
           "pixel_dice_best", "pixel_dice_postprocessed", "lesions_detected", "train_s", "images_per_s")


def _write_sets(root: Path, args: argparse.Namespace) -> None:
    from biolatent.anomaly.images import write_slice_set
    from biolatent.anomaly.volumes import write_brain_slice_set

    write = write_brain_slice_set if args.source == "brain" else write_slice_set
    write(root / "healthy", args.healthy, size=args.size, seed=0)
    write(root / "test", args.test, size=args.size, lesions=True, seed=1)
    write(root / "labelled", args.labelled, size=args.size, lesions=True, lesion_fraction=1.0, seed=2)
    write(root / "unlabelled", args.labelled, size=args.size, lesions=True, seed=3)


def _metric_values(metrics: pd.DataFrame, detector: str) -> dict[str, float]:
    rows = metrics[metrics.detector == detector]
    return {f"{level}_{metric}": value for level, metric, value in
            zip(rows.level, rows.metric, rows.value, strict=True)}


def _detected(sizes: pd.DataFrame, detector: str) -> float:
    column = "segmentation" if "segmentation" in sizes.columns else None
    rows = sizes[(sizes.detector == detector) & (sizes.size_bin == "all")]
    if column is not None:
        rows = rows[rows[column] == "raw_val_threshold"]
    return float(rows.detection_rate.iloc[0])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("brain", "toy"), default="brain")
    parser.add_argument("--healthy", type=int, default=None)
    parser.add_argument("--test", type=int, default=None)
    parser.add_argument("--labelled", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--detectors", default=",".join(IMAGE_DETECTORS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.healthy = args.healthy or (24 if args.quick else 200)
    args.test = args.test or (16 if args.quick else 100)
    args.labelled = args.labelled or (16 if args.quick else 200)
    args.size = args.size or (32 if args.quick or args.source == "toy" else 64)
    args.epochs = args.epochs or (1 if args.quick else 30)
    rows, sizes = [], []
    with tempfile.TemporaryDirectory(prefix="anomaly-images-") as tmp:
        root = Path(tmp)
        _write_sets(root, args)
        for name in args.detectors.split(","):
            config = load_anomaly_config({
                "data": {"modality": "image2d", "path": str(root / "healthy"), "image_size": args.size},
                "method": {"name": name}, "train": train_settings(name, args.epochs),
                "validation": {"fraction": 0.25, "target_fpr": 0.05}})
            run = root / name
            start = time.perf_counter()
            fit_anomaly(config, run, say=lambda _: None)
            train_s = time.perf_counter() - start
            start = time.perf_counter()
            score_anomaly(run, root / "test", run / "scored", say=lambda _: None)
            images_per_s = args.test / (time.perf_counter() - start)
            metrics = pd.read_csv(evaluate_anomaly(run, root / "test", say=lambda _: None), sep="\t")
            run_sizes = pd.read_csv(run / LESION_SIZES_FILE, sep="\t")
            sizes.append(run_sizes[run_sizes.segmentation == "raw_val_threshold"].drop(columns="segmentation"))
            rows.append({"detector": name, **_metric_values(metrics, name),
                         "lesions_detected": _detected(run_sizes, name), "train_s": train_s,
                         "images_per_s": images_per_s})
            print(f"{name}: {rows[-1]}", flush=True)
        rows.extend(_references(root, args, sizes))
    size_table = pd.concat(sizes, ignore_index=True)
    bins = [*bin_labels(DEFAULT_EDGES), "all"]
    size_rows = size_table.pivot(index="detector", columns="size_bin", values="detection_rate").reindex(
        columns=bins).reset_index()
    source = ("axial slices of synthetic brains (MNI ICBM152 template, SynthSeg-style subjects, tumour-like "
              "lesions)" if args.source == "brain" else "simple brain-like toy slices")
    markdown = (f"# Image anomaly detectors on 2D {source}: {args.healthy} healthy training slices, {args.test} test "
                f"slices (half lesioned), {args.labelled} labelled lesioned slices (supervised reference) and "
                f"{args.labelled} unlabelled slices (guided segmentation), {args.size} px, budget {args.epochs} "
                f"epochs, CPU\n\n{markdown_table(rows, COLUMNS)}\n\nThresholds from held-out healthy slices (5% "
                "false-positive rate); pixel_dice_best: the best single threshold of the raw maps, chosen on the test "
                "masks (an upper bound, not a result); pixel_dice_postprocessed: StRegA chain (positive residual, "
                "Otsu threshold of the test maps themselves (no labels), opening, area filter). The supervised "
                "reference's threshold is the best Dice on a held-out fifth of its labelled set; ae+guided: the "
                "segmenter trained on the post-processed ae maps of unlabelled slices (no labels), threshold 0.5. "
                "lesions_detected: fraction of lesions with a pixel above the threshold (read it with the Dice). "
                "images_per_s includes reading the PNGs and writing the maps.\n\n"
                f"## Lesion-wise detection rate by lesion size (pixels)\n\n"
                f"{markdown_table(size_rows.to_dict('records'), ['detector', *bins])}\n")
    print(markdown)
    payload = {"rows": rows, "sizes": size_table.to_dict("records"),
               "meta": {**{k: str(v) for k, v in vars(args).items()}, "host": host_info()}}
    stem = f"anomaly_images-{args.source}-cpu" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


def _references(root: Path, args: argparse.Namespace, sizes: list[pd.DataFrame]) -> list[dict[str, Any]]:
    """The supervised reference and the ae-guided segmenter through their workflows."""
    from biolatent.workflows.anomaly_segmentation import run_guided, run_supervised

    rows = []
    seg_epochs = max(2, args.epochs * 6)  # the segmenter needs ~200 epochs on 200 slices (see its tests' notes)
    start = time.perf_counter()
    out = run_supervised(root / "labelled", root / "test", root / "supervised", image_size=args.size,
                         epochs=seg_epochs, say=lambda _: None)
    train_s = time.perf_counter() - start
    metrics = pd.read_csv(out / "anomaly_metrics.tsv", sep="\t")
    run_sizes = pd.read_csv(out / "lesion_sizes.tsv", sep="\t")
    sizes.append(run_sizes[run_sizes.detector == "supervised"])
    rows.append({"detector": "supervised (reference)", **_metric_values(metrics, "supervised"),
                 "lesions_detected": _detected(run_sizes, "supervised"), "train_s": train_s})
    if (root / "ae").is_dir():
        start = time.perf_counter()
        out = run_guided(root / "ae", root / "unlabelled", root / "test", root / "guided", epochs=seg_epochs,
                         say=lambda _: None)
        train_s = time.perf_counter() - start
        metrics = pd.read_csv(out / "anomaly_metrics.tsv", sep="\t")
        run_sizes = pd.read_csv(out / "lesion_sizes.tsv", sep="\t")
        sizes.append(run_sizes[run_sizes.detector == "ae+guided"])
        rows.append({"detector": "ae+guided (no labels)", **_metric_values(metrics, "ae+guided"),
                     "lesions_detected": _detected(run_sizes, "ae+guided"), "train_s": train_s})
    for row in rows:
        print(f"{row['detector']}: {row}", flush=True)
    return rows


if __name__ == "__main__":
    main()
