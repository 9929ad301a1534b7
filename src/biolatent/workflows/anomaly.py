"""``biolatent anomaly fit | score | evaluate``: detectors fitted on healthy data, scored, evaluated honestly.

fit reads the run config of ``pretrain`` with a detector as ``method`` (``workflows.anomaly_config``) and its data
through ``data.loaders`` like every command; what differs per modality (the healthy split, windows, maps) is
``workflows.anomaly_tasks.TASKS``. The threshold is the score exceeded by ``validation.target_fpr`` of the healthy
validation points/samples (when there are too few of them to resolve that rate, a warning says which rate the
threshold gives; it is printed and kept in ``warnings``). A features table fixes its feature columns at fit
(``data.tabular``) and scoring picks them by name. The run directory holds config.yaml, provenance.json,
detector.safetensors + detector.json (weights only), anomaly.json (threshold, window statistics, feature
columns) and metrics.json (section ``anomaly_fit``). A detector trained by gradient descent trains in ``--out``
itself with a per-epoch checkpoint (and history.tsv), so ``--resume`` continues a killed training, as ``pretrain
--resume`` does; a failure before the first checkpoint leaves nothing. Other detectors are written to a hidden
sibling folder and renamed onto ``--out`` at the end, so a failure leaves nothing.

score: OUT/scores.tsv (series: position, value, score, flagged; others: id, score, flagged; a ``label`` column
when the data has labels), scores.png, and for images maps.npy + maps.png, for volumes maps/<id>_map.nii.gz on
each input's grid with its affine + maps.png; OUT is staged like a fit run.
evaluate: needs labels (series: a column; features: an obs/table column; images and volumes: meta.tsv's
``is_anomaly`` or their lesion masks, ``data.lesion_column``; 0/1 or True/False, another column named by
``--label``) -> RUN/anomaly_metrics.tsv (detector, level, metric, value), the ROC/PR figure, score histograms,
(series) the UCR "top hit"; images and volumes with lesion masks also get pixel / voxel rows (voxels within the
brain region, ``anomaly.volumes.brain_region``; ``dice_postprocessed`` applies the StRegA chain at the
healthy-validation pixel / voxel threshold, slice-wise for volumes) and RUN/lesion_sizes.tsv: lesion-wise detection
rate and recall by lesion size, of the raw maps at the healthy-validation threshold and of the post-processed
segmentation. Every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biolatent import provenance
from biolatent.config import AnomalyRunConfig, dump_config
from biolatent.errors import DataError
from biolatent.rundir import atomic_path, read_json, staged_dir, update_json, write_figure, write_json, write_text
from biolatent.train.device import inference_device
from biolatent.workflows.anomaly_config import detector_family, load_anomaly_config, method_params
from biolatent.workflows.anomaly_tasks import ImageTask, labels_of, task_for

STATE_FILE = "anomaly.json"
METRICS_FILE = "anomaly_metrics.tsv"
SCORES_FILE = "scores.tsv"
LESION_SIZES_FILE = "lesion_sizes.tsv"


def _dataset_path(name: str, part: str) -> Path:
    from biolatent.datasets import fetch, get_recipe

    recipe = get_recipe(name)
    if recipe.modality not in ("series", "features"):
        raise DataError(f"dataset {name!r} ({recipe.modality}) is not anomaly data")
    folder = fetch(name, progress=lambda _: None)
    return folder / recipe.data_config["path" if part == "healthy" else "test"]


def _write_table(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g", na_rep="NA")


def fit_anomaly(config: AnomalyRunConfig, run_dir: Path, *, resume: bool = False,
                say: Callable[[str], object] = print) -> dict[str, Any]:
    """Fit ``config.method`` on the healthy data; returns the state written to anomaly.json.

    A detector trained by gradient descent trains in ``run_dir`` itself, as ``pretrain`` does: config.yaml first,
    then ``train.fit``'s per-epoch checkpoint (``checkpoints/last.safetensors``) and history.tsv; ``resume=True``
    continues a killed training from its checkpoint (the config must be the one the run started with; only
    ``train.epochs`` may change). The other detectors are staged and renamed onto ``run_dir`` at the end."""
    import shutil

    from biolatent.anomaly.detectors import build_for
    from biolatent.anomaly.metrics import achieved_fpr, resolution_warning, threshold_at_fpr
    from biolatent.data.loaders import load_samples
    from biolatent.train.fit import LAST_CHECKPOINT
    from biolatent.workflows.common import check_run_dir

    if (run_dir / STATE_FILE).exists():
        raise DataError(f"{run_dir} already holds a fitted detector: choose another --out")
    check_run_dir(run_dir, config, resume, lambda folder: load_anomaly_config(folder / "config.yaml"))
    data, task = config.data, task_for(config.data.modality)
    where = str(data.path if data.path is not None else data.dataset)
    detector = build_for(detector_family(data.modality), config.method.name, method_params(config))
    samples = load_samples(data)  # type: ignore[arg-type]
    state: dict[str, Any] = {"modality": data.modality, "detector": config.method.name}
    in_place = detector.trains_by_gradient
    created = not run_dir.exists()
    if in_place:
        write_text(run_dir / "config.yaml", dump_config(config))
        detector.checkpoint_in(run_dir, resume=resume)
    try:
        val_scores = task.fit(detector, samples, config, state, where, say)
    except BaseException:
        if in_place and not resume and not (run_dir / LAST_CHECKPOINT).is_file():  # nothing to resume: leave nothing
            shutil.rmtree(run_dir, ignore_errors=True)
            if not created:
                run_dir.mkdir()  # the empty folder it was
        raise
    target = config.validation.target_fpr
    threshold = threshold_at_fpr(val_scores, target)
    achieved = achieved_fpr(val_scores, threshold)
    warning = resolution_warning(val_scores.size, target, achieved, task.unit)
    state.update({"threshold": threshold, "target_fpr": target, "validation_fpr": achieved,
                  "validation_n": int(val_scores.size), "warnings": [warning] if warning else [],
                  "healthy_path": where})

    def write(folder: Path) -> None:
        write_text(folder / "config.yaml", dump_config(config))
        write_json(folder / "provenance.json", provenance.collect("anomaly fit", seed=config.train.seed))
        detector.save(folder)
        update_json(folder / "metrics.json", "anomaly_fit", {k: v for k, v in state.items() if k != "healthy_path"})
        write_json(folder / STATE_FILE, state)  # last: the mark of a fitted detector

    if in_place:
        write(run_dir)
    else:
        with staged_dir(run_dir) as tmp:
            write(tmp)
    say(f"threshold {threshold:.4g} (healthy validation false-positive rate {state['validation_fpr']:.3f}, target "
        f"{config.validation.target_fpr})")
    if warning:
        say(f"warning: {warning}")
    return state


def _load(run_dir: Path) -> tuple[AnomalyRunConfig, Any, dict[str, Any]]:
    if not (run_dir / STATE_FILE).is_file():
        raise DataError(f"{run_dir} holds no fitted detector: run `biolatent anomaly fit CONFIG --out {run_dir}`")
    state = read_json(run_dir / STATE_FILE)
    config = load_anomaly_config(run_dir / "config.yaml")
    detector = task_for(state["modality"]).load_detector(run_dir)
    return config, detector.to(inference_device(config.train)), state  # scored on the run's accelerator


def _data_path(config: AnomalyRunConfig, data: str | Path | None) -> Path:
    if data is None:
        if config.data.dataset is None:
            raise DataError("give --data: the run was fitted on a path, not a registered dataset with a test part")
        return _dataset_path(config.data.dataset, "test")
    text = str(data)
    from biolatent.datasets import DATASETS

    return _dataset_path(text, "test") if text in DATASETS else Path(text)


def _scored(run_dir: Path, data: str | Path | None, with_labels: bool, label_column: str | None = None) -> tuple:
    """Score ``data`` (loaded with the run's data section, its path replaced); labels come from ``label_column``
    (default: the task's), read when evaluating, when named explicitly, or when the data holds that column."""
    from biolatent.data.loaders import load_samples
    from biolatent.data.tabular import quoted

    config, detector, state = _load(run_dir)
    task = task_for(state["modality"])
    path = _data_path(config, data)
    cfg = config.data.model_copy(update={"path": path, "dataset": None, **task.data_update(state)})
    samples = load_samples(cfg)  # type: ignore[arg-type]
    name = label_column or task.label_column(config)
    columns = list(samples.obs.columns)
    if label_column is not None and label_column not in columns:
        raise DataError(f"{path} has no label column {label_column!r} (columns: {quoted(columns)})")
    table, extra = task.score(detector, samples, state)
    labels = labels_of(samples, name if name in columns else None, str(path))
    if labels is None and extra.get("masks") is not None:
        labels = extra["masks"].reshape(len(samples), -1).any(axis=1)
    if with_labels and labels is None:
        if isinstance(task, ImageTask):
            raise DataError(f"{path} has no labels: evaluation needs meta.tsv with {name!r} or lesion masks "
                            "(data.lesion_column)")
        raise DataError(f"{path} has no label column {name!r} (columns: {quoted(columns)})")
    table["flagged"] = (table["score"] > state["threshold"]).astype(int)
    if labels is not None:
        table["label"] = labels.astype(int)
    return config, state, path, table, extra, samples


def score_anomaly(run_dir: Path, data: str | Path | None, out_dir: Path, *, label_column: str | None = None,
                  say: Callable[[str], object] = print) -> Path:
    """Score ``data`` with the fitted detector: OUT/scores.tsv (with a ``label`` column when the data holds
    ``label_column``, default the config's), OUT/scores.png and the maps of data with space; returns scores.tsv."""
    from biolatent.anomaly.plots import scores_figure

    config, state, path, table, extra, samples = _scored(run_dir, data, with_labels=False, label_column=label_column)
    task = task_for(state["modality"])
    with staged_dir(out_dir) as tmp:
        _write_table(tmp / SCORES_FILE, table)
        write_figure(tmp / "scores.png", scores_figure(table, state))
        if isinstance(task, ImageTask):
            task.write_maps(tmp, extra["maps"], samples, config.data.model_copy(update={"path": path}))
            write_figure(tmp / "maps.png", task.figure(extra, table["id"].tolist(), None))
    say(f"{len(table)} {task.unit} of {path} scored; {int(table['flagged'].sum())} above the healthy-validation "
        f"threshold {state['threshold']:.4g}")
    return out_dir / SCORES_FILE


def evaluate_anomaly(run_dir: Path, data: str | Path | None, *, label_column: str | None = None,
                     say: Callable[[str], object] = print) -> Path:
    """Metrics against the labels of ``data`` (column ``label_column``, default the task's) -> RUN/anomaly_metrics.tsv
    (+ anomaly_curves.png, anomaly_scores.png; images and volumes: anomaly_maps.png, lesion_sizes.tsv)."""
    from biolatent.anomaly.metrics import metrics_table
    from biolatent.anomaly.plots import curves_figure, scores_figure

    _, state, path, table, extra, samples = _scored(run_dir, data, with_labels=True, label_column=label_column)
    task = task_for(state["modality"])
    scores, labels = table["score"].to_numpy(), table["label"].to_numpy().astype(bool)
    level, metrics = task.metrics(table, state)
    tables, sizes, figures = [], None, {}
    if isinstance(task, ImageTask):
        if extra["masks"] is not None:
            dense, sizes = _dense_metrics(task, state, extra["images"], extra["maps"], extra["masks"])
            tables.append(metrics_table(state["detector"], str(task.dense_level), dense))
            metrics.update({f"{task.dense_level}_{k}": v for k, v in dense.items()})
        elif "mask" in samples.obs.columns:
            say(f"note: {path} has a 'mask' column but the run reads no lesion masks: set data.lesion_column: mask "
                f"in its config for {task.dense_level}-level metrics")
        figures["anomaly_maps.png"] = task.figure(extra, table["id"].tolist(), labels)
    sample_keys = [k for k in metrics if not k.startswith(("pixel_", "voxel_"))]
    result = pd.concat([metrics_table(state["detector"], level, {k: metrics[k] for k in sample_keys}), *tables],
                       ignore_index=True)
    path_out = run_dir / METRICS_FILE
    _write_table(path_out, result)
    if sizes is not None:
        _write_table(run_dir / LESION_SIZES_FILE, sizes)
    figures["anomaly_curves.png"] = curves_figure(scores, labels, state["detector"])
    figures["anomaly_scores.png"] = scores_figure(table, state)
    for name, figure in figures.items():
        write_figure(run_dir / name, figure)
    update_json(run_dir / "metrics.json", "anomaly_evaluate", {"data": str(path), "level": level, **metrics})
    say(", ".join(f"{k} {v:.3f}" for k, v in metrics.items()) + f" ({level} level; dice_best uses the test labels)")
    return path_out


def postprocessed(maps: np.ndarray, threshold: float) -> np.ndarray:
    """The StRegA post-processing of 2D maps (N, H, W), or of 3D maps (N, D, H, W) slice by slice: bool masks.

    The maps are binarised at ``threshold``: the healthy-validation pixel / voxel threshold of the run, never
    Otsu's threshold of the pooled test maps (which would be chosen on the data being evaluated)."""
    from biolatent.anomaly.image.postprocess import postprocess

    return postprocess(maps.reshape(-1, *maps.shape[-2:]), threshold=float(threshold)).reshape(maps.shape)


def lesion_size_table(detector: str, maps: np.ndarray, masks: np.ndarray, threshold: float,
                      segmented: np.ndarray | None = None) -> pd.DataFrame:
    """Lesion-wise detection by size bin (``anomaly.lesion_sizes``) of the raw maps at the healthy-validation
    threshold and of the post-processed segmentation (``segmented``, by default ``postprocessed(maps,
    threshold)``); size bins ``DEFAULT_EDGES`` in pixels for 2D, ``VOLUME_EDGES`` in voxels for 3D."""
    from biolatent.anomaly.lesion_sizes import DEFAULT_EDGES, VOLUME_EDGES, lesion_table, size_breakdown

    segmented = postprocessed(maps, threshold) if segmented is None else segmented
    parts = []
    for name, values, cut in (("raw_val_threshold", maps, threshold),
                              ("postprocessed", segmented.astype(np.float64), 0.5)):
        part = size_breakdown(lesion_table(values, masks, cut), VOLUME_EDGES if maps.ndim == 4 else DEFAULT_EDGES)
        part.insert(0, "segmentation", name)
        part.insert(0, "detector", detector)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _dense_metrics(task: ImageTask, state: dict[str, Any], images: np.ndarray, maps: np.ndarray,
                   masks: np.ndarray) -> tuple[dict[str, float], pd.DataFrame | None]:
    """(metrics, lesion-size table or None without lesions) of pixel maps (2D) or voxel maps (3D; inside the
    task's region: the brain plus any lesion voxel); the post-processing is computed once for the Dice and the
    sizes."""
    from biolatent.anomaly.metrics import dense_metrics, dice

    level = str(task.dense_level)
    threshold = state[f"{level}_threshold"]
    segmented = postprocessed(maps, threshold)
    region = task.region(images, masks, state)
    if region is None:
        metrics = dense_metrics(maps, masks, threshold, level)
    else:
        metrics = dense_metrics(maps[region], masks[region], threshold, level)
    metrics["dice_postprocessed"] = dice(segmented, masks)
    sizes = lesion_size_table(state["detector"], maps, masks, threshold, segmented) if masks.any() else None
    return metrics, sizes


def fit_from_file(config_path: str | Path, run_dir: Path, *, overrides: list[str] | None = None, resume: bool = False,
                  say: Callable[[str], object] = print) -> Path:
    fit_anomaly(load_anomaly_config(config_path, overrides), run_dir, resume=resume, say=say)
    return run_dir
