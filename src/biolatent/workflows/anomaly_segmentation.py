"""``biolatent anomaly supervised | guided``: a supervised lesion segmenter as the reference for the anomaly
detectors, and a segmenter trained on anomaly-map pseudo-labels (weak supervision), evaluated like them.

supervised: ``LesionSegmenter`` (``biolatent.anomaly.segmentation``, the detectors' backbone) trained on a
LABELLED image set (meta.tsv with lesion masks), evaluated on a separate labelled test set as detector
``supervised``. Its pixel threshold is chosen on a seeded held-out part (``validation_fraction``) of the
labelled training set, as the threshold of the best Dice there (``best_dice`` on the held-out masks; 0.5 when
the held-out part holds no lesion); with ``threshold`` given, that value is used and every labelled image trains.

Epoch budget: the reference gets the budget of the unsupervised detectors it is compared with, never more:
``epochs`` when given, else ``train.epochs`` of ``budget_from`` (a ``biolatent anomaly fit`` run directory or an
anomaly config YAML of those detectors), else ``DETECTOR_EPOCHS`` (the 2D slice detectors' budget,
``configs/anomaly/slices_{ae,vae,cevae}.yaml``). The guided segmenter gets its run's ``train.epochs`` by default.
Both record the epochs and where they came from (``epochs_source``) in config.yaml and metrics.json.

guided: the anomaly maps of a fitted ``biolatent anomaly fit`` run on an UNLABELLED set (its masks and labels,
if any, are not used for training) become pseudo-labels, either the StRegA post-processed maps (``pseudo =
"postprocess"``: positive part, Otsu over the whole unlabelled set, opening, small components removed) or the
maps above the run's healthy-validation pixel threshold (``pseudo = "threshold"``). A segmenter with the run's
encoder widths (ae, vae, cevae; (16, 32, 64) for detectors without them) is trained on them and evaluated as
``<detector>+guided`` (pixel threshold 0.5: no label exists to choose another) next to the run's raw maps
(detector ``<detector>``: the rows of ``biolatent anomaly evaluate``, thresholds from healthy validation) and,
in lesion_sizes.tsv only, the post-processed maps (``<detector>+postprocessed``: the StRegA chain at the run's
healthy-validation pixel threshold, never Otsu on the pooled test maps).

Metrics (``biolatent.anomaly.metrics``, so the rows match ``anomaly_metrics.tsv`` of evaluate): sample level
AUROC, AP, and the Dice / false-positive rate of the flag "score > threshold" (segmenters: score = mean of the
top 1 % of the probability map, flagged above the pixel threshold); pixel level pooled AUROC, AP,
``dice_val_threshold`` (the threshold above) and ``dice_best`` (the best threshold on the test masks: an upper
bound, labelled as such). ``lesion_sizes.tsv``: the per-lesion-size detection table
(``biolatent.anomaly.lesion_sizes``) for every map at its pixel threshold.

Both write OUT/config.yaml, provenance.json, metrics.json, segmenter.safetensors + segmenter.json,
anomaly_metrics.tsv, lesion_sizes.tsv, probabilities.npy and segmentation_maps.png (image / probability /
truth). Everything is written to a hidden sibling folder first and renamed onto OUT at the end, so a failure
leaves no half-written run; bad input is a one-line ``DataError`` before any training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from biolatent import provenance
from biolatent.anomaly.lesion_sizes import DEFAULT_EDGES, check_edges, lesion_table, size_breakdown
from biolatent.errors import DataError
from biolatent.rundir import staged_dir, update_json, write_json, write_text

if TYPE_CHECKING:
    from biolatent.anomaly.segmentation import Segmenter
    from biolatent.config import TrainConfig

METRICS_FILE = "anomaly_metrics.tsv"
SIZES_FILE = "lesion_sizes.tsv"
TOP_FRACTION = 0.01  # sample score of a segmenter: mean of the top 1 % of its probability map
PSEUDO = ("postprocess", "threshold")
DETECTOR_EPOCHS = 30  # train.epochs of configs/anomaly/slices_{ae,vae,cevae}.yaml


def detector_epochs(source: str | Path) -> int:
    """``train.epochs`` of the unsupervised detectors a reference is compared with: ``source`` is a ``biolatent
    anomaly fit`` run directory (its config.yaml) or an anomaly config YAML."""
    from biolatent.workflows.anomaly_config import load_anomaly_config

    path = Path(source)
    return int(load_anomaly_config(path / "config.yaml" if path.is_dir() else path).train.epochs)


def resolve_epochs(epochs: int | None, budget_from: str | Path | None) -> tuple[int, str]:
    """(epochs, where they came from): ``epochs`` as given, else the detectors' budget (see the module)."""
    if epochs is not None and budget_from is not None:
        raise DataError("give --epochs or --budget-from (the detectors' run or config), not both")
    if epochs is not None:
        if epochs < 1:
            raise DataError(f"epochs must be at least 1, got {epochs}")
        return int(epochs), "epochs given"
    if budget_from is not None:
        return detector_epochs(budget_from), f"train.epochs of {budget_from}"
    return DETECTOR_EPOCHS, "default: the 2D slice detectors' budget (configs/anomaly/slices_ae.yaml)"


def read_labelled(path: str | Path, image_size: int, what: str, *, mask_column: str = "mask",
                  both_classes: bool = True) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(ids, images, labels, masks) of a set that must have lesion masks; DataError otherwise."""
    from biolatent.workflows.anomaly_tasks import read_image_set

    ids, images, labels, masks = read_image_set(path, image_size, lesion_column=mask_column)
    if masks is None:
        raise DataError(f"the {what} set {path} has no lesion masks (meta.tsv needs a {mask_column!r} column)")
    if not masks.any():
        raise DataError(f"the {what} set {path} has lesion masks that are all empty: nothing to segment")
    labels = masks.any(axis=(1, 2)) if labels is None else labels  # sample truth: the label column when given
    if both_classes and labels.all():
        raise DataError(f"the {what} set {path} holds no healthy image: sample AUROC and AP need both classes")
    return ids, images, labels, masks


def _check_pair(train: np.ndarray, test: np.ndarray, what: str) -> None:
    if train.shape[1:] != test.shape[1:]:
        raise DataError(f"{what}: images of {train.shape[1:]} (C, H, W) and {test.shape[1:]} (shape mismatch)")


def segmenter_rows(name: str, probabilities: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                   threshold: float) -> tuple[pd.DataFrame, dict[str, float]]:
    """Sample and pixel rows of a segmenter's probability maps (sample score: top-1 % mean)."""
    from biolatent.anomaly.image.detector import top_fraction_mean

    return _rows(name, probabilities, top_fraction_mean(probabilities, TOP_FRACTION), labels, masks, threshold,
                 threshold)


def _rows(name: str, maps: np.ndarray, scores: np.ndarray, labels: np.ndarray, masks: np.ndarray,
          sample_threshold: float, pixel_threshold: float,
          extra_pixel: dict[str, float] | None = None) -> tuple[pd.DataFrame, dict[str, float]]:
    from biolatent.anomaly.metrics import dense_metrics, metrics_table, sample_metrics

    sample = sample_metrics(scores, labels, sample_threshold)
    pixel = dense_metrics(maps, masks, pixel_threshold, "pixel") | (extra_pixel or {})
    table = pd.concat([metrics_table(name, "sample", sample), metrics_table(name, "pixel", pixel)], ignore_index=True)
    return table, {**sample, **{f"pixel_{k}": v for k, v in pixel.items()}}


def _sizes(name: str, maps: np.ndarray, masks: np.ndarray, threshold: float, edges: Sequence[int]) -> pd.DataFrame:
    table = size_breakdown(lesion_table(maps, masks, threshold), edges)
    table.insert(0, "detector", name)
    return table


def _write(folder: Path, *, command: str, config: dict[str, Any], seed: int, section: str,
           metrics: dict[str, Any], segmenter: Segmenter, table: pd.DataFrame, sizes: pd.DataFrame, images: np.ndarray,
           probabilities: np.ndarray, masks: np.ndarray, ids: list[str], labels: np.ndarray) -> None:
    from biolatent.anomaly.plots import map_grid_figure

    write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    write_json(folder / "provenance.json", provenance.collect(command, seed=seed))
    update_json(folder / "metrics.json", section, metrics)
    segmenter.save(folder)
    table.to_csv(folder / METRICS_FILE, sep="\t", index=False, float_format="%.6g")
    sizes.to_csv(folder / SIZES_FILE, sep="\t", index=False, float_format="%.6g")
    np.save(folder / "probabilities.npy", probabilities)
    map_grid_figure(images, probabilities, masks, ids, labels=labels).savefig(folder / "segmentation_maps.png",
                                                                             dpi=110)


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(fraction * n))
    if n - n_val < 2:
        raise DataError(f"{n} labelled training images: too few to train and hold out {n_val} for the threshold")
    return order[n_val:], order[:n_val]


def segmenter_train(trainer: TrainConfig | None, epochs: int, batch_size: int, lr: float, seed: int) -> TrainConfig:
    """The segmenter's ``train.fit`` settings: ``trainer`` (default: CPU, the rest TrainConfig's defaults) with the
    epoch budget, batch size, learning rate and seed of the command."""
    from biolatent.config import TrainConfig

    base = trainer if trainer is not None else TrainConfig(accelerator="cpu")
    return base.model_copy(update={"epochs": epochs, "batch_size": max(2, batch_size), "lr": lr, "seed": seed})


def run_supervised(
    train_path: str | Path,
    test_path: str | Path,
    out_dir: str | Path,
    *,
    image_size: int = 32,
    epochs: int | None = None,
    budget_from: str | Path | None = None,
    batch_size: int = 16,
    lr: float = 1e-2,
    seed: int = 0,
    widths: Sequence[int] = (16, 32, 64),
    skip: bool = True,
    threshold: float | None = None,
    validation_fraction: float = 0.2,
    size_edges: Sequence[int] = DEFAULT_EDGES,
    say: Callable[[str], object] = print,
    trainer: TrainConfig | None = None,
) -> Path:
    """Train the supervised reference on ``train_path`` (labelled), evaluate on ``test_path`` -> ``out_dir``.

    ``epochs`` / ``budget_from``: the detectors' epoch budget (:func:`resolve_epochs`). ``trainer``: the other
    trainer settings (accelerator, devices, strategy, precision; :func:`segmenter_train`)."""
    from biolatent.anomaly.metrics import best_dice
    from biolatent.anomaly.segmentation import train_segmenter

    out_dir, size_bins = Path(out_dir), check_edges(size_edges)
    epochs, epochs_source = resolve_epochs(epochs, budget_from)
    if not 0.0 < validation_fraction < 1.0:
        raise DataError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    with staged_dir(out_dir) as folder:
        _, images, _, masks = read_labelled(train_path, image_size, "labelled training", both_classes=False)
        ids, test_images, labels, test_masks = read_labelled(test_path, image_size, "test")
        _check_pair(images, test_images, "labelled training vs test")
        chosen_on = "given"
        if threshold is None:
            fit_part, val_part = _split(len(images), validation_fraction, seed)
        else:
            fit_part, val_part = np.arange(len(images)), np.arange(0)
        say(f"training the supervised segmenter on {fit_part.size} labelled images ({epochs} epochs)")
        segmenter = train_segmenter(images[fit_part], masks[fit_part], widths=tuple(widths), skip=skip,
                                    train=segmenter_train(trainer, epochs, batch_size, lr, seed))
        if threshold is None:
            if masks[val_part].any():
                threshold, chosen_on = best_dice(segmenter.predict(images[val_part]), masks[val_part])[1], "validation"
                threshold = float(np.clip(threshold, 0.0, 1.0))
            else:
                threshold, chosen_on = 0.5, "default (no lesion in the held-out part)"
        segmenter.threshold = float(threshold)
        probabilities = segmenter.predict(test_images)
        table, metrics = segmenter_rows("supervised", probabilities, labels, test_masks, segmenter.threshold)
        sizes = _sizes("supervised", probabilities, test_masks, segmenter.threshold, size_bins)
        config = {"command": "anomaly supervised", "train": str(train_path), "test": str(test_path),
                  "image_size": image_size, "epochs": epochs, "epochs_source": epochs_source,
                  "batch_size": batch_size, "lr": lr, "seed": seed, "widths": list(widths), "skip": skip,
                  "threshold": threshold,
                  "validation_fraction": validation_fraction, "size_edges": size_bins}
        summary = {**metrics, "pixel_threshold": segmenter.threshold, "threshold_chosen_on": chosen_on,
                   "n_train": int(fit_part.size), "n_validation": int(val_part.size), "n_test": len(ids),
                   "epochs": epochs, "epochs_source": epochs_source}
        _write(folder, command="anomaly supervised", config=config, seed=seed, section="anomaly_supervised",
               metrics=summary, segmenter=segmenter, table=table, sizes=sizes, images=test_images,
               probabilities=probabilities, masks=test_masks, ids=ids, labels=labels)
    say(_headline("supervised", metrics))
    return out_dir


def run_guided(
    run_dir: str | Path,
    unlabelled_path: str | Path,
    test_path: str | Path,
    out_dir: str | Path,
    *,
    pseudo: str = "postprocess",
    epochs: int | None = None,
    batch_size: int = 16,
    lr: float = 1e-2,
    seed: int = 0,
    skip: bool = True,
    size_edges: Sequence[int] = DEFAULT_EDGES,
    say: Callable[[str], object] = print,
    trainer: TrainConfig | None = None,
) -> Path:
    """Segmenter trained on the pseudo-labels of a fitted image anomaly run; raw maps vs guided -> ``out_dir``.

    ``epochs``: default the run's own ``train.epochs`` (the detector's budget); ``trainer`` as in ``run_supervised``."""
    from biolatent.anomaly.image.postprocess import postprocess
    from biolatent.anomaly.metrics import dice
    from biolatent.anomaly.segmentation import train_segmenter
    from biolatent.workflows.anomaly import _load
    from biolatent.workflows.anomaly_tasks import read_image_set

    run_dir, out_dir, size_bins = Path(run_dir), Path(out_dir), check_edges(size_edges)
    if pseudo not in PSEUDO:
        raise DataError(f"unknown pseudo-label source {pseudo!r} (choose from: {', '.join(PSEUDO)})")
    config, detector, state = _load(run_dir)
    lesion_column = config.data.lesion_column or "mask"  # type: ignore[union-attr]
    if state["modality"] != "image2d":
        raise DataError(f"{run_dir} holds a {state['modality']} detector: guided segmentation needs an image2d run")
    name, size = state["detector"], int(state["image_size"])
    epochs, epochs_source = resolve_epochs(epochs, run_dir if epochs is None else None)
    with staged_dir(out_dir) as folder:
        _, images, _, unlabelled_masks = read_image_set(unlabelled_path, size, lesion_column=lesion_column)
        ids, test_images, labels, test_masks = read_labelled(test_path, size, "test", mask_column=lesion_column)
        _check_pair(images, test_images, "unlabelled vs test")
        maps = detector.score_maps(images)
        targets = postprocess(maps) if pseudo == "postprocess" else maps > state["pixel_threshold"]
        if not targets.any():
            raise DataError(f"the {pseudo} pseudo-labels of {unlabelled_path} are all empty: nothing to learn")
        widths = _backbone_widths(detector.params.get("widths"), size)
        say(f"training the {name}-guided segmenter on {len(images)} unlabelled images ({pseudo} pseudo-labels, "
            f"{targets.mean():.2%} of pixels; {epochs} epochs)")
        segmenter = train_segmenter(images, targets, widths=widths, skip=skip,
                                    train=segmenter_train(trainer, epochs, batch_size, lr, seed))
        probabilities = segmenter.predict(test_images)
        guided = f"{name}+guided"
        raw_maps = detector.score_maps(test_images)
        post = postprocess(raw_maps, threshold=state["pixel_threshold"])  # healthy validation, not Otsu on the test
        raw_table, raw_metrics = _rows(name, raw_maps, detector.score(test_images), labels, test_masks,
                                       state["threshold"], state["pixel_threshold"],
                                       {"dice_postprocessed": dice(post, test_masks)})
        guided_table, guided_metrics = segmenter_rows(guided, probabilities, labels, test_masks, segmenter.threshold)
        sizes = pd.concat([_sizes(name, raw_maps, test_masks, state["pixel_threshold"], size_bins),
                           _sizes(f"{name}+postprocessed", post.astype(float), test_masks, 0.5, size_bins),
                           _sizes(guided, probabilities, test_masks, segmenter.threshold, size_bins)],
                          ignore_index=True)
        pseudo_quality: dict[str, float] = {}
        if unlabelled_masks is not None and unlabelled_masks.any():  # diagnostic only, never used to train
            pseudo_quality = {"pseudo_label_dice": dice(targets, unlabelled_masks)}
        run_config = {"command": "anomaly guided", "run": str(run_dir), "unlabelled": str(unlabelled_path),
                      "test": str(test_path), "pseudo": pseudo, "epochs": epochs,
                      "epochs_source": epochs_source, "batch_size": batch_size, "lr": lr,
                      "seed": seed, "widths": list(widths), "skip": skip, "size_edges": size_bins}
        summary = {"detector": name, "pseudo": pseudo, "pseudo_label_fraction": float(targets.mean()),
                   **pseudo_quality, "n_unlabelled": len(images), "n_test": len(ids), "epochs": epochs,
                   "epochs_source": epochs_source,
                   "pixel_threshold": segmenter.threshold, name: raw_metrics, guided: guided_metrics}
        _write(folder, command="anomaly guided", config=run_config, seed=seed, section="anomaly_guided",
               metrics=summary, segmenter=segmenter, table=pd.concat([raw_table, guided_table], ignore_index=True),
               sizes=sizes, images=test_images, probabilities=probabilities, masks=test_masks, ids=ids,
               labels=labels)
    say(_headline(name, raw_metrics))
    say(_headline(guided, guided_metrics))
    return out_dir


def _backbone_widths(widths: Any, image_size: int) -> tuple[int, ...]:
    """The run's ``ConvEncoder`` widths (ae, vae, cevae); (16, 32, 64) for detectors without them."""
    if (isinstance(widths, list | tuple) and widths and all(isinstance(w, int) and w > 0 for w in widths)
            and image_size >> len(widths) >= 2):
        return tuple(widths)
    return (16, 32, 64)


def _headline(name: str, metrics: dict[str, float]) -> str:
    keys = ("auroc", "pixel_auroc", "pixel_dice_val_threshold", "pixel_dice_best")
    return f"{name}: " + ", ".join(f"{k} {metrics[k]:.3f}" for k in keys) + " (dice_best uses the test labels)"
