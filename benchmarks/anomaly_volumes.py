"""Anomaly detectors on synthetic 3D brains with planted lesions, natively in 3D and slice-wise: voxel metrics and
scoring throughput (volumes/s), beside two trivial baselines and a supervised reference.

Brains from ``biolatent data simulate brain`` (SynthSeg-style subjects drawn from the real MNI ICBM152 template,
tumour-like lesions with known masks): a healthy training cohort, a test cohort (half lesioned) and, for the
supervised reference only, a labelled lesioned cohort. Each image detector is fitted on the healthy cohort
(``data.modality: volume``; a seeded 25% of the subjects held out to set the thresholds at a 5% healthy
false-positive rate) once per ``--modes`` entry: ``3d`` (``maps.volume_mode: 3d``, the default of ``anomaly fit``:
the detector built with ``spatial_dims=3`` trains on and scores whole volumes) and ``slicewise`` (a 2D detector on
the axial slices, Baur et al. 2021, MedIA 69:101952). The reconstruction models and the supervised reference
(``--tuned``) are fitted once per point of a batch-size x learning-rate grid and the point with the best voxel AUROC
on a separate validation cohort (``--validation`` brains, half lesioned, their own seed) is the one evaluated on the
test cohort: the test cohort chooses nothing. The other detectors keep fixed settings (``_anomaly_runs``; in 3D 2
volumes per step, ``VOLUME_BATCH``). ``--cohort-seed`` draws all four cohorts anew (a replicate of the whole
benchmark). Each is evaluated on the test cohort: sample (volume)
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

With ``--register`` (the default) every brain is first registered affinely to its set's atlas (``template.nii.gz``
of ``data simulate brain``: the template's anatomy at the identity pose) through ``data.template``, as brain anomaly
benchmarks work in an atlas space (MNI, SRI24): detectors, baselines, masks and metrics are then all in atlas space.
``--no-register`` scores the brains in their own poses (rotations up to 10 degrees, scalings up to 8 %); the choice
was made on the validation cohorts (``anomaly_budget.py --register``), not on a test cohort.

    python benchmarks/anomaly_volumes.py                  # 60 healthy + 60 test + 16 labelled + 40 validation
                                                          # brains of 64^3
    python benchmarks/anomaly_volumes.py --cohort-seed 1  # a replicate on cohorts drawn anew
    python benchmarks/anomaly_volumes.py --quick          # 6 + 6 + 4 + 6 brains of 32^3, 1 epoch, diffusion models
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
from _anomaly_runs import VALIDATION, evaluate_detector, fit_detector, train_settings
from _report import RESULTS_DIR, device_tag, host_info, markdown_table, write_results

from biolatent.anomaly.detectors import IMAGE_DETECTORS
from biolatent.anomaly.lesion_sizes import VOLUME_EDGES, bin_labels
from biolatent.anomaly.volumes import TEMPLATE_FILE, write_brain_set
from biolatent.workflows.anomaly import lesion_size_table

MODES = ("3d", "slicewise")
COLUMNS = ("detector", "mode", "batch_size", "lr", "sample_auroc", "sample_ap", "voxel_auroc", "voxel_ap",
           "voxel_dice_val_threshold", "voxel_dice_best", "voxel_dice_postprocessed", "lesions_detected", "fit_s",
           "volumes_per_s")
SELECTION_COLUMNS = ("detector", "mode", "batch_size", "lr", "voxel_auroc", "sample_auroc", "voxel_dice_val_threshold",
                     "chosen")
TOP_FRACTION, OPENING = 0.01, 1  # the image detectors' default volume score (top 1 % mean, opening radius 1)
BASELINE_MODE = "n/a"  # the trivial baselines have no network: one row each, whatever the modes
SUPERVISED, SUPERVISED_ROW = "supervised", "supervised (reference)"
QUICK_METHOD = {"ddpm": {"sampling_steps": 2}, "masked_diffusion": {"sampling_steps": 2}}  # --quick: a smoke run
# Untuned detectors in mode 3d train on 2 volumes per step and the reconstruction models at lr 1e-3 (the settings of
# an earlier run, disclosed: chosen after a test-cohort result). The tuned ones (--tuned) get the batch and rate of
# the grid point with the best voxel AUROC on the validation cohort (--validation), never on the test cohort.
VOLUME_BATCH, VOLUME_LR = 2, {"ae": 1e-3, "vae": 1e-3, "cevae": 1e-3}
SLICE_BATCH = 16
# cohort seeds: 10 * --cohort-seed + these (healthy, test, labelled, validation)
COHORT_SEEDS = {"healthy": 0, "test": 1, "labelled": 2, "validation": 3}


def cohort_data(root: Path, size: int, register: bool) -> dict[str, Any]:
    """The ``data`` section every fit and read of the benchmark uses: the healthy cohort under ``root``, no intensity
    normalisation (the simulated brains are in [0, 1]), and with ``register`` the set's atlas as ``data.template``."""
    data = {"modality": "volume", "path": str(root / "healthy"), "image_size": size, "lesion_column": "mask",
            "normalise": "none"}
    return data | ({"template": str(root / "healthy" / TEMPLATE_FILE)} if register else {})


def mode_train(name: str, epochs: int, mode: str, batch_size: int | None = None,
               lr: float | None = None) -> dict[str, Any]:
    """The ``train`` section of detector ``name`` in ``mode`` (``train_settings``, with the 3D batch and rate), or at
    a grid point ``batch_size``/``lr``."""
    settings = train_settings(name, epochs)
    if mode == "3d":
        settings.update({"batch_size": VOLUME_BATCH, "lr": VOLUME_LR.get(name, settings["lr"])})
    if batch_size is not None:
        settings["batch_size"] = batch_size
    if lr is not None:
        settings["lr"] = lr
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


def healthy_fit_split(root: Path, data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the healthy cohort's volumes, the positions ``anomaly fit`` trains on, those it holds out for the
    thresholds): its seeded split by subject (``workflows.anomaly_tasks.healthy_split``)."""
    from biolatent.workflows.anomaly_config import load_anomaly_config
    from biolatent.workflows.anomaly_tasks import healthy_split, read_volume_set

    config = load_anomaly_config({"data": data, "method": {"name": "ae"}, "validation": VALIDATION})
    _, healthy, _, _ = read_volume_set(root / "healthy", int(data["image_size"]), normalise=data["normalise"],
                                       template=data.get("template"))
    fit_idx, val_idx = healthy_split(len(healthy), None, None, config, str(root / "healthy"), "volumes", min_fit=1)
    return healthy, fit_idx, val_idx


def trivial_baselines(root: Path, data: dict[str, Any], erosion: int, cohort: str = "test",
                      ) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """``voxel intensity`` and ``distance to mean healthy volume`` on ``cohort`` (a folder under ``root``): maps
    inside the same brain region, volume scores as the detectors', thresholds from the detectors' healthy validation
    volumes (the same seeded split of ``anomaly fit``: ``workflows.anomaly_tasks.healthy_split``)."""
    from biolatent.anomaly.metrics import threshold_at_fpr
    from biolatent.anomaly.volumes import brain_region, volume_scores
    from biolatent.workflows.anomaly_tasks import read_volume_set

    size, keys = int(data["image_size"]), {"normalise": data["normalise"], "template": data.get("template")}
    healthy, fit_idx, val_idx = healthy_fit_split(root, data)
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
        _, test, labels, masks = read_volume_set(root / cohort, size, **keys)
        maps = (map_of(test) * brain_region(test, erosion)).astype(np.float32)
        volumes_per_s = len(test) / (time.perf_counter() - start)
        row, sizes = map_rows(name, BASELINE_MODE, maps, test, labels, masks, sample_threshold, voxel_threshold,
                              erosion)
        row.update({"fit_s": fit_s, "volumes_per_s": volumes_per_s, "epochs": 0})
        print(f"{name}: {row}", flush=True)
        out.append((row, sizes))
    return out


def supervised_reference(root: Path, size: int, epochs: int, seed: int = 0, erosion: int = 0, mode: str = "3d",
                         batch_size: int | None = None, lr: float = 1e-2,
                         cohorts: tuple[str, ...] = ("test",), template: str | None = None) -> list[dict[str, Any]]:
    """The segmenter trained on the labelled brains (whole volumes in 3D, or their axial slices with ``mode``
    slicewise) for the detectors' ``epochs`` at ``batch_size`` (default: the untuned detectors') and ``lr``, applied
    likewise to each of ``cohorts`` (folders under ``root``): one row per cohort. ``template``: ``data.template``
    of every read (the detectors' atlas space)."""
    from biolatent.anomaly.metrics import best_dice
    from biolatent.anomaly.segmentation import train_segmenter
    from biolatent.anomaly.volumes import brain_region
    from biolatent.workflows.anomaly_tasks import read_volume_set

    _, volumes, _, masks = read_volume_set(root / "labelled", size, normalise="none", template=template)
    order = np.random.default_rng(seed).permutation(len(volumes))
    n_val = max(1, len(volumes) // 5)
    fit_ids, val_ids = order[n_val:], order[:n_val]
    three_d = mode == "3d"
    batch_size = batch_size or (VOLUME_BATCH if three_d else SLICE_BATCH)

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
    segmenter = train_segmenter(x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, accelerator="auto",
                                spatial_dims=3 if three_d else 2)
    vx, vy = inputs(val_ids)
    val_maps = predict(segmenter, vx[:, 0]) if three_d else segmenter.predict(vx)
    segmenter.threshold = float(np.clip(best_dice(val_maps, vy)[1], 0.0, 1.0))
    fit_s = time.perf_counter() - start
    rows = []
    for cohort in cohorts:
        start = time.perf_counter()
        _, test, labels, test_masks = read_volume_set(root / cohort, size, normalise="none", template=template)
        maps = predict(segmenter, test) * brain_region(test, erosion)
        volumes_per_s = len(test) / (time.perf_counter() - start)
        row, sizes = map_rows(SUPERVISED_ROW, mode, maps, test, labels, test_masks, segmenter.threshold,
                              segmenter.threshold, erosion, postprocess=False)
        row.update({"fit_s": fit_s, "volumes_per_s": volumes_per_s, "epochs": epochs, "batch_size": batch_size,
                    "lr": lr, "cohort": cohort, "_sizes": sizes})
        rows.append(row)
    return rows


def _grid(text: str, kind: type) -> list[Any]:
    return [kind(item) for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--healthy", type=int, default=None)
    parser.add_argument("--test", type=int, default=None, help="test brains, half of them lesioned")
    parser.add_argument("--labelled", type=int, default=None)
    parser.add_argument("--validation", type=int, default=None,
                        help="validation brains (half lesioned) that choose the tuned models' batch and rate")
    parser.add_argument("--cohort-seed", type=int, default=0,
                        help="cohorts drawn with seeds 10 * this + 0 (healthy), 1 (test), 2 (labelled), 3 (validation)")
    parser.add_argument("--tuned", default="ae,vae,cevae,supervised",
                        help="models whose batch size and learning rate are chosen on the validation cohort (best "
                             "voxel AUROC over the grid); the others keep their fixed settings")
    parser.add_argument("--lr-grid", default="1e-3,1e-2")
    parser.add_argument("--batch-grid-3d", default="2,8", help="volumes per step")
    parser.add_argument("--batch-grid-slicewise", default="16,64", help="slices per step")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--detectors", default=",".join(IMAGE_DETECTORS))
    parser.add_argument("--modes", default=",".join(MODES), help="3d (anomaly fit's default) and/or slicewise")
    parser.add_argument("--brain-erosion", type=int, default=2,
                        help="maps kept inside the brain mask eroded by this many voxels (0: dilated by one)")
    parser.add_argument("--register", action=argparse.BooleanOptionalAction, default=True,
                        help="register every brain affinely to the set's atlas (data.template) before detection")
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
    args.validation = args.validation or (6 if args.quick else 40)
    unknown = sorted(set(_grid(args.tuned, str)) - {*IMAGE_DETECTORS, SUPERVISED})
    if unknown:  # a tuned model that is not among --detectors has no task
        parser.error(f"--tuned: unknown {', '.join(unknown)} (choose from {', '.join(IMAGE_DETECTORS)}, {SUPERVISED})")
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
    """One task: ``("detector", name, mode, batch, lr)``, ``("supervised", mode, batch, lr)`` or ``("baselines",)``
    -> its (row, lesion-size table) pairs, each row tagged with its ``cohort``. A grid point (``batch`` not None) is
    evaluated on the validation cohort and on the test cohort; ``main`` keeps the test row of the point the validation
    cohort chose. Each task seeds its own training, so the rows do not depend on ``--jobs``."""
    task, root, data, args = item
    if task[0] == "detector":
        _, name, mode, batch, lr = task
        cohorts = ("test",) if batch is None else ("validation", "test")
        sections = {"maps": {"brain_erosion": args.brain_erosion, "volume_mode": mode},
                    "train": mode_train(name, args.epochs, mode, batch, lr)}
        tag = "" if batch is None else f"-b{batch}-lr{lr:g}"
        run, epochs, fit_s = fit_detector(name, data, root, args.epochs, sections, run_name=f"{name}-{mode}{tag}",
                                          method=QUICK_METHOD.get(name) if args.quick else None)
        rows = []
        for cohort in cohorts:
            n_items = args.validation if cohort == "validation" else args.test
            row, sizes = evaluate_detector(name, run, root / cohort, n_items, "volumes_per_s")
            row.update({"fit_s": fit_s, "epochs": epochs})
            rows.append((row, sizes, cohort))
        print(f"{name} ({mode}{tag}): {cohorts[0]} voxel AUROC {rows[0][0]['voxel_auroc']:.3f}", flush=True)
        out = []
        for row, sizes, cohort in rows:
            row.update({"mode": mode, "cohort": cohort, "batch_size": sections["train"]["batch_size"],
                        "lr": sections["train"]["lr"]})
            out.append((row, None if sizes is None else sizes.assign(detector=f"{name} ({mode})")))
        return out
    if task[0] == SUPERVISED:
        # the detectors' budget: the supervised reference trains for as many epochs as the reconstruction models
        _, mode, batch, lr = task
        cohorts = ("test",) if batch is None else ("validation", "test")
        references = supervised_reference(root, args.size, args.epochs, erosion=args.brain_erosion, mode=mode,
                                          batch_size=batch, lr=1e-2 if lr is None else lr, cohorts=cohorts,
                                          template=data.get("template"))
        print(f"supervised ({mode}, batch {batch}, lr {lr}): validation/test voxel AUROC "
              f"{references[0]['voxel_auroc']:.3f}", flush=True)
        return [(reference, reference.pop("_sizes")) for reference in references]
    return [(row | {"cohort": "test"}, sizes) for row, sizes in trivial_baselines(root, data, args.brain_erosion)]


def tasks_of(args: argparse.Namespace) -> list[tuple[Any, ...]]:
    """The benchmark's tasks: per mode, each detector (the tuned ones once per grid point) and the supervised
    reference, then the trivial baselines."""
    tuned, lrs = set(_grid(args.tuned, str)), _grid(args.lr_grid, float)
    tasks: list[tuple[Any, ...]] = []
    for mode in args.modes.split(","):
        batches = _grid(args.batch_grid_3d if mode == "3d" else args.batch_grid_slicewise, int)
        for name in [*args.detectors.split(","), SUPERVISED]:
            kind = SUPERVISED if name == SUPERVISED else "detector"
            prefix = (kind,) if kind == SUPERVISED else (kind, name)
            if name in tuned:
                tasks += [(*prefix, mode, batch, lr) for batch in batches for lr in lrs]
            else:
                tasks.append((*prefix, mode, None, None))
    tasks.append(("baselines",))
    return tasks


def chosen_rows(results: list[tuple[dict[str, Any], pd.DataFrame | None]],
                ) -> tuple[list[tuple[dict[str, Any], pd.DataFrame | None]], list[dict[str, Any]]]:
    """(the test rows of the table, the validation rows with ``chosen``): per (detector, mode), the grid point with
    the best validation voxel AUROC (the first on a tie) is the one whose test row is kept; rows without a
    validation row (untuned models, baselines) are kept as they are."""
    validation = [row for row, _ in results if row["cohort"] == "validation"]
    best: dict[tuple[str, str], tuple[int, float, float]] = {}
    for row in validation:
        key = (row["detector"], row["mode"])
        if key not in best or row["voxel_auroc"] > best[key][2]:
            best[key] = (row["batch_size"], row["lr"], row["voxel_auroc"])
    selection = [{**row, "chosen": best[(row["detector"], row["mode"])][:2] == (row["batch_size"], row["lr"])}
                 for row in validation]
    kept = [(row, sizes) for row, sizes in results if row["cohort"] == "test" and (
        (row["detector"], row["mode"]) not in best
        or best[(row["detector"], row["mode"])][:2] == (row["batch_size"], row["lr"]))]
    return kept, selection


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    rows, size_tables = [], []
    with tempfile.TemporaryDirectory(prefix="anomaly-volumes-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        seed = 10 * args.cohort_seed
        cohorts = [("healthy", args.healthy, {"seed": seed + COHORT_SEEDS["healthy"]}),
                   ("test", args.test, {"lesions": True, "seed": seed + COHORT_SEEDS["test"], "exact_fraction": True}),
                   ("labelled", args.labelled, {"lesions": True, "lesion_fraction": 1.0,
                                                "seed": seed + COHORT_SEEDS["labelled"]})]
        if set(_grid(args.tuned, str)):
            cohorts.append(("validation", args.validation, {"lesions": True, "exact_fraction": True,
                                                            "seed": seed + COHORT_SEEDS["validation"]}))
        data = cohort_data(root, args.size, args.register)
        tasks = tasks_of(args)
        # the longest tasks first (the diffusion models train for 10/3 of the budget), so that no worker idles late
        order = sorted(range(len(tasks)), key=lambda i: tasks[i][1:2] not in (("ddpm",), ("masked_diffusion",)))
        with _executor(args.jobs) as pool:
            list(pool.map(_write_cohort, [(root / name, n, args.size, kw) for name, n, kw in cohorts]))
            print(f"simulated {sum(n for _, n, _ in cohorts)} brains in {time.perf_counter() - start:.0f} s",
                  flush=True)
            done = dict(zip(order, pool.map(_run_task, [(tasks[i], root, data, args) for i in order]), strict=True))
    results, selection = chosen_rows([pair for i in range(len(tasks)) for pair in done[i]])
    for row, sizes in results:
        rows.append(row)
        if sizes is not None:
            size_tables.append(sizes)
    sizes = pd.concat(size_tables, ignore_index=True)
    size_rows = sizes.pivot(index="detector", columns="size_bin", values="detection_rate").reset_index()
    bins = [*bin_labels(VOLUME_EDGES), "all"]
    device = device_tag()
    tuned = ", ".join(_grid(args.tuned, str)) or "none"
    markdown = (f"# Anomaly detectors on synthetic 3D brains, in 3D and slice-wise ({args.healthy} healthy training "
                f"brains, {args.test} test brains (half lesioned), {args.labelled} labelled lesioned brains for the "
                f"supervised reference, {args.validation} validation brains (half lesioned) that choose the tuned "
                f"models' settings; {args.size}^3 voxels; budget {args.epochs} epochs; cohort seed "
                f"{args.cohort_seed}; {device})\n\n"
                f"{markdown_table(rows, COLUMNS)}\n\n"
                "Volumes from the real MNI ICBM152 template (SynthSeg-style per-subject deformation, contrasts, bias, "
                "noise) with planted tumour-like lesions"
                + (", each registered affinely to the atlas (data.template; maps, masks and metrics in atlas "
                   "space). " if args.register else ", in their own poses (no registration). ")
                + "mode 3d: the detector is built with spatial_dims=3 and "
                "trains on and scores whole volumes (anomaly fit's default); slicewise: a 2D detector on the axial "
                f"slices. Tuned on the validation cohort ({tuned}): batch size (3d: {args.batch_grid_3d} volumes, "
                f"slicewise: {args.batch_grid_slicewise} slices per step) x learning rate ({args.lr_grid}), the grid "
                "point with the best validation voxel AUROC is evaluated on the test cohort (the selection table "
                "below); the others keep fixed settings (see benchmarks/_anomaly_runs.py; in 3d "
                f"{VOLUME_BATCH} volumes per step), the same in both modes' budget of {args.epochs} epochs. The "
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
                f"({args.epochs} epochs) and is tuned by the same rule as the detectors. {args.jobs} task(s) ran at "
                "once (fit_s and volumes_per_s are those of tasks sharing the machine when more than one).\n\n"
                "## Settings chosen on the validation cohort (voxel AUROC; the test cohort is not used)\n\n"
                f"{markdown_table(selection, SELECTION_COLUMNS)}\n\n"
                f"## Lesion-wise detection rate by lesion size (voxels), raw maps at the healthy threshold\n\n"
                f"{markdown_table(size_rows.to_dict('records'), ['detector', *bins])}\n")
    print(markdown)
    payload = {"rows": rows, "selection": selection, "sizes": sizes.to_dict("records"),
               "meta": {**{k: str(v) for k, v in vars(args).items()}, "host": host_info(), "device": device}}
    stem = (f"anomaly_volumes-{device}" + (f"-cohort{args.cohort_seed}" if args.cohort_seed else "")
            + ("" if args.register else "-unregistered") + ("-quick" if args.quick else ""))
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
