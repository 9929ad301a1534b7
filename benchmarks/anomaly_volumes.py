"""Anomaly detectors on synthetic 3D brains with planted lesions: voxel metrics and scoring throughput (volumes/s).

Brains from ``biolatent data simulate brain`` (SynthSeg-style subjects drawn from the real MNI ICBM152 template,
tumour-like lesions with known masks): a healthy training cohort, a test cohort (half lesioned) and, for the
supervised reference only, a labelled lesioned cohort. Each image detector is fitted slice-wise on the healthy
cohort (``data.modality: volume``; a seeded 25% of the subjects held out to set the thresholds at a 5%
healthy false-positive rate) and evaluated on the test cohort: sample (volume) AUROC/AP, voxel AUROC/AP inside
the brain, Dice at the healthy-validation threshold, the best Dice (chosen on the test masks: an upper bound),
Dice after the StRegA post-processing, lesion-wise detection rate, fitting time and scoring throughput
(volumes/s, reading the NIfTI files and writing the maps included). The supervised reference is the segmenter
with the detectors' backbone (``biolatent.anomaly.segmentation``) trained on the axial slices of the labelled
cohort and applied slice-wise, its threshold chosen on a held-out fifth of the labelled subjects.

    python benchmarks/anomaly_volumes.py                  # 24 healthy + 16 test + 16 labelled brains of 64^3
    python benchmarks/anomaly_volumes.py --quick          # 6 + 6 + 4 brains of 32^3, 1 epoch (smoke run)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _anomaly_runs import run_detector
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.anomaly.detectors import IMAGE_DETECTORS
from biolatent.anomaly.lesion_sizes import VOLUME_EDGES, bin_labels
from biolatent.anomaly.volumes import write_brain_set
from biolatent.workflows.anomaly import lesion_size_table

COLUMNS = ("detector", "sample_auroc", "sample_ap", "voxel_auroc", "voxel_ap", "voxel_dice_val_threshold",
           "voxel_dice_best", "voxel_dice_postprocessed", "lesions_detected", "fit_s", "volumes_per_s")


def supervised_reference(root: Path, size: int, epochs: int, seed: int = 0, erosion: int = 0) -> dict[str, Any]:
    """The segmenter trained on the labelled brains' slices, scored slice-wise on the test brains."""
    from biolatent.anomaly.metrics import best_dice, dense_metrics, sample_metrics
    from biolatent.anomaly.segmentation import train_segmenter
    from biolatent.anomaly.volumes import brain_region, volume_scores
    from biolatent.workflows.anomaly_tasks import read_volume_set

    _, volumes, _, masks = read_volume_set(root / "labelled", size, normalise="none")
    order = np.random.default_rng(seed).permutation(len(volumes))
    n_val = max(1, len(volumes) // 5)
    fit_ids, val_ids = order[n_val:], order[:n_val]

    def slices(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = volumes[ids].reshape(-1, size, size), masks[ids].reshape(-1, size, size)
        keep = x.reshape(len(x), -1).max(axis=1) > 0
        return x[keep][:, None], y[keep]

    start = time.perf_counter()
    x, y = slices(fit_ids)
    segmenter = train_segmenter(x, y, epochs=epochs, batch_size=16, lr=1e-2, seed=seed)
    vx, vy = slices(val_ids)
    segmenter.threshold = float(np.clip(best_dice(segmenter.predict(vx), vy)[1], 0.0, 1.0))
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    _, test, labels, test_masks = read_volume_set(root / "test", size, normalise="none")
    flat = test.reshape(-1, size, size)
    maps = np.zeros(flat.shape, np.float32)
    keep = np.flatnonzero(flat.reshape(len(flat), -1).max(axis=1) > 0)
    maps[keep] = segmenter.predict(flat[keep][:, None])
    maps = maps.reshape(test.shape) * brain_region(test, erosion)
    volumes_per_s = len(test) / (time.perf_counter() - start)
    scores = volume_scores(maps, 0.01, 0)
    sample = sample_metrics(scores, labels, segmenter.threshold)
    region = brain_region(test, erosion) | test_masks
    voxel = dense_metrics(maps[region], test_masks[region], segmenter.threshold, "voxel")
    sizes = lesion_size_table("supervised", maps, test_masks, segmenter.threshold)
    detected = sizes[(sizes.segmentation == "raw_val_threshold") & (sizes.size_bin == "all")].detection_rate.iloc[0]
    return {"detector": "supervised (reference)", **{f"sample_{k}": v for k, v in sample.items()},
        **{f"voxel_{k}": v for k, v in voxel.items()}, "voxel_dice_postprocessed": float("nan"),
        "lesions_detected": float(detected), "fit_s": fit_s, "volumes_per_s": volumes_per_s, "epochs": epochs,
        "_sizes": sizes, "_threshold_note": "best Dice on held-out labelled subjects", "_best": best_dice(
            maps[region], test_masks[region])[0]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--healthy", type=int, default=None)
    parser.add_argument("--test", type=int, default=None)
    parser.add_argument("--labelled", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--detectors", default=",".join(IMAGE_DETECTORS))
    parser.add_argument("--brain-erosion", type=int, default=2,
                        help="maps kept inside the brain mask eroded by this many voxels (0: dilated by one)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.healthy = args.healthy or (6 if args.quick else 24)
    args.test = args.test or (6 if args.quick else 16)
    args.labelled = args.labelled or (4 if args.quick else 16)
    args.size = args.size or (32 if args.quick else 64)
    args.epochs = args.epochs or (1 if args.quick else 6)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    rows, size_tables = [], []
    with tempfile.TemporaryDirectory(prefix="anomaly-volumes-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_brain_set(root / "healthy", args.healthy, size=args.size, seed=0)
        write_brain_set(root / "test", args.test, size=args.size, lesions=True, seed=1)
        write_brain_set(root / "labelled", args.labelled, size=args.size, lesions=True, lesion_fraction=1.0, seed=2)
        print(f"simulated {args.healthy + args.test + args.labelled} brains in {time.perf_counter() - start:.0f} s",
              flush=True)
        # the simulated brains are in [0, 1] already: no intensity normalisation (as before the core loader)
        data = {"modality": "volume", "path": str(root / "healthy"), "image_size": args.size, "lesion_column": "mask",
                "normalise": "none"}
        for name in args.detectors.split(","):
            row, sizes = run_detector(name, data, root, args.epochs, args.test, "volumes_per_s",
                                      {"maps": {"brain_erosion": args.brain_erosion}})
            rows.append(row)
            size_tables.append(sizes)
        # the detectors' budget: the supervised reference trains for as many epochs as the reconstruction models
        reference = supervised_reference(root, args.size, args.epochs, erosion=args.brain_erosion)
        size_tables.append(reference.pop("_sizes"))
        reference["voxel_dice_best"] = reference.pop("_best")
        reference.pop("_threshold_note")
        rows.append(reference)
        print(f"supervised: {reference}", flush=True)
    sizes = pd.concat(size_tables, ignore_index=True)
    size_rows = sizes[sizes.segmentation == "raw_val_threshold"].pivot(index="detector", columns="size_bin",
                                                                       values="detection_rate").reset_index()
    bins = [*bin_labels(VOLUME_EDGES), "all"]
    markdown = (f"# Anomaly detectors on synthetic 3D brains ({args.healthy} healthy training brains, {args.test} test "
                f"brains (half lesioned), {args.labelled} labelled lesioned brains for the supervised reference; "
                f"{args.size}^3 voxels; budget {args.epochs} epochs; CPU)\n\n{markdown_table(rows, COLUMNS)}\n\n"
                "Volumes from the real MNI ICBM152 template (SynthSeg-style per-subject deformation, contrasts, bias, "
                "noise) with planted tumour-like lesions; every detector works slice-wise (axial); its maps are kept "
                f"inside the brain mask eroded by {args.brain_erosion} voxels (lesion voxels outside count as missed) "
                "and evaluated there. Thresholds from held-out healthy subjects (5% false-positive "
                "rate); voxel_dice_best is chosen on the test masks (an upper bound, not a result); "
                "lesions_detected: fraction of test lesions with at least one voxel above the healthy threshold "
                "(read it with the Dice: a loose threshold detects everything). The supervised reference's "
                "threshold is the best Dice on held-out labelled subjects (it has labels, by design); it trains for "
                f"the detectors' budget ({args.epochs} epochs).\n\n"
                f"## Lesion-wise detection rate by lesion size (voxels), raw maps at the healthy threshold\n\n"
                f"{markdown_table(size_rows.to_dict('records'), ['detector', *bins])}\n")
    print(markdown)
    payload = {"rows": rows, "sizes": sizes.to_dict("records"),
               "meta": {**{k: str(v) for k, v in vars(args).items()}, "host": host_info()}}
    stem = "anomaly_volumes-cpu" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
