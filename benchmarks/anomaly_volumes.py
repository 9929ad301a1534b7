"""Anomaly detectors on synthetic 3D brains with planted lesions, natively in 3D and slice-wise: voxel metrics and
scoring throughput (volumes/s), beside two trivial baselines and a supervised reference.

Brains from ``biolatent data simulate brain`` (SynthSeg-style subjects drawn from the real MNI ICBM152 template,
tumour-like lesions with known masks): a healthy training cohort, a test cohort (half lesioned) and, for the
supervised reference only, a labelled lesioned cohort. Each image detector is fitted on the healthy cohort
(``data.modality: volume``; a seeded 25% of the subjects held out to set the thresholds at a 5% healthy
false-positive rate) once per ``--modes`` entry: ``3d`` (``maps.volume_mode: 3d``, the default of ``anomaly fit``:
the detector built with ``spatial_dims=3`` trains on and scores whole volumes) and ``slicewise`` (a 2D detector on
the axial slices, Baur et al. 2021, MedIA 69:101952); in 3D on 2 volumes per step, the reconstruction models at lr
1e-3 (``VOLUME_BATCH``, ``VOLUME_LR``). Each is evaluated on the test cohort: sample (volume)
AUROC/AP, voxel AUROC/AP inside the brain, Dice at the healthy-validation threshold, the best Dice (chosen on the
test masks: an upper bound), Dice after the StRegA post-processing (Chatterjee et al. 2022, Comput Biol Med
149:106093; binarised at the healthy-validation voxel threshold, never Otsu over the pooled test maps),
lesion-wise detection rate, fitting time and scoring throughput (volumes/s, reading the NIfTI files and writing
the maps included).

Two trivial baselines are rows of the same table, on the same test cohort and brain region, with the same volume
score (``anomaly.volumes.volume_scores``) and thresholds from the same healthy validation volumes: ``voxel
intensity`` (the map is the voxel intensity itself) and ``distance to mean healthy volume`` (|x - the mean of the
healthy fitting volumes|). The supervised reference is the segmenter with the detectors' backbone
(``biolatent.anomaly.segmentation``) trained on the labelled cohort for the detectors' epochs, in 3D in the ``3d``
mode and on the axial slices in the ``slicewise`` mode, its threshold chosen on a held-out fifth of the labelled
subjects.

    python benchmarks/anomaly_volumes.py                  # 60 healthy + 60 test + 16 labelled brains of 64^3
    python benchmarks/anomaly_volumes.py --quick          # 6 + 6 + 4 brains of 32^3, 1 epoch, diffusion models
                                                          # sampling 2 DDIM steps (a smoke run, about a minute)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from _anomaly_runs import VALIDATION, run_detector, train_settings
from _report import RESULTS_DIR, device_tag, host_info, markdown_table, write_results

from biolatent.anomaly.detectors import IMAGE_DETECTORS
from biolatent.anomaly.lesion_sizes import VOLUME_EDGES, bin_labels
from biolatent.anomaly.volumes import write_brain_set
from biolatent.workflows.anomaly import lesion_size_table

MODES = ("3d", "slicewise")
COLUMNS = ("detector", "mode", "sample_auroc", "sample_ap", "voxel_auroc", "voxel_ap", "voxel_dice_val_threshold",
           "voxel_dice_best", "voxel_dice_postprocessed", "lesions_detected", "fit_s", "volumes_per_s")
TOP_FRACTION, OPENING = 0.01, 1  # the image detectors' default volume score (top 1 % mean, opening radius 1)
BASELINE_MODE = "n/a"  # the trivial baselines have no network: one row each, whatever the modes
QUICK_METHOD = {"ddpm": {"sampling_steps": 2}, "masked_diffusion": {"sampling_steps": 2}}  # --quick: a smoke run
# mode 3d trains on 2 volumes per step (about 100 brain slices; 16 volumes left 3 optimizer steps per epoch on 45
# fitting brains) and the reconstruction models at lr 1e-3: ceVAE, 10 epochs, 45 + 15 healthy brains of 64^3, CPU,
# seed 0: voxel AUROC 0.49 with 16 volumes at lr 1e-2, 0.71 with 2 volumes at lr 1e-3 (32^3: 0.62 -> 0.72)
VOLUME_BATCH, VOLUME_LR = 2, {"ae": 1e-3, "vae": 1e-3, "cevae": 1e-3}


def mode_train(name: str, epochs: int, mode: str) -> dict[str, Any]:
    """The ``train`` section of detector ``name`` in ``mode`` (``train_settings``, with the 3D batch and rate)."""
    settings = train_settings(name, epochs)
    if mode == "3d":
        settings.update({"batch_size": VOLUME_BATCH, "lr": VOLUME_LR.get(name, settings["lr"])})
    return settings


def map_rows(name: str, mode: str, maps: np.ndarray, test: np.ndarray, labels: np.ndarray, masks: np.ndarray,
             sample_threshold: float, voxel_threshold: float, erosion: int, *,
             postprocess: bool = True) -> tuple[dict[str, Any], pd.DataFrame]:
    """The metrics of test ``maps`` (already 0 outside the brain region) as ``anomaly evaluate`` computes them: (row,
    lesion-size table at ``voxel_threshold``)."""
    from biolatent.anomaly.metrics import dense_metrics, dice, sample_metrics
    from biolatent.anomaly.volumes import brain_region, volume_scores
    from biolatent.workflows.anomaly import postprocessed

    scores = volume_scores(maps, TOP_FRACTION, OPENING)
    sample = sample_metrics(scores, labels, sample_threshold)
    region = brain_region(test, erosion) | masks
    voxel = dense_metrics(maps[region], masks[region], voxel_threshold, "voxel")
    segmented = postprocessed(maps, voxel_threshold)
    voxel["dice_postprocessed"] = dice(segmented, masks) if postprocess else float("nan")
    label = f"{name} ({mode})"
    sizes = lesion_size_table(label, maps, masks, voxel_threshold, segmented)
    detected = sizes[(sizes.segmentation == "raw_val_threshold") & (sizes.size_bin == "all")].detection_rate.iloc[0]
    row = {"detector": name, "mode": mode, **{f"sample_{k}": v for k, v in sample.items()},
           **{f"voxel_{k}": v for k, v in voxel.items()}, "lesions_detected": float(detected)}
    return row, sizes[sizes.segmentation == "raw_val_threshold"].drop(columns="segmentation")


def trivial_baselines(root: Path, data: dict[str, Any], erosion: int) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """``voxel intensity`` and ``distance to mean healthy volume`` on the test cohort: maps inside the same brain
    region, volume scores as the detectors', thresholds from the detectors' healthy validation volumes (the same
    seeded split of ``anomaly fit``: ``workflows.anomaly_tasks.healthy_split``)."""
    from biolatent.anomaly.metrics import threshold_at_fpr
    from biolatent.anomaly.volumes import brain_region, volume_scores
    from biolatent.workflows.anomaly_config import load_anomaly_config
    from biolatent.workflows.anomaly_tasks import healthy_split, read_volume_set

    size, keys = int(data["image_size"]), {"normalise": data["normalise"]}
    config = load_anomaly_config({"data": data, "method": {"name": "ae"}, "validation": VALIDATION})
    _, healthy, _, _ = read_volume_set(root / "healthy", size, **keys)
    fit_idx, val_idx = healthy_split(len(healthy), None, None, config, str(root / "healthy"), "volumes", min_fit=1)
    start = time.perf_counter()
    mean = healthy[fit_idx].mean(axis=0)
    fit_s = time.perf_counter() - start
    maps_of = {"voxel intensity": lambda v: v, "distance to mean healthy volume": lambda v: np.abs(v - mean)}
    held_out = healthy[val_idx]
    held_region = brain_region(held_out, erosion)
    out = []
    for name, map_of in maps_of.items():
        val_maps = map_of(held_out) * held_region
        sample_threshold = threshold_at_fpr(volume_scores(val_maps, TOP_FRACTION, OPENING), VALIDATION["target_fpr"])
        voxel_threshold = threshold_at_fpr(val_maps[held_region], VALIDATION["target_fpr"])
        start = time.perf_counter()
        _, test, labels, masks = read_volume_set(root / "test", size, **keys)
        maps = (map_of(test) * brain_region(test, erosion)).astype(np.float32)
        volumes_per_s = len(test) / (time.perf_counter() - start)
        row, sizes = map_rows(name, BASELINE_MODE, maps, test, labels, masks, sample_threshold, voxel_threshold,
                              erosion)
        row.update({"fit_s": fit_s, "volumes_per_s": volumes_per_s, "epochs": 0})
        print(f"{name}: {row}", flush=True)
        out.append((row, sizes))
    return out


def supervised_reference(root: Path, size: int, epochs: int, seed: int = 0, erosion: int = 0,
                         mode: str = "3d") -> dict[str, Any]:
    """The segmenter trained on the labelled brains (whole volumes in 3D, or their axial slices with ``mode``
    slicewise) for the detectors' ``epochs``, applied likewise to the test brains."""
    from biolatent.anomaly.metrics import best_dice
    from biolatent.anomaly.segmentation import train_segmenter
    from biolatent.anomaly.volumes import brain_region
    from biolatent.workflows.anomaly_tasks import read_volume_set

    _, volumes, _, masks = read_volume_set(root / "labelled", size, normalise="none")
    order = np.random.default_rng(seed).permutation(len(volumes))
    n_val = max(1, len(volumes) // 5)
    fit_ids, val_ids = order[n_val:], order[:n_val]
    three_d = mode == "3d"

    def inputs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if three_d:
            return volumes[ids][:, None], masks[ids]
        x, y = volumes[ids].reshape(-1, size, size), masks[ids].reshape(-1, size, size)
        keep = x.reshape(len(x), -1).max(axis=1) > 0
        return x[keep][:, None], y[keep]

    def predict(segmenter: Any, test: np.ndarray) -> np.ndarray:
        if three_d:
            return segmenter.predict(test[:, None], batch_size=4)
        flat = test.reshape(-1, size, size)
        maps = np.zeros(flat.shape, np.float32)
        keep = np.flatnonzero(flat.reshape(len(flat), -1).max(axis=1) > 0)
        maps[keep] = segmenter.predict(flat[keep][:, None])
        return maps.reshape(test.shape)

    start = time.perf_counter()
    x, y = inputs(fit_ids)
    segmenter = train_segmenter(x, y, epochs=epochs, batch_size=VOLUME_BATCH if three_d else 16, lr=1e-2, seed=seed,
                                accelerator="auto",
                                spatial_dims=3 if three_d else 2)
    vx, vy = inputs(val_ids)
    val_maps = predict(segmenter, vx[:, 0]) if three_d else segmenter.predict(vx)
    segmenter.threshold = float(np.clip(best_dice(val_maps, vy)[1], 0.0, 1.0))
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    _, test, labels, test_masks = read_volume_set(root / "test", size, normalise="none")
    maps = predict(segmenter, test) * brain_region(test, erosion)
    volumes_per_s = len(test) / (time.perf_counter() - start)
    row, sizes = map_rows("supervised (reference)", mode, maps, test, labels, test_masks, segmenter.threshold,
                          segmenter.threshold, erosion, postprocess=False)
    row.update({"fit_s": fit_s, "volumes_per_s": volumes_per_s, "epochs": epochs, "_sizes": sizes})
    return row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--healthy", type=int, default=None)
    parser.add_argument("--test", type=int, default=None, help="test brains, half of them lesioned")
    parser.add_argument("--labelled", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--detectors", default=",".join(IMAGE_DETECTORS))
    parser.add_argument("--modes", default=",".join(MODES), help="3d (anomaly fit's default) and/or slicewise")
    parser.add_argument("--brain-erosion", type=int, default=2,
                        help="maps kept inside the brain mask eroded by this many voxels (0: dilated by one)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", type=int, default=1,
                        help="tasks (a detector in a mode, a supervised reference, the baselines) run in this many "
                             "processes at once; the rows do not depend on it")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modes.split(",")) - set(MODES))
    if unknown:
        parser.error(f"--modes: unknown {', '.join(unknown)} (choose from {', '.join(MODES)})")
    args.healthy = args.healthy or (6 if args.quick else 60)
    args.test = args.test or (6 if args.quick else 60)
    args.labelled = args.labelled or (4 if args.quick else 16)
    args.size = args.size or (32 if args.quick else 64)
    args.epochs = args.epochs or (1 if args.quick else 10)
    return args


def _executor(jobs: int) -> Any:
    """``jobs`` worker processes (spawned: each its own torch and CUDA context), or this process for 1."""
    if jobs <= 1:  # the tasks one after the other in this process, through the executor's ``map``
        return nullcontext(SimpleNamespace(map=map))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def _write_cohort(item: tuple[Path, int, int, dict[str, Any]]) -> Path:
    folder, n, size, options = item
    return write_brain_set(folder, n, size=size, **options)


def _run_task(item: tuple[tuple[Any, ...], Path, dict[str, Any], argparse.Namespace],
              ) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """One table task: ``("detector", name, mode)``, ``("supervised", mode)`` or ``("baselines",)`` -> its (row,
    lesion-size table) pairs. Each task seeds its own training, so the rows do not depend on ``--jobs``."""
    task, root, data, args = item
    if task[0] == "detector":
        _, name, mode = task
        row, sizes = run_detector(name, data, root, args.epochs, args.test, "volumes_per_s",
                                  {"maps": {"brain_erosion": args.brain_erosion, "volume_mode": mode},
                                   "train": mode_train(name, args.epochs, mode)},
                                  run_name=f"{name}-{mode}", method=QUICK_METHOD.get(name) if args.quick else None)
        row["mode"] = mode
        return [(row, None if sizes is None else sizes.assign(detector=f"{name} ({mode})"))]
    if task[0] == "supervised":
        # the detectors' budget: the supervised reference trains for as many epochs as the reconstruction models
        reference = supervised_reference(root, args.size, args.epochs, erosion=args.brain_erosion, mode=task[1])
        print(f"supervised ({task[1]}): {reference}", flush=True)
        return [(reference, reference.pop("_sizes"))]
    return trivial_baselines(root, data, args.brain_erosion)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    rows, size_tables = [], []
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="anomaly-volumes-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        cohorts = [("healthy", args.healthy, {"seed": 0}),
                   ("test", args.test, {"lesions": True, "seed": 1, "exact_fraction": True}),
                   ("labelled", args.labelled, {"lesions": True, "lesion_fraction": 1.0, "seed": 2})]
        # the simulated brains are in [0, 1] already: no intensity normalisation (as before the core loader)
        data = {"modality": "volume", "path": str(root / "healthy"), "image_size": args.size, "lesion_column": "mask",
                "normalise": "none"}
        tasks: list[tuple[Any, ...]] = []
        for mode in modes:
            tasks += [("detector", name, mode) for name in args.detectors.split(",")]
            tasks.append(("supervised", mode))
        tasks.append(("baselines",))
        with _executor(args.jobs) as pool:
            list(pool.map(_write_cohort, [(root / name, n, args.size, kw) for name, n, kw in cohorts]))
            print(f"simulated {args.healthy + args.test + args.labelled} brains in {time.perf_counter() - start:.0f} s",
                  flush=True)
            for results in pool.map(_run_task, [(task, root, data, args) for task in tasks]):
                for row, sizes in results:
                    rows.append(row)
                    if sizes is not None:
                        size_tables.append(sizes)
    sizes = pd.concat(size_tables, ignore_index=True)
    size_rows = sizes.pivot(index="detector", columns="size_bin", values="detection_rate").reset_index()
    bins = [*bin_labels(VOLUME_EDGES), "all"]
    device = device_tag()
    markdown = (f"# Anomaly detectors on synthetic 3D brains, in 3D and slice-wise ({args.healthy} healthy training "
                f"brains, {args.test} test brains (half lesioned), {args.labelled} labelled lesioned brains for the "
                f"supervised reference; {args.size}^3 voxels; budget {args.epochs} epochs; {device})\n\n"
                f"{markdown_table(rows, COLUMNS)}\n\n"
                "Volumes from the real MNI ICBM152 template (SynthSeg-style per-subject deformation, contrasts, bias, "
                "noise) with planted tumour-like lesions. mode 3d: the detector is built with spatial_dims=3 and "
                f"trains on and scores whole volumes (anomaly fit's default; {VOLUME_BATCH} volumes per step, ae, "
                "vae and cevae at lr 1e-3); slicewise: a 2D detector on the axial slices (16 slices per step). The "
                "two trivial baselines (mode n/a) have no network: voxel intensity (the map is the "
                "intensity) and distance to mean healthy volume (|x - mean of the healthy fitting volumes|). Every "
                f"map is kept inside the brain mask eroded by {args.brain_erosion} voxels (lesion voxels outside "
                "count as missed) and evaluated there; every volume score is the top-1% mean of the slice-wise "
                "opened map. Thresholds from held-out healthy subjects (5% false-positive rate), the same for the "
                "baselines; voxel_dice_postprocessed: the StRegA chain at that voxel threshold (never Otsu over the "
                "pooled test maps); voxel_dice_best is chosen on the test masks (an upper bound, not a result); "
                "lesions_detected: fraction of test lesions with at least one voxel above the healthy threshold "
                "(read it with the Dice: a loose threshold detects everything). The supervised reference (in 3D in "
                "mode 3d, on axial slices in mode slicewise) chooses its threshold as the best Dice on held-out "
                "labelled subjects (it has labels, by design); it trains for the detectors' budget "
                f"({args.epochs} epochs). {args.jobs} task(s) ran at once (fit_s and volumes_per_s are those of "
                "tasks sharing the machine when more than one).\n\n"
                f"## Lesion-wise detection rate by lesion size (voxels), raw maps at the healthy threshold\n\n"
                f"{markdown_table(size_rows.to_dict('records'), ['detector', *bins])}\n")
    print(markdown)
    payload = {"rows": rows, "sizes": sizes.to_dict("records"),
               "meta": {**{k: str(v) for k, v in vars(args).items()}, "host": host_info(), "device": device}}
    stem = f"anomaly_volumes-{device}" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
