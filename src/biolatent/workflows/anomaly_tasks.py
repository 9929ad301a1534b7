"""What ``biolatent anomaly`` does per data modality, one class each in the explicit registry ``TASKS``: how a
detector is fitted on a healthy ``SampleSet`` (``data.loaders``) and validated, how data are scored, which dense
metrics, maps and figures they have. The workflow (``workflows.anomaly``) only looks the modality up here.

series: the healthy series is split into its first part (fitting) and its last ``validation.fraction``
(contiguous); windows z-scored with the fitting part's statistics; point scores are the maximum over the windows
that contain the point. features: a seeded random subset validates. image2d: the detector trains on a seeded part
of the healthy images; the rest sets the sample and pixel thresholds. volume (``maps.volume_mode``): natively in
3D by default (the image detector built with ``spatial_dims=3`` trains on and scores the whole healthy fitting
volumes), or slice-wise with the 2D image detectors (Baur et al. 2021, Medical Image Analysis 69:101952: it trains
on the axial slices that hold brain of the healthy fitting volumes); in both modes validation volumes are held out
by subject and set the sample threshold (volume score = top-fraction mean of the voxel map, slices grey-opened as
in 2D) and the voxel threshold (over the validation volumes' brain voxels, ``anomaly.volumes.brain_region``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from biolatent.config import AnomalyRunConfig
from biolatent.data.samples import SampleSet
from biolatent.errors import DataError

Say = Callable[[str], object]
IMAGE_LABEL = "is_anomaly"  # the meta.tsv label column of image and volume sets


def labels_of(samples: SampleSet, column: str | None, where: str) -> np.ndarray | None:
    """bool labels of ``obs[column]`` (None when ``column`` is None)."""
    from biolatent.anomaly.metrics import binary_labels

    if column is None:
        return None
    return binary_labels(samples.obs[column], column, where)


def healthy_split(n: int, labels: np.ndarray | None, lesions: np.ndarray | None, config: AnomalyRunConfig,
                  where: str, what: str, *, min_fit: int) -> tuple[np.ndarray, np.ndarray]:
    """(fitting, validation) indices of a healthy set of ``n`` samples: a seeded (``train.seed``) permutation split by
    ``validation.fraction`` (at least one for validation); a set with lesion masks or anomaly labels, or too small
    to leave ``min_fit`` for fitting, is a one-line DataError."""
    if lesions is not None and lesions.any():
        n_masked = int(lesions.reshape(len(lesions), -1).any(axis=1).sum())
        raise DataError(f"the healthy set {where} has {n_masked} lesion masks that are not empty: fit on healthy "
                        f"{what} only")
    if labels is not None and labels.any():
        raise DataError(f"the healthy set {where} holds {int(labels.sum())} {what} labelled anomalous: fit on "
                        "healthy data only")
    order = np.random.default_rng(config.train.seed).permutation(n)
    n_val = max(1, round(config.validation.fraction * n))
    if n - n_val < min_fit:
        raise DataError(f"{n} healthy {what}: too few to fit and validate")
    return order[n_val:], order[:n_val]


class Task:
    """One modality's fit / score / metrics. ``unit``: what a score is given to (for messages and warnings)."""

    unit: ClassVar[str] = "samples"
    dense_level: ClassVar[str | None] = None  # pixel / voxel maps

    def load_detector(self, run_dir: Path) -> Any:
        from biolatent.anomaly.detectors import load_detector

        return load_detector(run_dir)

    def data_update(self, state: dict[str, Any]) -> dict[str, Any]:
        """Keys of the data section fixed at fit that scoring data must share (e.g. the feature columns)."""
        return {}

    def label_column(self, config: AnomalyRunConfig) -> str:
        return str(getattr(config.data, "label_column", IMAGE_LABEL))

    def fit(self, detector: Any, samples: SampleSet, config: AnomalyRunConfig, state: dict[str, Any], where: str,
            say: Say) -> np.ndarray:
        """Fit ``detector`` on the healthy ``samples``; update ``state``; return the validation scores."""
        raise NotImplementedError

    def score(self, detector: Any, samples: SampleSet, state: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
        """(table with the scores, extra: images / maps / lesion masks of data with space)."""
        raise NotImplementedError

    def metrics(self, table: pd.DataFrame, state: dict[str, Any]) -> tuple[str, dict[str, float]]:
        from biolatent.anomaly.metrics import sample_metrics

        return "sample", sample_metrics(table["score"].to_numpy(), table["label"].to_numpy().astype(bool),
                                        state["threshold"])


def one_series(samples: Any, where: str) -> np.ndarray:
    """The values (T,) of a one-series table (``data.layout: points``); DataError for one sample per series."""
    if samples.x.ndim != 2:
        raise DataError(f"{where}: anomaly detection on a series scores the time points of one series (a table, "
                        "data.layout: points); this data holds one sample per series")
    return samples.x[:, 0].numpy()


class SeriesTask(Task):
    unit = "points"

    def fit(self, detector, samples, config, state, where, say):
        from biolatent.anomaly.series import sliding_windows, window_features

        values = one_series(samples, where)
        column = config.data.label_column  # type: ignore[union-attr]
        labels = labels_of(samples, column if column in samples.obs.columns else None, f"series table {where}")
        if labels is not None and labels.any():
            raise DataError(f"the healthy series {where} holds {int(labels.sum())} points labelled anomalous: "
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
        say(f"fitted {config.method.name} on {fit_part.size} healthy points ({fit_part.size - size + 1} windows "
            f"of {size}); validation on {val_part.size} points")
        return series_scores(detector, val_part, state)

    def score(self, detector, samples, state):
        values = one_series(samples, "the scored series")
        return pd.DataFrame({"position": np.arange(values.size), "value": values,
                             "score": series_scores(detector, values, state)}), {}

    def metrics(self, table, state):
        """Point-level metrics and the UCR archive's "top hit": whether the highest-scoring point lies in the
        labelled anomaly (+- one window), Wu & Keogh 2021."""
        from biolatent.anomaly.metrics import dense_metrics

        scores, labels = table["score"].to_numpy(), table["label"].to_numpy().astype(bool)
        metrics = dense_metrics(scores, labels, state["threshold"], "point")
        region, margin, top = np.flatnonzero(labels), state["window"]["size"], int(np.argmax(scores))
        metrics["top_hit"] = float(region.min() - margin <= top <= region.max() + margin)
        return "point", metrics


def series_scores(detector: Any, values: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    from biolatent.anomaly.series import point_scores, sliding_windows, window_features

    size, stride = state["window"]["size"], state["window"]["stride"]
    windows = sliding_windows(values, size, stride)
    scores = detector.score(window_features(windows, state["mean"], state["scale"]))
    return point_scores(scores, values.size, size, stride)


class FeaturesTask(Task):
    def data_update(self, state):
        return {"feature_columns": state["feature_columns"]} if state.get("feature_columns") else {}

    def fit(self, detector, samples, config, state, where, say):
        column = config.data.label_column  # type: ignore[union-attr]
        labels = labels_of(samples, column if column in samples.obs.columns else None, where)
        if samples.feature_names is not None:
            state["feature_columns"] = list(samples.feature_names)
        x = samples.x.numpy()
        fit_idx, val_idx = healthy_split(len(samples), labels, None, config, where, "samples", min_fit=2)
        detector.fit(x[fit_idx])
        say(f"fitted {config.method.name} on {len(fit_idx)} healthy samples; validation on {len(val_idx)}")
        return detector.score(x[val_idx])

    def score(self, detector, samples, state):
        return pd.DataFrame({"id": samples.ids, "score": detector.score(samples.x.numpy())}), {}


class ImageTask(Task):
    """2D images (N, C, H, W): maps (N, H, W), lesion masks (N, H, W)."""

    unit = "images"
    dense_level = "pixel"

    def load_detector(self, run_dir):
        from biolatent.anomaly.image.detector import ImageReconstructionDetector

        return ImageReconstructionDetector.load(run_dir)

    def arrays(self, samples: SampleSet) -> tuple[np.ndarray, np.ndarray | None]:
        """(images, bool lesion masks or None) in the layout of the detector's maps."""
        lesion = samples.fields.get("lesion")
        return samples.x.numpy(), None if lesion is None else lesion[:, 0].numpy()

    def train(self, detector, images: np.ndarray, config: AnomalyRunConfig) -> None:
        detector.fit(images, train=config.train)  # the whole train section: accelerator, devices, precision, ...

    def fit(self, detector, samples, config, state, where, say):
        from biolatent.anomaly.image.detector import sample_scores
        from biolatent.anomaly.metrics import threshold_at_fpr

        images, lesions = self.arrays(samples)
        labels = labels_of(samples, IMAGE_LABEL if IMAGE_LABEL in samples.obs.columns else None, where)
        fit_idx, val_idx = healthy_split(len(samples), labels, lesions, config, where, "images", min_fit=2)
        say(f"training {config.method.name} on {len(fit_idx)} healthy images ({config.train.epochs} epochs)")
        state["image_size"] = config.data.image_size  # type: ignore[union-attr]
        self.train(detector, images[fit_idx], config)
        val_maps = detector.score_maps(images[val_idx])
        state["pixel_threshold"] = threshold_at_fpr(val_maps.ravel(), config.validation.target_fpr)
        return sample_scores(val_maps, detector.top_fraction, detector.score_opening)

    def maps(self, detector, images: np.ndarray, state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(maps, sample scores)."""
        from biolatent.anomaly.image.detector import sample_scores

        maps = detector.score_maps(images)
        return maps, sample_scores(maps, detector.top_fraction, detector.score_opening)

    def score(self, detector, samples, state):
        images, lesions = self.arrays(samples)
        maps, scores = self.maps(detector, images, state)
        return pd.DataFrame({"id": samples.ids, "score": scores}), {"images": images, "maps": maps, "masks": lesions}

    def region(self, images: np.ndarray, masks: np.ndarray, state: dict[str, Any]) -> np.ndarray | None:
        """Where dense metrics are computed (None: everywhere)."""
        return None

    def figure(self, extra: dict[str, Any], ids: list[str], labels: np.ndarray | None):
        from biolatent.anomaly.plots import map_grid_figure

        return map_grid_figure(extra["images"], extra["maps"], extra["masks"], ids, labels=labels)

    def write_maps(self, out_dir: Path, maps: np.ndarray, samples: SampleSet, data: Any) -> None:
        """The maps of the scored ``samples`` (loaded with the data section ``data``) under ``out_dir``."""
        from biolatent.rundir import atomic_path

        with atomic_path(out_dir / "maps.npy") as tmp, tmp.open("wb") as handle:
            np.save(handle, maps)


class VolumeTask(ImageTask):
    """3D volumes, natively in 3D (``maps.volume_mode: 3d``, the default) or slice-wise (module docstring). Arrays
    (N, D, H, W) = (N, z, y, x) of the loader's (N, 1, x, y, z): ``v[k]`` is axial slice ``k``."""

    unit = "volumes"
    dense_level = "voxel"

    def arrays(self, samples):
        volumes = samples.x[:, 0].permute(0, 3, 2, 1).contiguous().numpy()
        lesion = samples.fields.get("lesion")
        return volumes, None if lesion is None else lesion[:, 0].permute(0, 3, 2, 1).contiguous().numpy()

    def fit(self, detector, samples, config, state, where, say):
        from biolatent.anomaly.metrics import threshold_at_fpr
        from biolatent.anomaly.volumes import brain_region, brain_slices, volume_maps, volume_scores

        volumes, lesions = self.arrays(samples)
        labels = labels_of(samples, IMAGE_LABEL if IMAGE_LABEL in samples.obs.columns else None, where)
        fit_idx, val_idx = healthy_split(len(samples), labels, lesions, config, where, "volumes", min_fit=1)
        state["image_size"] = config.data.image_size  # type: ignore[union-attr]
        mode = config.maps.volume_mode
        held_out = f"{len(val_idx)} volumes held out by subject for the thresholds"
        if mode == "3d":
            train = volumes[fit_idx][:, None]
            if not train.any():
                raise DataError("the volumes hold no nonzero voxel (no brain to learn from)")
            say(f"training {config.method.name} in 3D on {len(fit_idx)} healthy volumes ({config.train.epochs} "
                f"epochs); {held_out}")
        else:
            train = brain_slices(volumes[fit_idx])
            say(f"training {config.method.name} slice-wise on {len(train)} axial brain slices of {len(fit_idx)} "
                f"healthy volumes ({config.train.epochs} epochs); {held_out}")
        self.train(detector, train, config)
        held, erosion = volumes[val_idx], config.maps.brain_erosion
        val_maps = volume_maps(detector, held, erosion)
        state.update({"volume_mode": mode, "fit_volumes": len(fit_idx), "validation_volumes": len(val_idx),
                      "brain_erosion": erosion,
                      "voxel_threshold": threshold_at_fpr(val_maps[brain_region(held, erosion)],
                                                          config.validation.target_fpr)})
        return volume_scores(val_maps, detector.top_fraction, detector.score_opening)

    def maps(self, detector, images, state):
        from biolatent.anomaly.volumes import volume_maps, volume_scores

        maps = volume_maps(detector, images, state.get("brain_erosion", 0))
        return maps, volume_scores(maps, detector.top_fraction, detector.score_opening)

    def region(self, images, masks, state):
        from biolatent.anomaly.volumes import brain_region

        return brain_region(images, state.get("brain_erosion", 0)) | masks

    def figure(self, extra, ids, labels):
        from biolatent.anomaly.volumes import volume_map_figure

        return volume_map_figure(extra["images"], extra["maps"], extra["masks"], ids, labels=labels)

    def write_maps(self, out_dir, maps, samples, data):
        """maps/<id>_map.nii.gz on each input's own grid with its affine (``anomaly.volumes.write_volume_map``), or,
        with ``data.template``, on the template's grid (where the volumes were registered)."""
        from dataclasses import replace

        from biolatent.anomaly.volumes import read_volume_header, read_volume_headers, write_volume_map

        if data.spacing is not None:
            raise DataError("anomaly score writes maps on each input's grid: volumes resampled to data.spacing are "
                            "not supported yet (leave data.spacing unset)")
        if data.template is not None:  # one header, read once: every map is on the template's grid
            space = read_volume_header(Path(data.template), "template")
            headers = [replace(space, id=sid) for sid in samples.ids]
        else:
            headers = read_volume_headers(Path(str(data.path)), samples.ids)
        for header, volume_map in zip(headers, maps, strict=True):
            write_volume_map(out_dir / "maps" / f"{header.id}_map.nii.gz", volume_map, header)


def read_image_set(path: str | Path, image_size: int, *, lesion_column: str = "mask",
                   ) -> tuple[list[str], np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(ids, images float32 (N, C, S, S), labels bool (N,) or None, lesion masks bool (N, S, S) or None) of an image
    set read by the core loader (``data.modality: image2d``); the masks of ``lesion_column`` when its meta.tsv has
    that column; labels: meta.tsv's ``is_anomaly``, else whether a mask is not empty."""
    from biolatent.config import Image2dData
    from biolatent.data.image_sets import META
    from biolatent.data.loaders import load_samples

    path = Path(path)
    if not path.is_dir():
        raise DataError(f"image set not found: {path} (a folder of images, optionally with {META})")
    has_masks = (path / META).is_file() and lesion_column in pd.read_csv(path / META, sep="\t", nrows=0).columns
    samples = load_samples(Image2dData(path=path, image_size=image_size,
                                       lesion_column=lesion_column if has_masks else None))
    images, masks = ImageTask().arrays(samples)
    labels = labels_of(samples, IMAGE_LABEL if IMAGE_LABEL in samples.obs.columns else None, str(path / META))
    if labels is None and masks is not None:
        labels = masks.any(axis=(1, 2))
    return samples.ids, images, labels, masks


def read_volume_set(path: str | Path, image_size: int, *, lesion_column: str | None = "mask", **data: Any,
                    ) -> tuple[list[str], np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(ids, volumes float32 (N, D, H, W) = (N, z, y, x), labels bool (N,) or None, lesion masks bool (N, D, H, W) or
    None) of a volume set read by the core loader (``data.modality: volume``, other data keys in ``data``) as
    ``anomaly fit`` reads it; labels: meta.tsv's ``is_anomaly``, else whether a mask is not empty."""
    from biolatent.config import VolumeData
    from biolatent.data.loaders import load_samples

    samples = load_samples(VolumeData(path=Path(path), image_size=image_size, lesion_column=lesion_column, **data))
    volumes, masks = VolumeTask().arrays(samples)
    labels = labels_of(samples, IMAGE_LABEL if IMAGE_LABEL in samples.obs.columns else None, str(path))
    if labels is None and masks is not None:
        labels = masks.reshape(len(masks), -1).any(axis=1)
    return samples.ids, volumes, labels, masks


TASKS: dict[str, Task] = {"series": SeriesTask(), "features": FeaturesTask(), "image2d": ImageTask(),
                          "volume": VolumeTask()}


def task_for(modality: str) -> Task:
    if modality not in TASKS:
        raise DataError(f"anomaly detection works on {', '.join(TASKS)} data, not {modality!r}")
    return TASKS[modality]
