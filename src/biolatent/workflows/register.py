"""``biolatent register``: fit a learned registration model on a cohort, apply it to a pair, evaluate it on
every pair of a held-out cohort against identity (and a classical tool when installed).

``fit`` trains through the project's one training loop (``train.fit``) into a staged run directory (a failed
run leaves nothing); ``apply`` writes NIfTI maps on the fixed image's grid with its affine and
``registration.json``; ``evaluate`` writes ``RUN/registration_metrics.tsv``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from biolatent.errors import BiolatentError, DataError
from biolatent.registration.config import (
    RegistrationConfig,
    dump_registration_config,
    load_registration_config,
    method_kwargs,
)

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "registration_metrics.tsv"
FIGURE_FILE = "registration_pairs.png"
FIGURE_PAIRS = 3
METRIC_COLUMNS = ["pair", "method", "label", "dice", "hd95", "folding_fraction", "seconds"]


def build(config: RegistrationConfig) -> Any:
    from biolatent.methods.registration_registry import build_registration_method

    return build_registration_method(config.method.name, **method_kwargs(config))


def fit_registration(config_path: Path, out: Path, overrides: list[str] | None = None, *, progress: bool = True,
                     say=print) -> Path:
    """Train ``config_path``'s method on its cohort into the new run directory ``out``; returns ``out``."""
    from biolatent import provenance
    from biolatent.registration.data import labels_to_cube, load_cohort, read_image, read_labels, to_cube
    from biolatent.rundir import staged_dir, update_json, write_json, write_text
    from biolatent.train.checkpoint import save_weights
    from biolatent.train.fit import fit

    config = load_registration_config(config_path, overrides)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BiolatentError(f"run directory {out} is not empty: choose another --out")
    say("loading the cohort ...")
    cohort = load_cohort(config.data)
    torch.manual_seed(config.train.seed)
    method = build(config)
    data = config.data
    if data.atlas is not None:
        atlas = read_image(data.atlas, "atlas")
        atlas_labels = None
        if data.atlas_labels is not None:
            atlas_labels = torch.from_numpy(labels_to_cube(read_labels(data.atlas_labels, atlas, "atlas labels"),
                                                           data.image_size))
        method.set_atlas(torch.from_numpy(to_cube(atlas.data, data, "atlas")), atlas_labels)
    pairs = "subject -> atlas" if data.atlas is not None else "random pairs within the cohort"
    n_params = sum(p.numel() for p in method.parameters())
    say(f"{len(cohort.ids)} volumes ({pairs}); {config.method.name} ({n_params / 1e6:.2f} M parameters)")
    fields = {} if cohort.labels is None else {"labels": cohort.labels}
    with staged_dir(out) as run:
        write_text(run / CONFIG_FILE, dump_registration_config(config))
        write_json(run / "provenance.json", provenance.collect("register fit", config_hash=config.hash(),
                                                               seed=config.train.seed))
        started = time.perf_counter()
        history = fit(method, cohort.x, config.train, run_dir=run, progress=progress, fields=fields)
        seconds = time.perf_counter() - started
        save_weights(run / WEIGHTS_FILE, method, {"method": config.method.name, "config_hash": config.hash()})
        final = history.iloc[-1].to_dict() if len(history) else {}
        metrics = {f"final_{k}": float(v) for k, v in final.items() if k not in {"epoch", "time_s"}}
        metrics.update({"epochs": float(config.train.epochs), "n_volumes": float(len(cohort.ids)),
                        "n_parameters": float(n_params), "train_seconds": seconds,
                        "pairs_per_second": len(cohort.ids) * config.train.epochs / max(seconds, 1e-9)})
        update_json(run / "metrics.json", "register", metrics)
    say(f"trained in {seconds:.1f} s ({metrics['pairs_per_second']:.1f} pairs/s)")
    return out


def load_run(run: Path) -> tuple[RegistrationConfig, Any]:
    """The run's config and its trained method (eval mode)."""
    from biolatent.config import read_yaml
    from biolatent.train.checkpoint import load_weights

    if not (run / CONFIG_FILE).is_file():
        raise BiolatentError(f"{run} is not a registration run directory (no {CONFIG_FILE}): run "
                             "`biolatent register fit` first")
    config = load_registration_config(read_yaml(run / CONFIG_FILE))
    method = build(config)
    load_weights(run / WEIGHTS_FILE, method)
    return config, method.eval()


def apply_registration(run: Path, moving: Path, fixed: Path, out: Path, *, labels: Path | None = None,
                       fixed_labels: Path | None = None, say=print) -> Path:
    """Register ``moving`` to ``fixed``; ``out`` (new or empty) gets ``warped.nii.gz``, ``warped_labels.nii.gz``
    (with ``labels``), ``displacement.nii.gz`` (x, y, z, 3: mm in the fixed image's world axes),
    ``jacobian.nii.gz`` and ``registration.json`` -- everything on the fixed grid with its affine."""
    from biolatent.io.nifti import read_nifti, write_nifti
    from biolatent.registration.data import check_image, read_labels
    from biolatent.registration.pairwise import check_pair, register_pair
    from biolatent.rundir import staged_dir, write_json

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists and is not empty: choose another --out")
    config, method = load_run(run)
    moving_image, fixed_image = read_nifti(moving), read_nifti(fixed)
    check_pair(moving_image, fixed_image)
    moving_image = check_image(moving_image, moving, "moving image")
    fixed_image = check_image(fixed_image, fixed, "fixed image")
    moving_labels = None if labels is None else read_labels(labels, moving_image, "label map")
    target_labels = None if fixed_labels is None else read_labels(fixed_labels, fixed_image, "fixed label map")
    result = register_pair(moving_image, fixed_image, config.data, cube_fn=method.register,
                           moving_labels=moving_labels, fixed_labels=target_labels)
    affine = fixed_image.affine
    summary: dict[str, Any] = {"method": config.method.name, "folding_fraction": result.folding_fraction,
                               "seconds": result.seconds, "moving": str(moving), "fixed": str(fixed)}
    if result.dice:
        summary["dice"] = {str(k): v for k, v in result.dice.items()}
        summary["dice_mean"] = result.dice_mean
    with staged_dir(out) as tmp:
        write_nifti(tmp / "warped.nii.gz", result.warped, affine=affine)
        if result.warped_labels is not None:
            write_nifti(tmp / "warped_labels.nii.gz", result.warped_labels.astype(np.float32), affine=affine)
        millimetres = result.displacement @ affine[:3, :3].T  # voxel steps -> world axes
        write_nifti(tmp / "displacement.nii.gz", millimetres, affine=affine)
        write_nifti(tmp / "jacobian.nii.gz", result.jacobian, affine=affine)
        write_json(tmp / "registration.json", summary)
    say(f"folding fraction {result.folding_fraction:.4f}, {result.seconds:.2f} s"
        + (f", mean Dice {result.dice_mean:.3f}" if result.dice else ""))
    return out


def evaluate_registration(run: Path, data: Path, *, max_pairs: int | None = None, classical: bool = True,
                          fixed_labels_only: bool = False, out_dir: Path | None = None, say=print) -> Path:
    """Every ordered pair (moving, fixed) of the cohort ``data`` (at most ``max_pairs``, in order), registered by
    the run's model, by ``identity`` and (``classical`` and SimpleITK installed) by ``demons``: one row per pair,
    method and label (``label`` = ``mean`` for the mean over labels) -> ``registration_metrics.tsv``, and
    ``registration_pairs.png`` (``registration.plots``: checkerboards before / after and the Jacobian
    determinant of the model's field for the first pairs), in ``out_dir`` (default: the run). Labels: those of
    either map of a pair, or with ``fixed_labels_only`` those present in the fixed map (many-label atlases, where a
    small region may vanish from a subject's map)."""
    from biolatent.registration.data import cohort_table, read_image, read_labels
    from biolatent.registration.metrics import hd95
    from biolatent.registration.pairwise import identity_fn, register_pair
    from biolatent.rundir import atomic_path

    config, method = load_run(run)
    column = config.data.labels_column
    if column is None:
        raise BiolatentError(f"{run} was trained without data.labels_column: evaluation needs label maps")
    if max_pairs is not None and max_pairs < 1:
        raise BiolatentError(f"--max-pairs must be at least 1, got {max_pairs}")
    out_dir = run if out_dir is None else out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    table = cohort_table(data, column)
    volumes = []
    for sid, path, label_path in zip(table["id"], table["path"], table[column], strict=True):
        image = read_image(data / str(path), f"volume {sid!r}")
        if not str(label_path).strip():
            raise DataError(f"volume {sid!r} has no label map (empty {column!r} in {data / 'meta.tsv'})")
        volumes.append((str(sid), image, read_labels(data / str(label_path), image, f"label map of {sid!r}")))
    pairs = [(i, j) for i in range(len(volumes)) for j in range(len(volumes)) if i != j]
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    methods: dict[str, dict[str, Any]] = {config.method.name: {"cube_fn": method.register},
                                          "identity": {"cube_fn": identity_fn}}
    if classical:
        from biolatent.registration.classical import classical_tool

        tool = classical_tool()
        if tool is not None:
            methods[tool[0]] = {"full_fn": tool[1]}
        else:
            say("SimpleITK is not installed: no classical reference (pip install SimpleITK)")
    from biolatent.registration.plots import PairView, pairs_figure

    rows = []
    views: list[PairView] = []
    for count, (i, j) in enumerate(pairs, 1):
        (mid, moving, moving_labels), (fid, fixed, fixed_labels) = volumes[i], volumes[j]
        spacing = [float(np.linalg.norm(fixed.affine[:3, k])) for k in range(3)]
        present = [int(k) for k in np.unique(fixed_labels) if k != 0] if fixed_labels_only else None
        by_method: dict[str, Any] = {}
        for name, how in methods.items():
            result = register_pair(moving, fixed, config.data, moving_labels=moving_labels,
                                   fixed_labels=fixed_labels, dice_labels=present, **how)
            assert result.warped_labels is not None
            by_method[name] = result
            common = {"pair": f"{mid}->{fid}", "method": name, "folding_fraction": result.folding_fraction,
                      "seconds": result.seconds}
            distances = []
            for label, dice in result.dice.items():
                distance = hd95(result.warped_labels == label, fixed_labels == label, spacing)
                distances.append(distance)
                rows.append({**common, "label": str(label), "dice": dice, "hd95": distance})
            rows.append({**common, "label": "mean", "dice": result.dice_mean,
                         "hd95": float(np.nanmean(distances)) if np.isfinite(distances).any() else float("nan")})
        if len(views) < FIGURE_PAIRS:
            model = by_method[config.method.name]  # identity's warped image = the moving image on the fixed grid
            views.append(PairView(f"{mid} -> {fid}", fixed.data, by_method["identity"].warped, model.warped,
                                  model.jacobian))
        say(f"{count}/{len(pairs)} pairs")
    frame = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    with atomic_path(out_dir / METRICS_FILE) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
    with atomic_path(out_dir / FIGURE_FILE) as tmp:
        pairs_figure(views, config.method.name).savefig(tmp, format="png", dpi=90)
    means = frame[frame["label"] == "mean"].groupby("method", sort=False)[["dice", "folding_fraction", "seconds"]]
    for name, row in means.mean().iterrows():
        say(f"  {name}: mean Dice {row['dice']:.3f}, folding {row['folding_fraction']:.4f}, "
            f"{row['seconds']:.2f} s/pair")
    return out_dir / METRICS_FILE
