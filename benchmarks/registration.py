"""Learned deformable registration vs the classical reference and identity, on synthetic brains with known anatomy.

    python benchmarks/registration.py [--quick] [--n-train N] [--n-test M] [--size S] [--image-size I]
                                      [--epochs E] [--micdir-epochs E] [--mi-epochs E] [--max-pairs P]
                                      [--aal-size A] [--threads T] [--work DIR] [--out-dir DIR]

Cohorts: ``data simulate brain`` subjects from the real MNI152 template (``--quick``: the ellipsoid template),
each with its tissue label map (1 GM, 2 WM, 3 CSF): a training cohort (seed 0), a held-out test cohort (seed 1)
and the same held-out anatomy rendered T2-like (``contrast="t2"``).

* Intra-modal: ``voxelmorph`` (NCC) and ``micdir`` (NCC) are trained on the training cohort with the example
  configs of ``configs/registration`` (``--epochs`` / ``--micdir-epochs``, ``--image-size`` replacing theirs) through
  ``workflows.register.fit_registration`` (random pairs within the cohort) and evaluated with
  ``evaluate_registration`` on the first ``--max-pairs`` ordered pairs of the test cohort: the model, ``identity``
  and ``demons`` (SimpleITK).
* Inter-modal: ``voxelmorph`` with ``similarity: local_mi`` is trained (``--mi-epochs``) subject -> atlas, the
  atlas the first test
  subject's T2-like scan; evaluated on every other test subject's T1 scan -> that atlas (``register_pair``), with
  identity and demons (whose histogram matching assumes one contrast: not an inter-modal tool).
* Many-label: the same trained intra-modal models, identity and demons (``evaluate_registration``) on the first
  ``--max-pairs`` ordered pairs of ``--n-test`` held-out brains (seed 1) of another anatomy, Colin27 (dataset
  ``colin27-aal``, Debian ``mricron-data``), at ``--aal-size``^3, each with the AAL atlas (Tzourio-Mazoyer et al.
  2002, 116 regions) warped by its own deformation (``data simulate brain --atlas colin27-aal``); a pair's Dice is
  the mean over the AAL regions present in the fixed map. ``--quick`` skips it, saying so, only when the atlas
  cannot be obtained.

Per method and setting: mean tissue Dice (the mean over labels of each pair) with a 95% t interval over pairs,
HD95 (mm), folding fraction, seconds per pair (CPU), the training throughput (pairs/s) and minutes, and issue
17's criteria measured on paired differences (``criteria``). Written to
``<out-dir>/registration-cpu[-quick].{json,md}`` with the host's provenance. Runs (and evaluations) found in
``--work`` are reused: ``--train-only MODEL`` trains one model there and stops (the published run's models were
trained so on a GPU machine, then evaluated on this CPU). Nothing here runs in the test suite except ``--quick``.
"""

from __future__ import annotations

import argparse
import math
import os
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
           "seconds_per_pair", "seconds_per_pair_gpu", "train_pairs_per_s", "train_minutes"]
MAX_TIME_FRACTION = 0.1  # "a small fraction of the classical reference's time per pair"
DEMONS_NOTE = "50 iterations, field smoothing 1.5 voxels, histogram matching"


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
    epochs = args.micdir_epochs if name == "micdir" else args.mi_epochs if "similarity" in method else args.epochs
    config["train"].update({"epochs": epochs})
    if args.quick:
        config["method"].update({"widths": [4, 8, 8], "ncc_window": 5, "mi_patch": 4})
        config["train"]["batch_size"] = 2
    path = work / f"{name}-{method.get('similarity', 'ncc')}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def summarise(setting: str, method: str, pairs: list[dict[str, float]], train: dict | None,
              gpu: float | None = None) -> dict:
    """One table row: ``pairs`` (one dict per pair: pair, dice, hd95, folding_fraction, seconds) -> means, the
    Dice's 95% t interval over pairs, and the per-pair Dice (``pair_dice``, for paired differences)."""
    dice, low, high = t_interval([p["dice"] for p in pairs])
    finite = [p["hd95"] for p in pairs if math.isfinite(p["hd95"])]
    return {"setting": setting, "method": method, "n_pairs": len(pairs), "dice": dice, "dice_ci_low": low,
            "dice_ci_high": high, "hd95": statistics.fmean(finite) if finite else float("nan"),
            "folding_fraction": statistics.fmean(p["folding_fraction"] for p in pairs),
            "seconds_per_pair": statistics.fmean(p["seconds"] for p in pairs), "seconds_per_pair_gpu": gpu,
            "train_pairs_per_s": None if train is None else train["pairs_per_second"],
            "train_minutes": None if train is None else train["train_seconds"] / 60,
            "pair_dice": {str(p["pair"]): float(p["dice"]) for p in pairs}}


def paired_difference(row: dict, reference: dict) -> tuple[float, float, float]:
    """(mean, low, high) of ``row``'s Dice minus ``reference``'s over their common pairs (95% t interval)."""
    common = sorted(set(row["pair_dice"]) & set(reference["pair_dice"]))
    return t_interval([row["pair_dice"][p] - reference["pair_dice"][p] for p in common])


def criteria(rows: list[dict], max_time_fraction: float) -> list[dict]:
    """Issue 17's "done when", per learned model and setting, from the rows (each a statement, its measured value
    and whether it holds): Dice clearly above identity (the paired 95% interval of the difference above 0), within
    0.03 of demons (mean paired difference >= -0.03), seconds per pair at most ``max_time_fraction`` of demons',
    under 1% folding."""
    out = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        group = {r["method"]: r for r in rows if r["setting"] == setting}
        identity, demons = group.get("identity"), group.get("demons")
        for name, row in group.items():
            if name in ("identity", "demons"):
                continue
            if identity is not None:
                mean, low, high = paired_difference(row, identity)
                out.append({"setting": setting, "method": name, "criterion": "Dice clearly above identity",
                            "measured": f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]", "holds": low > 0})
            if demons is not None:
                mean, low, high = paired_difference(row, demons)
                out.append({"setting": setting, "method": name, "criterion": "Dice within 0.03 of demons",
                            "measured": f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]", "holds": mean >= -0.03})
                ratio = row["seconds_per_pair"] / demons["seconds_per_pair"]
                out.append({"setting": setting, "method": name,
                            "criterion": f"seconds per pair <= {max_time_fraction:g} x demons'",
                            "measured": f"{ratio:.3f} x", "holds": ratio <= max_time_fraction})
                if row.get("seconds_per_pair_gpu") is not None:  # the model on a GPU, demons on this CPU
                    ratio = row["seconds_per_pair_gpu"] / demons["seconds_per_pair"]
                    out.append({"setting": setting, "method": name,
                                "criterion": f"seconds per pair on the GPU <= {max_time_fraction:g} x demons' (CPU)",
                                "measured": f"{ratio:.4f} x", "holds": ratio <= max_time_fraction})
            out.append({"setting": setting, "method": name, "criterion": "folding < 1% of voxels",
                        "measured": f"{100 * row['folding_fraction']:.3f}%", "holds": row["folding_fraction"] < 0.01})
    return out


MODELS = ("voxelmorph", "micdir", "voxelmorph_mi")


def train_model(work: Path, cohorts: dict[str, Path], args: argparse.Namespace, name: str) -> Path:
    """The run directory of model ``name`` (one of ``MODELS``) in ``work/runs``, trained there first unless a run is
    found (e.g. one trained on a GPU machine with ``--train-only`` and copied here)."""
    from biolatent.workflows.register import fit_registration

    run = work / "runs" / name
    if (run / "model.safetensors").is_file():
        return run
    data: dict[str, Any] = {"path": str(cohorts["train"]), "labels_column": "labels"}
    method: dict[str, Any] = {}
    if name == "voxelmorph_mi":
        import pandas as pd

        t2 = cohorts["test_t2"]
        first = pd.read_csv(t2 / "meta.tsv", sep="\t").iloc[0]  # the atlas: the first test subject's T2-like scan
        data.update({"atlas": str(t2 / first["path"]), "atlas_labels": str(t2 / first["labels"])})
        method = {"similarity": "local_mi"}
    config = config_file(work, "micdir" if name == "micdir" else "voxelmorph", data, method, args)
    fit_registration(config, run, progress=False, say=print)
    return run


GPU_TIMING = "gpu_timing.json"


def time_on_gpu(work: Path, cohorts: dict[str, Path], args: argparse.Namespace) -> None:
    """Each trained model's seconds per pair on the GPU (``work/runs/<name>/gpu_timing.json``): the same test pairs
    as the CPU evaluation, each volume put on the model's cube on the CPU (as ``register_pair`` does), then moved
    to the GPU, the displacement predicted and copied back (synchronised); after three warm-up pairs."""
    import time

    import pandas as pd
    import torch

    from biolatent.registration.data import read_image, to_cube
    from biolatent.rundir import write_json
    from biolatent.workflows.register import load_run

    device = torch.device("cuda")
    meta = pd.read_csv(cohorts["test"] / "meta.tsv", sep="\t")
    images = [read_image(cohorts["test"] / path, "image").data for path in meta.path]  # read once for every model
    for name in MODELS:
        run = work / "runs" / name
        config, method = load_run(run)
        method.to(device)
        cubes = [torch.from_numpy(to_cube(image, config.data, "image")) for image in images]
        pairs = [(i, j) for i in range(len(cubes)) for j in range(len(cubes)) if i != j][: args.max_pairs]
        seconds = []
        with torch.no_grad():
            for k, (i, j) in enumerate([pairs[0]] * 3 + pairs):
                started = time.perf_counter()
                field = method.register(cubes[i][None, None].to(device), cubes[j][None, None].to(device)).cpu()
                if k >= 3:
                    seconds.append(time.perf_counter() - started)
        assert field.shape[1] == 3
        write_json(run / GPU_TIMING, {"seconds_per_pair": statistics.fmean(seconds), "n_pairs": len(seconds),
                                      "device": torch.cuda.get_device_name(0)})
        print(f"{name}: {statistics.fmean(seconds) * 1000:.2f} ms a pair on {torch.cuda.get_device_name(0)}")


def gpu_seconds(work: Path, name: str) -> float | None:
    from biolatent.rundir import read_json

    path = work / "runs" / name / GPU_TIMING
    return float(read_json(path)["seconds_per_pair"]) if path.is_file() else None


def training_devices(work: Path) -> str:
    """Where each model of ``work/runs`` was trained (its run's ``provenance.json``), one phrase."""
    from biolatent.rundir import read_json

    devices = {}
    for name in MODELS:
        path = work / "runs" / name / "provenance.json"
        if path.is_file():
            devices[name] = str(read_json(path).get("device", "unknown"))
    if len(set(devices.values())) == 1:
        return f"all trained on {next(iter(devices.values()))}"
    return "trained on " + "; ".join(f"{name}: {device}" for name, device in devices.items())


INTRA = "intra-modal (T1 -> T1)"
MANY = "many-label (Colin27 + AAL, T1 -> T1)"


def pairwise_rows(work: Path, cohorts: dict[str, Path], args, setting: str, data: Path, out: str | None,
                  fixed_labels_only: bool = False) -> list[dict]:
    """The trained intra-modal models (voxelmorph, micdir), identity and demons on the first ``--max-pairs`` ordered
    pairs of the cohort ``data`` (``evaluate_registration``, written to ``work/<out>/<model>``, or to the run when
    ``out`` is None; an evaluation found there is reused, as runs are), one row per method."""
    import pandas as pd

    from biolatent.rundir import read_json
    from biolatent.workflows.register import evaluate_registration

    rows = []
    for name in ("voxelmorph", "micdir"):
        run = train_model(work, cohorts, args, name)
        rate = read_json(run / "metrics.json")["register"]
        folder = run if out is None else work / out / name
        metrics = folder / "registration_metrics.tsv"
        if not metrics.is_file():
            evaluate_registration(run, data, max_pairs=args.max_pairs, classical=name == "voxelmorph",
                                  fixed_labels_only=fixed_labels_only, out_dir=folder, say=print)
        table = pd.read_csv(metrics, sep="\t", keep_default_na=False)
        means = table[table.label == "mean"]
        for method, group in means.groupby("method", sort=False):
            if method in ("identity", "demons") and name != "voxelmorph":
                continue  # the same pairs: reported once
            pairs = group[["dice", "hd95", "folding_fraction", "seconds"]].astype(float).assign(
                pair=group["pair"].to_numpy()).to_dict("records")
            rows.append(summarise(setting, str(method), pairs, rate if method == name else None,
                                  gpu_seconds(work, name) if method == name else None))
    return rows


def intra_modal(work: Path, cohorts: dict[str, Path], args) -> list[dict]:
    return pairwise_rows(work, cohorts, args, INTRA, cohorts["test"], None)


def aal_cohort(work: Path, args) -> Path | None:
    """The held-out many-label cohort (``data simulate brain --atlas colin27-aal``: ``--n-test`` Colin27 brains of
    ``--aal-size``^3, seed 1, each with the AAL map warped by its own deformation) in ``work/cohorts/test_aal``;
    with ``--quick``, None (said) when the atlas cannot be obtained (no Debian archive)."""
    from biolatent.anomaly.volumes import write_brain_set
    from biolatent.data.simulate.brain import colin27_aal_template
    from biolatent.datasets import RegistryUnreachable

    folder = work / "cohorts" / "test_aal"
    if (folder / "meta.tsv").is_file():
        return folder
    try:
        template = colin27_aal_template(progress=print)
    except RegistryUnreachable as exc:
        if not args.quick:
            raise
        print(f"many-label setting skipped: the colin27-aal atlas cannot be obtained ({exc})")
        return None
    write_brain_set(folder, args.n_test, size=args.aal_size, seed=1, template=template)
    return folder


def many_label(work: Path, cohorts: dict[str, Path], args) -> list[dict]:
    """The intra-modal models, identity and demons on the first ``--max-pairs`` ordered pairs of the AAL cohort:
    Dice per pair = the mean over the AAL regions present in the fixed subject's map."""
    folder = aal_cohort(work, args)
    if folder is None:
        return []
    return pairwise_rows(work, cohorts, args, MANY, folder, "aal", fixed_labels_only=True)


def inter_modal(work: Path, cohorts: dict[str, Path], args) -> list[dict]:
    import numpy as np
    import pandas as pd

    from biolatent.registration.classical import classical_tool
    from biolatent.registration.data import read_image, read_labels
    from biolatent.registration.metrics import hd95
    from biolatent.registration.pairwise import identity_fn, register_pair
    from biolatent.rundir import read_json
    from biolatent.workflows.register import load_run

    t1 = pd.read_csv(cohorts["test"] / "meta.tsv", sep="\t")
    t2 = pd.read_csv(cohorts["test_t2"] / "meta.tsv", sep="\t")
    atlas, atlas_labels = cohorts["test_t2"] / t2.path[0], cohorts["test_t2"] / t2.labels[0]
    run = train_model(work, cohorts, args, "voxelmorph_mi")
    rate = read_json(run / "metrics.json")["register"]
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
            results[name].append({"pair": f"{t1.id[i]}->{t2.id[0]}", "dice": result.dice_mean,
                                  "hd95": float(np.nanmean(distances)), "folding_fraction": result.folding_fraction,
                                  "seconds": result.seconds})
    return [summarise("inter-modal (T1 -> T2 atlas)", name, pairs, rate if name.startswith("voxelmorph") else None,
                      gpu_seconds(work, "voxelmorph_mi") if name.startswith("voxelmorph") else None)
            for name, pairs in results.items()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved (``--quick`` shrinks them): what the result JSON records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny cohorts (ellipsoid template), 1 epoch")
    parser.add_argument("--n-train", type=int, default=48)
    parser.add_argument("--n-test", type=int, default=6)
    parser.add_argument("--size", type=int, default=32, help="side of the simulated brains (voxels)")
    parser.add_argument("--image-size", type=int, default=32, help="the models' cube")
    parser.add_argument("--aal-size", type=int, default=64, help="side of the many-label (Colin27 + AAL) brains")
    parser.add_argument("--epochs", type=int, default=200, help="voxelmorph (NCC)")
    parser.add_argument("--micdir-epochs", type=int, default=200, help="micdir (about 2.5x voxelmorph's cost a pair)")
    parser.add_argument("--mi-epochs", type=int, default=200, help="voxelmorph (local MI), subject -> atlas")
    parser.add_argument("--max-pairs", type=int, default=30, help="intra-modal: the first P ordered test pairs")
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "registration")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the models (torch) and of demons")
    parser.add_argument("--time-on-gpu", action="store_true",
                        help="time each trained model of --work on the GPU (written beside the run) and stop")
    parser.add_argument("--train-only", choices=MODELS, default=None,
                        help="train this model into --work and stop (e.g. on a GPU machine); a later run with the "
                             "same --work evaluates it on this machine's CPU")
    args = parser.parse_args(argv)
    if args.quick:
        (args.n_train, args.n_test, args.size, args.image_size, args.epochs, args.micdir_epochs, args.mi_epochs,
         args.max_pairs, args.aal_size) = 4, 3, 32, 16, 1, 1, 1, 2, 32
    return args


def many_label_note(rows: list[dict], args: argparse.Namespace) -> str:
    """What the many-label rows are, or that the setting was skipped."""
    if not any(r["setting"] == MANY for r in rows):
        return "Many-label setting: skipped (the colin27-aal atlas could not be obtained)."
    return (f"Many-label: {args.n_test} held-out Colin27 brains (seed 1, `data simulate brain --atlas colin27-aal`, "
            f"{args.aal_size}^3, the same SynthSeg-style rendering and per-subject deformations), each with the AAL "
            f"atlas (116 regions) warped by its own deformation; the first {args.max_pairs} ordered pairs, registered "
            "by the intra-modal models trained on MNI152 brains (a new anatomy for them); Dice: the mean over the AAL "
            "regions present in the fixed map of each pair, mean over pairs [95% t interval over pairs].")


def report(rows: list[dict], checks: list[dict], args: argparse.Namespace, wall_seconds: float) -> str:
    """The stored markdown: what was run, the table, the criteria of issue 17 with their measured values."""
    cohort = "ellipsoid template" if args.quick else "the real MNI152 template"
    lines = [
        "# Learned deformable registration vs demons vs identity (synthetic brains; inference timed on the CPU)",
        "",
        f"Cohorts from {cohort} (`data simulate brain`, {args.size}^3, tissue labels 1 GM, 2 WM, 3 CSF): "
        f"{args.n_train} training brains (seed 0), {args.n_test} held-out test brains (seed 1). "
        f"Intra-modal: the first {args.max_pairs} ordered pairs of the test cohort (T1 -> T1); inter-modal: every "
        "other test subject's T1 scan -> the first test subject's T2-like scan (the atlas the MI model was trained "
        f"to). Models: `configs/registration/*.yaml` at {args.image_size}^3, trained on random pairs within the "
        f"training cohort for {args.epochs} epochs (voxelmorph, NCC), {args.micdir_epochs} (micdir) and "
        f"{args.mi_epochs} (voxelmorph with local MI, subject -> atlas), the same budget in epochs for each, "
        f"{training_devices(args.work)}; evaluated on this machine's CPU with {args.threads} thread(s) for the "
        "models (torch) and demons (SimpleITK) alike. "
        "Hyper-parameters were chosen for voxelmorph (NCC) on a separate validation cohort (seed 2, 5 brains, 20 "
        "pairs), never on this test cohort; micdir and the MI model use the same ones. Dice: the mean over the three "
        "tissues of each pair, mean over pairs [95% t interval over pairs]. "
        f"{many_label_note(rows, args)} HD95 in mm (the mean over the labels of a pair); seconds per pair at "
        "inference on the CPU (demons: SimpleITK's fast symmetric forces demons, "
        f"{DEMONS_NOTE}); `seconds_per_pair_gpu`: the model alone on the GPU (`--time-on-gpu`: the cube moved to the "
        "GPU, the displacement predicted and copied back, on the first pairs of the same test cohort; empty where "
        "no GPU was lent); training throughput in pairs/s and training time (a run's own record: runs and evaluations "
        f"found in --work are reused). This script's wall time: {wall_seconds / 60:.0f} min; 1-minute load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at its end (seconds are those of a shared machine).",
        "",
        markdown_table(rows, COLUMNS),
        "",
        "## Issue 17's criteria, as measured",
        "",
        "Differences are paired over the same pairs: mean [95% t interval]. \"Clearly above identity\": the "
        f"interval lies above 0; \"a small fraction of demons' time\": at most {MAX_TIME_FRACTION:g} x its seconds "
        "per pair.",
        "",
        markdown_table([{**c, "holds": "yes" if c["holds"] else "**no**"} for c in checks],
                       ["setting", "method", "criterion", "measured", "holds"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import time

    import torch

    started = time.perf_counter()
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:  # the classical reference gets the same threads as the models (SimpleITK would take every core)
        import SimpleITK

        SimpleITK.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    except ImportError:
        pass
    args.work.mkdir(parents=True, exist_ok=True)
    cohorts = make_cohorts(args.work, args)
    if args.time_on_gpu:
        time_on_gpu(args.work, cohorts, args)
        return []
    if args.train_only is not None:
        print(f"trained {train_model(args.work, cohorts, args, args.train_only)}")
        return []
    rows = intra_modal(args.work, cohorts, args) + inter_modal(args.work, cohorts, args) + many_label(args.work,
                                                                                                     cohorts, args)
    checks = criteria(rows, MAX_TIME_FRACTION)
    wall = time.perf_counter() - started
    stem = "registration-cpu" + ("-quick" if args.quick else "")
    payload = {"meta": {**host_info(), "quick": args.quick, "wall_seconds": wall,
                        "training": training_devices(args.work)}, "columns": COLUMNS, "rows": rows,
               "criteria": checks}
    markdown = report(rows, checks, args, wall)
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(markdown)
    print(f"wrote {json_path} and {md_path}")
    return rows


if __name__ == "__main__":
    main()
