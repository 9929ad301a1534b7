"""Lung nodules in chest CT: a diffusion anomaly detector fitted on healthy chests vs a supervised detector with the
same backbone and training budget, sample-level AUROC with bootstrap intervals (the paper's third result: AUC 0.93
for the diffusion detector vs 0.94 for a supervised detection network on lung CT).

Chests from ``biolatent data simulate chest`` (Hounsfield units; no real chest CT cohort is reachable here): a
healthy training cohort (seed 0), a test cohort (seed 1, half with 1-3 nodules of 3-15 mm, solid / part-solid /
ground-glass) and, for the supervised detector only, a labelled cohort (seed 2, every subject with nodules and
their masks). Every volume is read by the core volume loader (``data.modality: volume``, ``normalise: ct``, lung
window -1000..400 HU, ``biolatent.data.volume_sets``) and written as the [0, 1] set the anomaly commands read.

* diffusion detector (``--detector``, default ddpm): ``anomaly fit`` on the healthy cohort (volume3d, slice-wise
  on axial slices; a quarter of the subjects held out for the threshold), then ``anomaly score`` on the test
  cohort; the U-Net widths (8, 16, 32);
* supervised detector: the lesion segmenter (``biolatent.anomaly.segmentation``: a U-Net of the same widths)
  trained on the axial slices of the labelled cohort with their nodule masks for the diffusion run's
  ``train.epochs`` (the ``anomaly supervised --budget-from RUN`` rule: never more than the detector), applied
  slice-wise to the test cohort.

With ``--lung-mask`` every voxel outside the lungs (the simulator's tissue labels, standing in for a lung
segmentation) is set to 0 first, so both detectors see the lungs only. Both volume scores are the same rule: the
map kept inside the nonzero voxels (the body, or the lungs) eroded by ``--erosion`` voxels, no opening (a nodule
can be one voxel at 64^3), the mean of the top ``--top-fraction`` of its voxels. AUROC and AP over the test
volumes; 95% intervals from a stratified bootstrap of the test volumes (``--bootstrap`` resamples, the same
resamples for both detectors, so the paired difference has its interval too); AUROC by the size of a subject's
largest nodule (< 8 mm, >= 8 mm, each against all healthy test subjects).

    python benchmarks/anomaly_ct.py            # 32 healthy + 24 test + 16 labelled chests of 64^3, 6 epochs
    python benchmarks/anomaly_ct.py --lung-mask --erosion 0   # the same, the lungs only
    python benchmarks/anomaly_ct.py --quick    # 8 + 8 + 4 chests of 32^3, 1 epoch (smoke run)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _report import RESULTS_DIR, host_info, markdown_table, write_results

PAPER = {"diffusion": 0.93, "supervised": 0.94}
LUNG_WINDOW = {"ct_center": -300.0, "ct_width": 1400.0}  # -1000..400 HU
WIDTHS = (8, 16, 32)  # small U-Nets: the run fits beside other jobs on 2 CPU cores
LARGE_MM = 8.0
COLUMNS = ("detector", "sample_auroc", "auroc_ci_low", "auroc_ci_high", "sample_ap", "auroc_small", "auroc_large",
           "paper_auroc", "epochs", "fit_s", "score_s")


def anomaly_config(detector: str, healthy: Path, size: int, epochs: int, top_fraction: float,
                   erosion: int) -> Any:
    """The one place the benchmark builds its anomaly config (the schema is changing: adapt it here)."""
    from biolatent.workflows.anomaly_config import load_anomaly_config

    return load_anomaly_config({
        "data": {"modality": "volume", "path": str(healthy), "image_size": size, "lesion_column": "mask",
                 "normalise": "none"},  # windowed_set wrote the lung window's [0, 1] values
        "method": {"name": detector, "widths": list(WIDTHS), "top_fraction": top_fraction, "score_opening": 0},
        "train": {"epochs": epochs, "batch_size": 16, "lr": 5e-3, "seed": 0},
        "validation": {"fraction": 0.25, "target_fpr": 0.05},
        "maps": {"brain_erosion": erosion}})


def lung_field(labels: np.ndarray) -> np.ndarray:
    """The lungs of a tissue label map (parenchyma and the vessels inside), closed and dilated by one voxel: the
    lung mask a lung segmentation would give."""
    from scipy import ndimage

    from biolatent.data.simulate.chest import LUNG, VESSEL

    lungs = ndimage.binary_closing(np.isin(np.rint(labels), (LUNG, VESSEL)), iterations=2)
    return ndimage.binary_dilation(lungs)


def windowed_set(source: Path, target: Path, size: int, lung_mask: bool = False) -> Path:
    """``source`` (HU) read by the core volume loader with the lung window, written as a [0, 1] set (volumes, the
    masks and meta.tsv as they are) that the anomaly commands read without rescaling; with ``lung_mask`` every
    voxel outside the lung field (``lung_field`` of the subject's tissue labels) is set to 0."""
    from biolatent.config import VolumeData
    from biolatent.data.simulate.chest import affine_for
    from biolatent.data.volume_sets import load_volume
    from biolatent.io.nifti import read_nifti, write_nifti

    samples = load_volume(VolumeData(path=source, image_size=size, normalise="ct", **LUNG_WINDOW))
    target.mkdir(parents=True)
    meta = pd.read_csv(source / "meta.tsv", sep="\t", keep_default_na=False)
    for sid, path, labels, volume in zip(meta["id"], meta["path"], meta["labels"], samples.x.numpy()[:, 0],
                                         strict=True):
        assert str(sid) in samples.obs.index
        if lung_mask:
            volume = volume * lung_field(read_nifti(source / str(labels), ndim=3).data)
        write_nifti(target / str(path), volume, affine=affine_for(size))
    for mask in meta.get("mask", pd.Series(dtype=str)):
        if str(mask):
            shutil.copy(source / str(mask), target / str(mask))
    meta.to_csv(target / "meta.tsv", sep="\t", index=False)
    shutil.copy(source / "nodules.tsv", target / "nodules.tsv")
    return target


def bootstrap(scores: dict[str, np.ndarray], labels: np.ndarray, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """AUROC of every detector on ``n`` stratified resamples of the test volumes (the same for all detectors)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    draws: dict[str, list[float]] = {name: [] for name in scores}
    for _ in range(n):
        index = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        for name, values in scores.items():
            draws[name].append(roc_auc_score(labels[index], values[index]))
    return {name: np.asarray(values) for name, values in draws.items()}


def subset_auroc(scores: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> float:
    """AUROC of the subjects with nodules in ``keep`` against every healthy subject."""
    from sklearn.metrics import roc_auc_score

    chosen = keep | ~labels
    if labels[chosen].all() or not labels[chosen].any():
        return float("nan")
    return float(roc_auc_score(labels[chosen], scores[chosen]))


def supervised_scores(root: Path, size: int, epochs: int, top_fraction: float, erosion: int,
                      seed: int = 0) -> tuple[np.ndarray, float, float]:
    """(test volume scores, fit s, score s) of the segmenter trained on the labelled chests' axial slices."""
    from biolatent.anomaly.segmentation import train_segmenter
    from biolatent.anomaly.volumes import brain_region, volume_scores
    from biolatent.workflows.anomaly_tasks import read_volume_set

    _, volumes, _, masks = read_volume_set(root / "labelled", size, normalise="none")
    start = time.perf_counter()
    segmenter = train_segmenter(volumes.reshape(-1, 1, size, size), masks.reshape(-1, size, size), epochs=epochs,
                                batch_size=16, lr=1e-2, seed=seed, widths=WIDTHS)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    _, test, _, _ = read_volume_set(root / "test", size, normalise="none")
    maps = segmenter.predict(test.reshape(-1, 1, size, size)).reshape(test.shape) * brain_region(test, erosion)
    return volume_scores(maps, top_fraction, 0), fit_s, time.perf_counter() - start


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--healthy", type=int, default=None)
    parser.add_argument("--test", type=int, default=None)
    parser.add_argument("--labelled", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None, help="the diffusion detector's epochs: the budget")
    parser.add_argument("--detector", default="ddpm", choices=("ddpm", "masked_diffusion"))
    parser.add_argument("--top-fraction", type=float, default=1e-4,
                        help="volume score: mean of this fraction of the highest map voxels (1e-4: 26 at 64^3)")
    parser.add_argument("--erosion", type=int, default=2,
                        help="maps kept inside the nonzero voxels (the body; with --lung-mask the lungs) eroded by "
                             "this many voxels (0: dilated by one)")
    parser.add_argument("--lung-mask", action="store_true",
                        help="zero every voxel outside the lungs (the simulator's tissue labels) before detection")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.healthy = args.healthy or (8 if args.quick else 32)
    args.test = args.test or (8 if args.quick else 24)
    args.labelled = args.labelled or (4 if args.quick else 16)
    args.size = args.size or (32 if args.quick else 64)
    args.epochs = args.epochs or (1 if args.quick else 6)
    if args.quick:
        args.bootstrap = min(args.bootstrap, 200)
    return args


def _simulate(root: Path, args: argparse.Namespace) -> None:
    from biolatent.data.simulate.chest import write_chest_set

    start = time.perf_counter()
    cohorts = (("healthy", args.healthy, 0, False, 0.5), ("test", args.test, 1, True, 0.5),
               ("labelled", args.labelled, 2, True, 1.0))
    for name, n, seed, nodules, fraction in cohorts:
        write_chest_set(root / "hu" / name, n, size=args.size, nodules=nodules, seed=seed, nodule_fraction=fraction)
        windowed_set(root / "hu" / name, root / name, args.size, args.lung_mask)
    print(f"simulated {args.healthy + args.test + args.labelled} chests in {time.perf_counter() - start:.0f} s",
          flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from biolatent.workflows.anomaly import fit_anomaly, score_anomaly
    from biolatent.workflows.anomaly_segmentation import detector_epochs

    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="anomaly-ct-") as tmp:
        root = Path(tmp)
        _simulate(root, args)
        config = anomaly_config(args.detector, root / "healthy", args.size, args.epochs, args.top_fraction,
                                args.erosion)
        run = root / args.detector
        start = time.perf_counter()
        fit_anomaly(config, run, say=lambda _: None)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        scored = pd.read_csv(score_anomaly(run, root / "test", run / "scored", say=lambda _: None), sep="\t")
        score_s = time.perf_counter() - start
        print(f"{args.detector}: fit {fit_s:.0f} s, scored in {score_s:.0f} s", flush=True)
        budget = detector_epochs(run)  # the `anomaly supervised --budget-from RUN` rule
        supervised, sup_fit_s, sup_score_s = supervised_scores(root, args.size, budget, args.top_fraction,
                                                               args.erosion)
        meta = pd.read_csv(root / "test" / "meta.tsv", sep="\t", keep_default_na=False)
        nodules = pd.read_csv(root / "test" / "nodules.tsv", sep="\t")
    rows, payload = _results(args, meta, nodules, scored, supervised, budget,
                             {"fit_s": (fit_s, sup_fit_s), "score_s": (score_s, sup_score_s)})
    markdown = _markdown(args, rows, payload)
    print(markdown)
    stem = "anomaly_ct-cpu" + ("-lungmask" if args.lung_mask else "") + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, {**payload, "rows": rows,
                                                            "meta": {"host": host_info()}}, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


def _results(args: argparse.Namespace, meta: pd.DataFrame, nodules: pd.DataFrame, scored: pd.DataFrame,
             supervised: np.ndarray, budget: int, times: dict[str, tuple[float, float]]) -> tuple[list[dict], dict]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = meta["is_anomaly"].to_numpy().astype(bool)
    diffusion = scored.set_index("id").loc[meta["id"], "score"].to_numpy()
    largest = nodules.groupby("id")["diameter_mm"].max().reindex(meta["id"]).to_numpy()
    large = labels & (np.nan_to_num(largest) >= LARGE_MM)
    small = labels & ~large
    scores = {args.detector: diffusion, "supervised": supervised}
    draws = bootstrap(scores, labels, args.bootstrap)
    rows = []
    for k, (name, values) in enumerate(scores.items()):
        low, high = np.percentile(draws[name], [2.5, 97.5])
        rows.append({"detector": name, "sample_auroc": float(roc_auc_score(labels, values)),
                     "auroc_ci_low": float(low), "auroc_ci_high": float(high),
                     "sample_ap": float(average_precision_score(labels, values)),
                     "auroc_small": subset_auroc(values, labels, small),
                     "auroc_large": subset_auroc(values, labels, large),
                     "paper_auroc": PAPER["diffusion" if k == 0 else "supervised"], "epochs": budget,
                     "fit_s": times["fit_s"][k], "score_s": times["score_s"][k]})
    difference = draws[args.detector] - draws["supervised"]
    payload = {"difference": {"auroc": rows[0]["sample_auroc"] - rows[1]["sample_auroc"],
                              "ci_low": float(np.percentile(difference, 2.5)),
                              "ci_high": float(np.percentile(difference, 97.5))},
               "test": {"n": int(labels.size), "with_nodules": int(labels.sum()), "small": int(small.sum()),
                        "large": int(large.sum()), "nodules": len(nodules),
                        "types": nodules["type"].value_counts().to_dict()},
               "scores": {"id": meta["id"].tolist(), "label": labels.astype(int).tolist(),
                          **{name: values.tolist() for name, values in scores.items()}}}
    return rows, payload


def _markdown(args: argparse.Namespace, rows: list[dict], payload: dict) -> str:
    test, diff = payload["test"], payload["difference"]
    spacing = 350.0 / args.size
    inside = "the lungs (every voxel outside the lung field zeroed before detection)" if args.lung_mask else "the body"
    region = f"{inside} " + (f"eroded by {args.erosion} voxels" if args.erosion else "dilated by one voxel")
    return (f"# Lung nodules in synthetic chest CT: diffusion detector vs supervised detector ({args.healthy} healthy "
            f"training chests, {args.test} test chests ({test['with_nodules']} with nodules), {args.labelled} labelled "
            f"chests for the supervised detector; {args.size}^3 voxels of {spacing:.1f} mm; budget {rows[0]['epochs']} "
            f"epochs; CPU)\n\n{markdown_table(rows, COLUMNS)}\n\n"
            f"sample_auroc: test volumes with nodules vs without; 95% interval from {args.bootstrap} stratified "
            f"bootstrap resamples of the test volumes. Paired difference {args.detector} - supervised: "
            f"{diff['auroc']:+.3f} [{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}]. auroc_small / auroc_large: "
            f"subjects whose largest nodule is < {LARGE_MM:g} mm ({test['small']}) / >= {LARGE_MM:g} mm "
            f"({test['large']}) against all healthy test subjects. {test['nodules']} test nodules "
            f"({', '.join(f'{v} {k}' for k, v in sorted(test['types'].items()))}). paper_auroc: the paper's numbers "
            "on real lung CT, not this data. Both detectors are U-Nets of widths "
            f"{', '.join(map(str, WIDTHS))} on axial slices, trained for the same epochs (the supervised one: the "
            "`anomaly supervised --budget-from` rule); volumes read with the core loader's ct normalisation (lung "
            "window -1000..400 HU); volume score = mean of the top "
            f"{args.top_fraction:g} of the map voxels inside {region}, no opening.\n")


if __name__ == "__main__":
    main()
