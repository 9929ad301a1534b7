"""``biolatent anomaly fit | score | evaluate``: detectors fitted on healthy data, scored, evaluated honestly.

fit: the healthy data is split (series: its last ``validation.fraction``, contiguous; features: a seeded
random subset) into fitting and validation parts; the detector is fitted on the first, and the threshold is
the score exceeded by ``validation.target_fpr`` of the healthy validation points/samples (when there are too
few of them to resolve that rate, a warning says which rate the threshold gives; it is printed and kept in
``warnings``). A features table (``anomaly.tables``) fixes its feature columns at fit (all but id, label
column and ``data.drop_columns``; text columns and NaN/inf are errors) and scoring picks them by name. The run
directory holds config.yaml, provenance.json, detector.safetensors + detector.json (weights only), anomaly.json
(threshold, window statistics, feature columns) and metrics.json (section ``anomaly_fit``).

score: scores.tsv (series: position, value, score, flagged; features: id, score, flagged) and a plot.
evaluate: needs labels (series: a column; features: an obs/table column; 0/1 or True/False, named by ``--label``,
default ``data.label_column``) -> RUN/anomaly_metrics.tsv
(detector, level, metric, value), the ROC/PR figure, and (series) the UCR archive's "top hit": whether the
highest-scoring point lies in the labelled anomaly (+- one window), Wu & Keogh 2021; images and volumes with
lesion masks also get RUN/lesion_sizes.tsv: lesion-wise detection rate and recall by lesion size, of the raw
maps at the healthy-validation threshold and of the post-processed segmentation.

volume3d (NIfTI volume sets, ``biolatent.anomaly.volumes``) is detected slice-wise with the 2D image detectors,
the established practice for brain MRI (Baur et al. 2021, Medical Image Analysis 69:101952, "Autoencoders for
unsupervised anomaly segmentation in brain MR images: a comparative study"): fit trains the detector on the
axial slices that hold brain of the healthy fitting volumes; validation volumes are held out by subject (not
by slice) and set the sample threshold (volume score = top-fraction mean of the voxel map, slices grey-opened
as in 2D) and the voxel threshold (over the validation volumes' brain voxels) at the target false-positive
rate. score writes maps/<id>_map.nii.gz on each input's grid with its affine and maps.png; evaluate adds
level ``voxel`` rows (within the brain region, see ``brain_region``; ``dice_postprocessed`` applies the
StRegA chain slice-wise).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from biolatent import provenance
from biolatent.anomaly.config import AnomalyConfig, AnomalyData, load_anomaly_config
from biolatent.errors import DataError
from biolatent.rundir import atomic_path, read_json, update_json, write_json, write_text

STATE_FILE = "anomaly.json"
METRICS_FILE = "anomaly_metrics.tsv"
SCORES_FILE = "scores.tsv"
UNITS = {"series": "points", "features": "samples", "image2d": "images", "volume3d": "volumes"}
LESION_SIZES_FILE = "lesion_sizes.tsv"


def _dataset_path(name: str, part: str) -> Path:
    from biolatent.datasets import fetch, get_recipe

    recipe = get_recipe(name)
    if recipe.modality not in ("series", "features"):
        raise DataError(f"dataset {name!r} ({recipe.modality}) is not anomaly data")
    folder = fetch(name, progress=lambda _: None)
    return folder / recipe.data_config["path" if part == "healthy" else "test"]


def _features(path: Path, data: AnomalyData, label_column: str | None, columns: list[str] | None = None,
              ) -> tuple[list[str], np.ndarray, np.ndarray | None, list[str] | None]:
    """(ids, features, labels, feature columns) of an embeddings .h5ad (obsm[data.key]; columns None) or a table
    (``anomaly.tables``: the given feature ``columns``, or, when fitting, all but id, label and drop_columns)."""
    from biolatent.anomaly.metrics import binary_labels
    from biolatent.anomaly.tables import feature_columns, quoted, table_features
    from biolatent.io import read_table

    if path.suffix == ".h5ad":
        from biolatent.embed import read_embeddings

        adata = read_embeddings(path, key=data.key)
        ids, x, obs = [str(s) for s in adata.obs_names], np.asarray(adata.obsm[data.key], float), adata.obs
    else:
        obs = read_table(path)
        if columns is None:
            columns = feature_columns(obs, path, data.label_column, data.drop_columns)
        ids, x = [str(s) for s in obs.index], table_features(obs, path, columns)
    labels = None
    if label_column is not None:
        if label_column not in obs.columns:
            raise DataError(f"{path} has no label column {label_column!r} (columns: {quoted(obs.columns)})")
        labels = binary_labels(obs[label_column], label_column, str(path))
    return ids, x, labels, columns


def _series_scores(detector, values: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    from biolatent.anomaly.series import point_scores, sliding_windows, window_features

    size, stride = state["window"]["size"], state["window"]["stride"]
    windows = sliding_windows(values, size, stride)
    scores = detector.score(window_features(windows, state["mean"], state["scale"]))
    return point_scores(scores, values.size, size, stride)


def fit_anomaly(config: AnomalyConfig, run_dir: Path, *, say: Callable[[str], object] = print) -> dict[str, Any]:
    """Fit ``config.method`` on the healthy data; returns the state written to anomaly.json."""
    from biolatent.anomaly.detectors import build_for
    from biolatent.anomaly.metrics import achieved_fpr, resolution_warning, threshold_at_fpr
    from biolatent.anomaly.series import read_series, sliding_windows, window_features

    if (run_dir / STATE_FILE).exists():
        raise DataError(f"{run_dir} already holds a fitted detector: choose another --out")
    data = config.data
    path = data.path if data.path is not None else _dataset_path(str(data.dataset), "healthy")
    detector = build_for(data.modality, config.method.name, config.method.params())
    state: dict[str, Any] = {"modality": data.modality, "detector": config.method.name}
    if data.modality == "image2d":
        val_scores = _fit_images(detector, config, path, state, say)
    elif data.modality == "volume3d":
        val_scores = _fit_volumes(detector, config, path, state, say)
    elif data.modality == "series":
        values, labels = read_series(path, data.value_column,
                                     data.label_column if data.label_column in _columns(path) else None)
        if labels is not None and labels.any():
            raise DataError(f"the healthy series {path} holds {int(labels.sum())} points labelled anomalous: "
                            "fit on healthy data only")
        n_val = round(config.validation.fraction * values.size)
        fit_part, val_part = values[: values.size - n_val], values[values.size - n_val:]
        size, stride = config.window.size, config.window.stride
        if min(fit_part.size, val_part.size) < size:
            raise DataError(f"the healthy series ({values.size} points, {n_val} for validation) is too short for "
                            f"windows of {size}")
        mean, scale = float(fit_part.mean()), float(fit_part.std() or 1.0)
        state.update({"window": {"size": size, "stride": stride}, "mean": mean, "scale": scale})
        detector.fit(window_features(sliding_windows(fit_part, size, stride), mean, scale))
        val_scores = _series_scores(detector, val_part, state)
        say(f"fitted {config.method.name} on {fit_part.size} healthy points ({fit_part.size - size + 1} windows "
            f"of {size}); validation on {val_part.size} points")
    else:
        ids, x, labels, columns = _features(path, data,
                                            data.label_column if data.label_column in _columns(path) else None)
        if columns is not None:
            state["feature_columns"] = columns
        fit_idx, val_idx = _healthy_split(len(ids), labels, None, config, path, "samples", min_fit=2)
        detector.fit(x[fit_idx])
        val_scores = detector.score(x[val_idx])
        say(f"fitted {config.method.name} on {len(fit_idx)} healthy samples; validation on {len(val_idx)}")
    target = config.validation.target_fpr
    threshold = threshold_at_fpr(val_scores, target)
    achieved = achieved_fpr(val_scores, threshold)
    warning = resolution_warning(val_scores.size, target, achieved, UNITS[data.modality])
    state.update({"threshold": threshold, "target_fpr": target, "validation_fpr": achieved,
                  "validation_n": int(val_scores.size), "warnings": [warning] if warning else [],
                  "healthy_path": str(path)})

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    write_json(run_dir / "provenance.json", provenance.collect("anomaly fit", seed=config.seed))
    detector.save(run_dir)
    write_json(run_dir / STATE_FILE, state)
    update_json(run_dir / "metrics.json", "anomaly_fit", {k: v for k, v in state.items() if k != "healthy_path"})
    say(f"threshold {threshold:.4g} (healthy validation false-positive rate {state['validation_fpr']:.3f}, target "
        f"{config.validation.target_fpr})")
    if warning:
        say(f"warning: {warning}")
    return state


def _healthy_split(n: int, labels: np.ndarray | None, masks: np.ndarray | None, config: AnomalyConfig, path: Path,
                   what: str, *, min_fit: int) -> tuple[np.ndarray, np.ndarray]:
    """(fitting, validation) indices of a healthy set of ``n`` samples: a seeded permutation split by
    ``validation.fraction`` (at least one for validation); a set with lesion masks or anomaly labels, or too
    small to leave ``min_fit`` for fitting, is a one-line DataError."""
    if masks is not None and masks.any():
        n_masked = int(masks.reshape(len(masks), -1).any(axis=1).sum())
        raise DataError(f"the healthy set {path} has {n_masked} lesion masks that are not empty: fit on healthy "
                        f"{what} only")
    if labels is not None and labels.any():
        raise DataError(f"the healthy set {path} holds {int(labels.sum())} {what} labelled anomalous: fit on healthy "
                        "data only")
    order = np.random.default_rng(config.seed).permutation(n)
    n_val = max(1, round(config.validation.fraction * n))
    if n - n_val < min_fit:
        raise DataError(f"{n} healthy {what}: too few to fit and validate")
    return order[n_val:], order[:n_val]


def _fit_images(detector, config: AnomalyConfig, path: Path, state: dict[str, Any],
                say: Callable[[str], object]) -> np.ndarray:
    """Train on a seeded part of the healthy images; the rest sets the sample and pixel thresholds."""
    from biolatent.anomaly.image.detector import sample_scores
    from biolatent.anomaly.images import read_image_set
    from biolatent.anomaly.metrics import threshold_at_fpr

    data = config.data
    ids, images, labels, masks = read_image_set(path, data.image_size, label_column=data.label_column,
                                                mask_column=data.mask_column)
    fit_idx, val_idx = _healthy_split(len(ids), labels, masks, config, path, "images", min_fit=2)
    train = config.train
    say(f"training {config.method.name} on {len(fit_idx)} healthy images ({train.epochs} epochs)")
    detector.fit(images[fit_idx], epochs=train.epochs, batch_size=train.batch_size, lr=train.lr,
                 seed=config.seed, accelerator="cpu")
    val_maps = detector.score_maps(images[val_idx])
    state.update({"image_size": data.image_size,
                  "pixel_threshold": threshold_at_fpr(val_maps.ravel(), config.validation.target_fpr)})
    return sample_scores(val_maps, detector.top_fraction, detector.score_opening)


def _fit_volumes(detector, config: AnomalyConfig, path: Path, state: dict[str, Any],
                 say: Callable[[str], object]) -> np.ndarray:
    """Train on the brain slices of a seeded part of the healthy volumes; held-out volumes set both thresholds."""
    from biolatent.anomaly.metrics import threshold_at_fpr
    from biolatent.anomaly.volumes import brain_region, brain_slices, read_volume_set, volume_maps, volume_scores

    data = config.data
    ids, volumes, labels, masks = read_volume_set(path, data.image_size, label_column=data.label_column,
                                                  mask_column=data.mask_column)
    fit_idx, val_idx = _healthy_split(len(ids), labels, masks, config, path, "volumes", min_fit=1)
    slices = brain_slices(volumes[fit_idx])
    train = config.train
    say(f"training {config.method.name} on {len(slices)} axial brain slices of {len(fit_idx)} healthy volumes "
        f"({train.epochs} epochs); {len(val_idx)} volumes held out by subject for the thresholds")
    detector.fit(slices, epochs=train.epochs, batch_size=train.batch_size, lr=train.lr, seed=config.seed,
                 accelerator="cpu")
    held_out = volumes[val_idx]
    erosion = data.brain_erosion
    val_maps = volume_maps(detector, held_out, erosion)
    state.update({"image_size": data.image_size, "fit_volumes": len(fit_idx), "validation_volumes": len(val_idx),
                  "brain_erosion": erosion,
                  "voxel_threshold": threshold_at_fpr(val_maps[brain_region(held_out, erosion)],
                                                      config.validation.target_fpr)})
    return volume_scores(val_maps, detector.top_fraction, detector.score_opening)


def _columns(path: Path) -> list[str]:
    if path.suffix == ".h5ad" or not path.is_file():
        return [] if not (path / "meta.tsv").is_file() else _columns(path / "meta.tsv")
    return list(pd.read_csv(path, sep="\t" if path.suffix.lower() in (".tsv", ".txt") else ",", nrows=0).columns)


def _load(run_dir: Path) -> tuple[AnomalyConfig, Any, dict[str, Any]]:
    from biolatent.anomaly.detectors import load_detector

    if not (run_dir / STATE_FILE).is_file():
        raise DataError(f"{run_dir} holds no fitted detector: run `biolatent anomaly fit CONFIG --out {run_dir}`")
    state = read_json(run_dir / STATE_FILE)
    if state["modality"] in ("image2d", "volume3d"):
        from biolatent.anomaly.image.detector import ImageReconstructionDetector

        detector = ImageReconstructionDetector.load(run_dir)
    else:
        detector = load_detector(run_dir)
    return load_anomaly_config(run_dir / "config.yaml"), detector, state


def _data_path(config: AnomalyConfig, data: str | Path | None) -> Path:
    if data is None:
        if config.data.dataset is None:
            raise DataError("give --data: the run was fitted on a path, not a registered dataset with a test part")
        return _dataset_path(config.data.dataset, "test")
    text = str(data)
    from biolatent.datasets import DATASETS

    return _dataset_path(text, "test") if text in DATASETS else Path(text)


def _scored(run_dir: Path, data: str | Path | None, with_labels: bool, label_column: str | None = None) -> tuple:
    """Score ``data``; labels come from ``label_column`` (default: the config's ``data.label_column``), read when
    evaluating, when named explicitly, or when the data holds that column."""
    from biolatent.anomaly.series import read_series
    from biolatent.anomaly.tables import quoted

    config, detector, state = _load(run_dir)
    path = _data_path(config, data)
    name = label_column or config.data.label_column
    columns = _columns(path)
    if label_column is not None and path.suffix != ".h5ad" and label_column not in columns:
        raise DataError(f"{path} has no label column {label_column!r} (columns: {quoted(columns)})")
    label = name if (with_labels or label_column is not None or name in columns) else None
    extra: dict[str, Any] = {}
    if state["modality"] == "image2d":
        from biolatent.anomaly.images import read_image_set

        ids, images, labels, masks = read_image_set(path, state["image_size"], label_column=name,
                                                    mask_column=config.data.mask_column)
        if with_labels and labels is None:
            raise DataError(f"{path} has no labels: evaluation needs meta.tsv with {name!r} or "
                            f"{config.data.mask_column!r} columns")
        from biolatent.anomaly.image.detector import sample_scores

        maps = detector.score_maps(images)
        table = pd.DataFrame({"id": ids, "score": sample_scores(maps, detector.top_fraction, detector.score_opening)})
        extra = {"images": images, "maps": maps, "masks": masks}
    elif state["modality"] == "volume3d":
        from biolatent.anomaly.volumes import read_volume_set, volume_maps, volume_scores

        ids, volumes, labels, masks = read_volume_set(path, state["image_size"],
                                                      label_column=name,
                                                      mask_column=config.data.mask_column)
        if with_labels and labels is None:
            raise DataError(f"{path} has no labels: evaluation needs meta.tsv with {name!r} or "
                            f"{config.data.mask_column!r} columns")
        maps = volume_maps(detector, volumes, state.get("brain_erosion", 0))
        table = pd.DataFrame({"id": ids, "score": volume_scores(maps, detector.top_fraction, detector.score_opening)})
        extra = {"images": volumes, "maps": maps, "masks": masks}
    elif state["modality"] == "series":
        values, labels = read_series(path, config.data.value_column, label)
        table = pd.DataFrame({"position": np.arange(values.size), "value": values,
                              "score": _series_scores(detector, values, state)})
    else:
        ids, x, labels, _ = _features(path, config.data, label, state.get("feature_columns"))
        table = pd.DataFrame({"id": ids, "score": detector.score(x)})
    table["flagged"] = (table["score"] > state["threshold"]).astype(int)
    if labels is not None:
        table["label"] = labels.astype(int)
    return config, state, path, table, extra


def score_anomaly(run_dir: Path, data: str | Path | None, out_dir: Path, *, label_column: str | None = None,
                  say: Callable[[str], object] = print) -> Path:
    """Score ``data`` with the fitted detector: OUT/scores.tsv (with a ``label`` column when the data holds
    ``label_column``, default the config's) and OUT/scores.png; returns scores.tsv."""
    from biolatent.anomaly.plots import scores_figure

    _, state, path, table, extra = _scored(run_dir, data, with_labels=False, label_column=label_column)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores_path = out_dir / SCORES_FILE
    with atomic_path(scores_path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    scores_figure(table, state).savefig(out_dir / "scores.png", dpi=110)
    if state["modality"] == "volume3d":
        from biolatent.anomaly.volumes import read_volume_headers, write_volume_map

        for header, volume_map in zip(read_volume_headers(path), extra["maps"], strict=True):
            write_volume_map(out_dir / "maps" / f"{header.id}_map.nii.gz", volume_map, header)
    elif extra:
        np.save(out_dir / "maps.npy", extra["maps"])
    if extra:
        _maps_figure(state, extra, table["id"].tolist(), None).savefig(out_dir / "maps.png", dpi=110)
    say(f"{len(table)} {'points' if state['modality'] == 'series' else 'samples'} of {path} scored; "
        f"{int(table['flagged'].sum())} above the healthy-validation threshold {state['threshold']:.4g}")
    return scores_path


def evaluate_anomaly(run_dir: Path, data: str | Path | None, *, label_column: str | None = None,
                     say: Callable[[str], object] = print) -> Path:
    """Metrics against the labels of ``data`` (column ``label_column``, default the config's ``data.label_column``)
    -> RUN/anomaly_metrics.tsv (+ anomaly_curves.png)."""
    from biolatent.anomaly.metrics import dense_metrics, metrics_table, sample_metrics
    from biolatent.anomaly.plots import curves_figure, scores_figure

    _config, state, path, table, extra = _scored(run_dir, data, with_labels=True, label_column=label_column)
    scores, labels = table["score"].to_numpy(), table["label"].to_numpy().astype(bool)
    tables = []
    if state["modality"] in ("image2d", "volume3d"):
        level, metrics = "sample", sample_metrics(scores, labels, state["threshold"])
        if extra["masks"] is not None:
            dense_level, dense, sizes = _dense_metrics(state, extra["images"], extra["maps"], extra["masks"])
            tables.append(metrics_table(state["detector"], dense_level, dense))
            metrics.update({f"{dense_level}_{k}": v for k, v in dense.items()})
            if sizes is not None:
                with atomic_path(run_dir / LESION_SIZES_FILE) as tmp:
                    sizes.to_csv(tmp, sep="\t", index=False, float_format="%.6g", na_rep="NA")
        _maps_figure(state, extra, table["id"].tolist(), labels).savefig(run_dir / "anomaly_maps.png", dpi=110)
    elif state["modality"] == "series":
        level, metrics = "point", dense_metrics(scores, labels, state["threshold"], "point")
        region = np.flatnonzero(labels)
        margin = state["window"]["size"]
        top = int(np.argmax(scores))
        metrics["top_hit"] = float(region.min() - margin <= top <= region.max() + margin)
    else:
        level, metrics = "sample", sample_metrics(scores, labels, state["threshold"])
    sample_keys = [k for k in metrics if not k.startswith(("pixel_", "voxel_"))]
    result = pd.concat([metrics_table(state["detector"], level, {k: metrics[k] for k in sample_keys}), *tables],
                       ignore_index=True)
    path_out = run_dir / METRICS_FILE
    with atomic_path(path_out) as tmp:
        result.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    curves_figure(scores, labels, state["detector"]).savefig(run_dir / "anomaly_curves.png", dpi=110)
    scores_figure(table, state).savefig(run_dir / "anomaly_scores.png", dpi=110)
    update_json(run_dir / "metrics.json", "anomaly_evaluate", {"data": str(path), "level": level, **metrics})
    say(", ".join(f"{k} {v:.3f}" for k, v in metrics.items()) + f" ({level} level; dice_best uses the test labels)")
    return path_out


def postprocessed(maps: np.ndarray) -> np.ndarray:
    """The StRegA post-processing of 2D maps (N, H, W), or of 3D maps (N, D, H, W) slice by slice: bool masks."""
    from biolatent.anomaly.image.postprocess import postprocess

    return postprocess(maps.reshape(-1, *maps.shape[-2:])).reshape(maps.shape)


def lesion_size_table(detector: str, maps: np.ndarray, masks: np.ndarray, threshold: float,
                      segmented: np.ndarray | None = None) -> pd.DataFrame:
    """Lesion-wise detection by size bin (``anomaly.lesion_sizes``) of the raw maps at the healthy-validation
    threshold and of the post-processed segmentation (``segmented``, by default ``postprocessed(maps)``); size
    bins ``DEFAULT_EDGES`` in pixels for 2D, ``VOLUME_EDGES`` in voxels for 3D."""
    from biolatent.anomaly.lesion_sizes import DEFAULT_EDGES, VOLUME_EDGES, lesion_table, size_breakdown

    segmented = postprocessed(maps) if segmented is None else segmented
    parts = []
    for name, values, cut in (("raw_val_threshold", maps, threshold),
                              ("postprocessed", segmented.astype(np.float64), 0.5)):
        part = size_breakdown(lesion_table(values, masks, cut), VOLUME_EDGES if maps.ndim == 4 else DEFAULT_EDGES)
        part.insert(0, "segmentation", name)
        part.insert(0, "detector", detector)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _dense_metrics(state: dict[str, Any], images: np.ndarray, maps: np.ndarray,
                   masks: np.ndarray) -> tuple[str, dict[str, float], pd.DataFrame | None]:
    """(level, metrics, lesion-size table or None without lesions) of pixel maps (2D) or voxel maps (3D; inside
    the brain region plus any lesion voxel); the post-processing is computed once for the Dice and the sizes."""
    from biolatent.anomaly.metrics import dense_metrics, dice

    segmented = postprocessed(maps)
    if maps.ndim == 4:
        from biolatent.anomaly.volumes import brain_region

        level, threshold = "voxel", state["voxel_threshold"]
        region = brain_region(images, state.get("brain_erosion", 0)) | masks
        metrics = dense_metrics(maps[region], masks[region], threshold, level)
    else:
        level, threshold = "pixel", state["pixel_threshold"]
        metrics = dense_metrics(maps, masks, threshold, level)
    metrics["dice_postprocessed"] = dice(segmented, masks)
    sizes = lesion_size_table(state["detector"], maps, masks, threshold, segmented) if masks.any() else None
    return level, metrics, sizes


def _maps_figure(state: dict[str, Any], extra: dict[str, Any], ids: list[str], labels: np.ndarray | None):
    """Image / anomaly map / ground truth grid: 2D images, or the middle slices of volumes."""
    if state["modality"] == "volume3d":
        from biolatent.anomaly.volumes import volume_map_figure

        return volume_map_figure(extra["images"], extra["maps"], extra["masks"], ids, labels=labels)
    from biolatent.anomaly.plots import map_grid_figure

    return map_grid_figure(extra["images"], extra["maps"], extra["masks"], ids, labels=labels)


def fit_from_file(config_path: str | Path, run_dir: Path, *, say: Callable[[str], object] = print) -> Path:
    fit_anomaly(load_anomaly_config(config_path), run_dir, say=say)
    return run_dir
