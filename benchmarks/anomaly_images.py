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
from _anomaly_runs import detection_rate, metric_values, run_detector
from _report import RESULTS_DIR, device_tag, host_info, markdown_table, write_results

from biolatent.anomaly.detectors import IMAGE_DETECTORS
from biolatent.anomaly.lesion_sizes import DEFAULT_EDGES, bin_labels

COLUMNS = ("detector", "sample_auroc", "sample_ap", "pixel_auroc", "pixel_ap", "pixel_dice_val_threshold",
           "pixel_dice_best", "pixel_dice_postprocessed", "lesions_detected", "fit_s", "images_per_s")


def _write_sets(root: Path, args: argparse.Namespace) -> None:
    from biolatent.anomaly.images import write_slice_set
    from biolatent.anomaly.volumes import write_brain_slice_set

    write = write_brain_slice_set if args.source == "brain" else write_slice_set
    write(root / "healthy", args.healthy, size=args.size, seed=0)
    write(root / "test", args.test, size=args.size, lesions=True, seed=1)
    write(root / "labelled", args.labelled, size=args.size, lesions=True, lesion_fraction=1.0, seed=2)
    write(root / "unlabelled", args.labelled, size=args.size, lesions=True, seed=3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
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
    args.epochs = args.epochs or (1 if args.quick else 20)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    rows, sizes = [], []
    with tempfile.TemporaryDirectory(prefix="anomaly-images-") as tmp:
        root = Path(tmp)
        _write_sets(root, args)
        data = {"modality": "image2d", "path": str(root / "healthy"), "image_size": args.size, "lesion_column": "mask"}
        for name in args.detectors.split(","):
            row, run_sizes = run_detector(name, data, root, args.epochs, args.test, "images_per_s")
            rows.append(row)
            sizes.append(run_sizes)
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
                f"Both segmenters train for the detectors' budget ({args.epochs} epochs; the diffusion models "
                "10/3 and reverse distillation 2/3 of it, see _anomaly_runs). "
                "lesions_detected: fraction of lesions with a pixel above the threshold (read it with the Dice). "
                "images_per_s includes reading the PNGs and writing the maps.\n\n"
                f"## Lesion-wise detection rate by lesion size (pixels)\n\n"
                f"{markdown_table(size_rows.to_dict('records'), ['detector', *bins])}\n")
    print(markdown)
    payload = {"rows": rows, "sizes": size_table.to_dict("records"),
               "meta": {**{k: str(v) for k, v in vars(args).items()}, "host": host_info()}}
    stem = f"anomaly_images-{args.source}-{device_tag()}" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


def _references(root: Path, args: argparse.Namespace, sizes: list[pd.DataFrame]) -> list[dict[str, Any]]:
    """The supervised reference and the ae-guided segmenter through their workflows."""
    from biolatent.workflows.anomaly_segmentation import run_guided, run_supervised

    seg_epochs = args.epochs  # the detectors' budget (reconstruction models: args.epochs; see _anomaly_runs)
    runs = [("supervised", "supervised (reference)",
             lambda: run_supervised(root / "labelled", root / "test", root / "supervised", image_size=args.size,
                                    epochs=seg_epochs, say=lambda _: None))]
    if (root / "ae").is_dir():
        runs.append(("ae+guided", "ae+guided (no labels)",
                     lambda: run_guided(root / "ae", root / "unlabelled", root / "test", root / "guided",
                                        epochs=seg_epochs, say=lambda _: None)))
    rows = []
    for detector, label, run in runs:
        start = time.perf_counter()
        out = run()
        fit_s = time.perf_counter() - start
        metrics = pd.read_csv(out / "anomaly_metrics.tsv", sep="\t")
        run_sizes = pd.read_csv(out / "lesion_sizes.tsv", sep="\t")
        sizes.append(run_sizes[run_sizes.detector == detector])
        rows.append({"detector": label, **metric_values(metrics, detector),
                     "lesions_detected": detection_rate(run_sizes, detector), "fit_s": fit_s, "epochs": seg_epochs})
        print(f"{label}: {rows[-1]}", flush=True)
    return rows


if __name__ == "__main__":
    main()
