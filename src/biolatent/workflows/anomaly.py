"""``biolatent anomaly fit | score | evaluate``: detectors fitted on healthy data, scored, evaluated honestly.

fit: the healthy data is split (series: its last ``validation.fraction``, contiguous; features: a seeded
random subset) into fitting and validation parts; the detector is fitted on the first, and the threshold is
the score exceeded by ``validation.target_fpr`` of the healthy validation points/samples. The run directory
holds config.yaml, provenance.json, detector.safetensors + detector.json (weights only), anomaly.json
(threshold, window statistics) and metrics.json (section ``anomaly_fit``).

score: scores.tsv (series: position, value, score, flagged; features: id, score, flagged) and a plot.
evaluate: needs labels (series: a 0/1 column; features: a 0/1 obs/table column) -> RUN/anomaly_metrics.tsv
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
from biolatent.anomaly.config import AnomalyConfig, load_anomaly_config
from biolatent.errors import DataError
from biolatent.rundir import atomic_path, read_json, update_json, write_json, write_text

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


def _features(path: Path, key: str, label_column: str | None) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(ids, features, labels) of an embeddings .h5ad (obsm[key]) or a table (id + numeric columns)."""
    from biolatent.io import read_table

    if path.suffix == ".h5ad":
        from biolatent.embed import read_embeddings

        adata = read_embeddings(path, key=key)
        ids, x, obs = [str(s) for s in adata.obs_names], np.asarray(adata.obsm[key], float), adata.obs
    else:
        table = read_table(path)
        obs = table
        numeric = table.drop(columns=[c for c in (label_column,) if c in table.columns]).select_dtypes("number")
        ids, x = [str(s) for s in table.index], numeric.to_numpy(float)
    labels = None
    if label_column is not None:
        if label_column not in obs.columns:
            raise DataError(f"{path} has no label column {label_column!r}")
        labels = pd.to_numeric(obs[label_column], errors="coerce").to_numpy()
        if np.isnan(labels).any() or not np.isin(labels, (0, 1)).all():
            raise DataError(f"label column {label_column!r} of {path} must hold 0/1 values")
        labels = labels.astype(bool)
    return ids, x, labels


def _series_scores(detector, values: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    from biolatent.anomaly.series import point_scores, sliding_windows, window_features

    size, stride = state["window"]["size"], state["window"]["stride"]
    windows = sliding_windows(values, size, stride)
    scores = detector.score(window_features(windows, state["mean"], state["scale"]))
    return point_scores(scores, values.size, size, stride)


def fit_anomaly(config: AnomalyConfig, run_dir: Path, *, say: Callable[[str], object] = print) -> dict[str, Any]:
    """Fit ``config.method`` on the healthy data; returns the state written to anomaly.json."""
    from biolatent.anomaly.detectors import build_for
    from biolatent.anomaly.metrics import threshold_at_fpr
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
        ids, x, labels = _features(path, data.key, data.label_column if data.label_column in _columns(path) else None)
        if labels is not None and labels.any():
            raise DataError(f"the healthy set {path} holds {int(labels.sum())} samples labelled anomalous: "
                            "fit on healthy data only")
        order = np.random.default_rng(config.seed).permutation(len(ids))
        n_val = max(1, round(config.validation.fraction * len(ids)))
        if len(ids) - n_val < 2:
            raise DataError(f"{len(ids)} healthy samples: too few to fit and validate")
        detector.fit(x[order[n_val:]])
        val_scores = detector.score(x[order[:n_val]])
        say(f"fitted {config.method.name} on {len(ids) - n_val} healthy samples; validation on {n_val}")
    threshold = threshold_at_fpr(val_scores, config.validation.target_fpr)
    state.update({"threshold": threshold, "target_fpr": config.validation.target_fpr,
                  "validation_fpr": float(np.mean(val_scores > threshold)), "healthy_path": str(path)})

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    write_json(run_dir / "provenance.json", provenance.collect("anomaly fit", seed=config.seed))
    detector.save(run_dir)
    write_json(run_dir / STATE_FILE, state)
    update_json(run_dir / "metrics.json", "anomaly_fit", {k: v for k, v in state.items() if k != "healthy_path"})
    say(f"threshold {threshold:.4g} (healthy validation false-positive rate {state['validation_fpr']:.3f}, target "
        f"{config.validation.target_fpr})")
    return state


def _fit_images(detector, config: AnomalyConfig, path: Path, state: dict[str, Any],
                say: Callable[[str], object]) -> np.ndarray:
    """Train on a seeded part of the healthy images; the rest sets the sample and pixel thresholds."""
    from biolatent.anomaly.images import read_image_set
    from biolatent.anomaly.metrics import threshold_at_fpr

    data = config.data
    ids, images, labels, masks = read_image_set(path, data.image_size, label_column=data.label_column,
                                                mask_column=data.mask_column)
    if masks is not None and masks.any():
        raise DataError(f"the healthy set {path} has {int(masks.any(axis=(1, 2)).sum())} lesion masks that are not "
                        "empty: fit on healthy images only")
    if labels is not None and labels.any():
        raise DataError(f"the healthy set {path} holds {int(labels.sum())} images labelled anomalous")
    order = np.random.default_rng(config.seed).permutation(len(ids))
    n_val = max(1, round(config.validation.fraction * len(ids)))
    if len(ids) - n_val < 2:
        raise DataError(f"{len(ids)} healthy images: too few to fit and validate")
    train = config.train
    say(f"training {config.method.name} on {len(ids) - n_val} healthy images ({train.epochs} epochs)")
    detector.fit(images[order[n_val:]], epochs=train.epochs, batch_size=train.batch_size, lr=train.lr,
                 seed=config.seed, accelerator="cpu")
    val_maps = detector.score_maps(images[order[:n_val]])
    state.update({"image_size": data.image_size,
                  "pixel_threshold": threshold_at_fpr(val_maps.ravel(), config.validation.target_fpr)})
    return detector.score(images[order[:n_val]])


def _fit_volumes(detector, config: AnomalyConfig, path: Path, state: dict[str, Any],
                 say: Callable[[str], object]) -> np.ndarray:
    """Train on the brain slices of a seeded part of the healthy volumes; held-out volumes set both thresholds."""
    from biolatent.anomaly.metrics import threshold_at_fpr
    from biolatent.anomaly.volumes import brain_region, brain_slices, read_volume_set, volume_maps, volume_scores

    data = config.data
    ids, volumes, labels, masks = read_volume_set(path, data.image_size, label_column=data.label_column,
                                                  mask_column=data.mask_column)
    if masks is not None and masks.any():
        raise DataError(f"the healthy set {path} has {int(masks.any(axis=(1, 2, 3)).sum())} lesion masks that are "
                        "not empty: fit on healthy volumes only")
    if labels is not None and labels.any():
        raise DataError(f"the healthy set {path} holds {int(labels.sum())} volumes labelled anomalous")
    order = np.random.default_rng(config.seed).permutation(len(ids))
    n_val = max(1, round(config.validation.fraction * len(ids)))
    if len(ids) - n_val < 1:
        raise DataError(f"{len(ids)} healthy volumes: too few to fit and validate (held out by subject)")
    slices = brain_slices(volumes[order[n_val:]])
    train = config.train
    say(f"training {config.method.name} on {len(slices)} axial brain slices of {len(ids) - n_val} healthy volumes "
        f"({train.epochs} epochs); {n_val} volumes held out for the thresholds")
    detector.fit(slices, epochs=train.epochs, batch_size=train.batch_size, lr=train.lr, seed=config.seed,
                 accelerator="cpu")
    held_out = volumes[order[:n_val]]
    erosion = data.brain_erosion
    val_maps = volume_maps(detector, held_out, erosion)
    state.update({"image_size": data.image_size, "fit_volumes": len(ids) - n_val, "validation_volumes": n_val,
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


def _scored(run_dir: Path, data: str | Path | None, with_labels: bool) -> tuple:
    from biolatent.anomaly.series import read_series

    config, detector, state = _load(run_dir)
    path = _data_path(config, data)
    label = config.data.label_column if (with_labels or config.data.label_column in _columns(path)) else None
    extra: dict[str, Any] = {}
    if state["modality"] == "image2d":
        from biolatent.anomaly.images import read_image_set

        ids, images, labels, masks = read_image_set(path, state["image_size"], label_column=config.data.label_column,
                                                    mask_column=config.data.mask_column)
        if with_labels and labels is None:
            raise DataError(f"{path} has no labels: evaluation needs meta.tsv with {config.data.label_column!r} or "
                            f"{config.data.mask_column!r} columns")
        from biolatent.anomaly.image.detector import sample_scores

        maps = detector.score_maps(images)
        table = pd.DataFrame({"id": ids, "score": sample_scores(maps, detector.top_fraction, detector.score_opening)})
        extra = {"images": images, "maps": maps, "masks": masks}
    elif state["modality"] == "volume3d":
        from biolatent.anomaly.volumes import read_volume_set, volume_maps, volume_scores

        ids, volumes, labels, masks = read_volume_set(path, state["image_size"],
                                                      label_column=config.data.label_column,
                                                      mask_column=config.data.mask_column)
        if with_labels and labels is None:
            raise DataError(f"{path} has no labels: evaluation needs meta.tsv with {config.data.label_column!r} or "
                            f"{config.data.mask_column!r} columns")
        maps = volume_maps(detector, volumes, state.get("brain_erosion", 0))
        table = pd.DataFrame({"id": ids, "score": volume_scores(maps, detector.top_fraction, detector.score_opening)})
        extra = {"images": volumes, "maps": maps, "masks": masks}
    elif state["modality"] == "series":
        values, labels = read_series(path, config.data.value_column, label)
        table = pd.DataFrame({"position": np.arange(values.size), "value": values,
                              "score": _series_scores(detector, values, state)})
    else:
        ids, x, labels = _features(path, config.data.key, label)
        table = pd.DataFrame({"id": ids, "score": detector.score(x)})
    table["flagged"] = (table["score"] > state["threshold"]).astype(int)
    if labels is not None:
        table["label"] = labels.astype(int)
    return config, state, path, table, extra


def score_anomaly(run_dir: Path, data: str | Path | None, out_dir: Path, *,
                  say: Callable[[str], object] = print) -> Path:
    """Score ``data`` with the fitted detector: OUT/scores.tsv and OUT/scores.png; returns scores.tsv."""
    from biolatent.anomaly.plots import scores_figure

    _, state, path, table, extra = _scored(run_dir, data, with_labels=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores_path = out_dir / SCORES_FILE
    with atomic_path(scores_path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    scores_figure(table, state).savefig(out_dir / "scores.png", dpi=110)
    if state["modality"] == "volume3d":
        from biolatent.anomaly.volumes import read_volume_headers, volume_map_figure, write_volume_map

        for header, volume_map in zip(read_volume_headers(path), extra["maps"], strict=True):
            write_volume_map(out_dir / "maps" / f"{header.id}_map.nii.gz", volume_map, header)
        volume_map_figure(extra["images"], extra["maps"], extra["masks"], table["id"].tolist()).savefig(
            out_dir / "maps.png", dpi=110)
    elif extra:
        from biolatent.anomaly.plots import map_grid_figure

        np.save(out_dir / "maps.npy", extra["maps"])
        map_grid_figure(extra["images"], extra["maps"], extra["masks"], table["id"].tolist()).savefig(
            out_dir / "maps.png", dpi=110)
    say(f"{len(table)} {'points' if state['modality'] == 'series' else 'samples'} of {path} scored; "
        f"{int(table['flagged'].sum())} above the healthy-validation threshold {state['threshold']:.4g}")
    return scores_path


def evaluate_anomaly(run_dir: Path, data: str | Path | None, *, say: Callable[[str], object] = print) -> Path:
    """Metrics against the labels of ``data`` -> RUN/anomaly_metrics.tsv (+ anomaly_curves.png)."""
    from biolatent.anomaly.metrics import dense_metrics, metrics_table
    from biolatent.anomaly.plots import curves_figure, scores_figure

    _config, state, path, table, extra = _scored(run_dir, data, with_labels=True)
    scores, labels = table["score"].to_numpy(), table["label"].to_numpy().astype(bool)
    tables = []
    if state["modality"] == "image2d":
        level, metrics = "sample", _sample_metrics(scores, labels, state["threshold"])
        if extra["masks"] is not None:
            from biolatent.anomaly.image.postprocess import postprocess
            from biolatent.anomaly.metrics import dice

            pixel = dense_metrics(extra["maps"], extra["masks"], state["pixel_threshold"], "pixel")
            pixel["dice_postprocessed"] = dice(postprocess(extra["maps"]), extra["masks"])
            tables.append(metrics_table(state["detector"], "pixel", pixel))
            metrics.update({f"pixel_{k}": v for k, v in pixel.items()})
            from biolatent.anomaly.plots import map_grid_figure

            map_grid_figure(extra["images"], extra["maps"], extra["masks"], table["id"].tolist(),
                            labels=labels).savefig(run_dir / "anomaly_maps.png", dpi=110)
    elif state["modality"] == "volume3d":
        level, metrics = "sample", _sample_metrics(scores, labels, state["threshold"])
        if extra["masks"] is not None:
            voxel = _voxel_metrics(extra["images"], extra["maps"], extra["masks"], state["voxel_threshold"],
                                   state.get("brain_erosion", 0))
            tables.append(metrics_table(state["detector"], "voxel", voxel))
            metrics.update({f"voxel_{k}": v for k, v in voxel.items()})
        from biolatent.anomaly.volumes import volume_map_figure

        volume_map_figure(extra["images"], extra["maps"], extra["masks"], table["id"].tolist(),
                          labels=labels).savefig(run_dir / "anomaly_maps.png", dpi=110)
    elif state["modality"] == "series":
        level, metrics = "point", dense_metrics(scores, labels, state["threshold"], "point")
        region = np.flatnonzero(labels)
        margin = state["window"]["size"]
        top = int(np.argmax(scores))
        metrics["top_hit"] = float(region.min() - margin <= top <= region.max() + margin)
    else:
        level, metrics = "sample", _sample_metrics(scores, labels, state["threshold"])
    if state["modality"] in ("image2d", "volume3d") and extra["masks"] is not None and extra["masks"].any():
        threshold = state["pixel_threshold" if state["modality"] == "image2d" else "voxel_threshold"]
        sizes = lesion_size_table(state["detector"], extra["maps"], extra["masks"], threshold)
        with atomic_path(run_dir / LESION_SIZES_FILE) as tmp:
            sizes.to_csv(tmp, sep="\t", index=False, float_format="%.6g", na_rep="NA")
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


def lesion_size_table(detector: str, maps: np.ndarray, masks: np.ndarray, threshold: float) -> pd.DataFrame:
    """Lesion-wise detection by size bin (``anomaly.lesion_sizes``) of the raw maps at the healthy-validation
    threshold and of the StRegA-post-processed segmentation (2D maps, or 3D maps slice by slice); size bins
    ``DEFAULT_EDGES`` in pixels for 2D, ``VOLUME_EDGES`` in voxels for 3D."""
    from biolatent.anomaly.image.postprocess import postprocess
    from biolatent.anomaly.lesion_sizes import DEFAULT_EDGES, VOLUME_EDGES, lesion_table, size_breakdown

    flat = maps.reshape(-1, *maps.shape[-2:])
    segmented = postprocess(flat).reshape(maps.shape).astype(np.float64)
    parts = []
    for name, values, cut in (("raw_val_threshold", maps, threshold), ("postprocessed", segmented, 0.5)):
        part = size_breakdown(lesion_table(values, masks, cut), VOLUME_EDGES if maps.ndim == 4 else DEFAULT_EDGES)
        part.insert(0, "segmentation", name)
        part.insert(0, "detector", detector)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _voxel_metrics(volumes: np.ndarray, maps: np.ndarray, masks: np.ndarray, threshold: float,
                   erosion: int = 0) -> dict[str, float]:
    """Voxel AUROC / AP / Dice inside the brain region (plus any lesion voxel); StRegA post-processing slice-wise."""
    from biolatent.anomaly.image.postprocess import postprocess
    from biolatent.anomaly.metrics import dense_metrics, dice
    from biolatent.anomaly.volumes import brain_region

    region = brain_region(volumes, erosion) | masks
    voxel = dense_metrics(maps[region], masks[region], threshold, "voxel")
    n, d, h, w = maps.shape
    segmented = postprocess(maps.reshape(n * d, h, w)).reshape(maps.shape)
    voxel["dice_postprocessed"] = dice(segmented, masks)
    return voxel


def _sample_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    from biolatent.anomaly.metrics import ranking_metrics

    metrics = ranking_metrics(scores, labels, "sample")
    flagged = scores > threshold
    metrics["dice_val_threshold"] = float(2 * np.sum(flagged & labels) / max(1, flagged.sum() + labels.sum()))
    metrics["fpr_val_threshold"] = float(np.mean(flagged[~labels]))
    return metrics


def fit_from_file(config_path: str | Path, run_dir: Path, *, say: Callable[[str], object] = print) -> Path:
    fit_anomaly(load_anomaly_config(config_path), run_dir, say=say)
    return run_dir
