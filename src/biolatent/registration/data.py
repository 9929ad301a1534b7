"""A registration cohort: the volumes of a ``data`` section (the pretraining loader, ``load_volume``) with each
volume's label map on the same cube (nearest neighbour), and single volumes prepared the same way.

Bad input is a one-line DataError: a label map whose shape differs from its image, non-finite voxels, a cohort
of fewer than two volumes (no pair), volumes of different dimensionality.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biolatent.data.volume_sets import META, _read_cohort, _zoom, normalise_volume
from biolatent.errors import DataError
from biolatent.io.nifti import Volume, read_nifti
from biolatent.registration.config import RegistrationData


@dataclass
class RegistrationCohort:
    """``x`` float32 (N, 1, S, S, S) in [0, 1]; ``labels`` uint8 (N, 1, S, S, S) or None; ``ids``."""

    x: torch.Tensor
    labels: torch.Tensor | None
    ids: list[str]


def read_image(path: str | Path, what: str) -> Volume:
    """A 3D NIfTI image with finite voxels (DataError otherwise, naming ``what``)."""
    return check_image(read_nifti(path), path, what)


def check_image(volume: Volume, path: str | Path, what: str) -> Volume:
    """``volume`` if 3D with finite voxels, else a DataError naming ``what`` and ``path``."""
    if volume.data.ndim != 3:
        raise DataError(f"{what} {path} holds {volume.data.ndim}D data of shape {volume.data.shape}: registration "
                        "needs 3D volumes")
    if not np.isfinite(volume.data).all():
        raise DataError(f"{what} {path} holds NaN or inf voxels")
    return volume


def read_labels(path: str | Path, image: Volume, what: str) -> np.ndarray:
    """An integer label map with its image's shape (voxel values rounded)."""
    labels = read_image(path, what)
    if labels.data.shape != image.data.shape:
        raise DataError(f"{what} {path} has shape {labels.data.shape} but its image has {image.data.shape}")
    return np.rint(labels.data).astype(np.int64)


def to_cube(data: np.ndarray, cfg: RegistrationData, what: str) -> np.ndarray:
    """An image onto the cohort's cube, normalised as the training volumes are (``volume_sets``)."""
    return normalise_volume(_zoom(data, (cfg.image_size,) * 3, 1), cfg, what)


def labels_to_cube(labels: np.ndarray, size: int) -> np.ndarray:
    return _zoom(labels.astype(np.float32), (size,) * 3, 0).astype(np.uint8)


def load_cohort(cfg: RegistrationData, *, labels: bool = True) -> RegistrationCohort:
    """The cohort's volumes (and, with ``labels`` and ``cfg.labels_column``, their label maps) on the cube."""
    folder, table, ids, _ = _read_cohort(cfg)
    if len(ids) < 2:
        raise DataError(f"{folder}: a registration cohort needs at least two volumes, got {len(ids)}")
    if labels and cfg.labels_column is not None and cfg.labels_column not in table.columns:
        raise DataError(f"data.labels_column {cfg.labels_column!r} is not a column of {folder / META}")
    size = cfg.image_size
    x = np.empty((len(ids), 1, size, size, size), dtype=np.float32)
    maps = np.empty((len(ids), 1, size, size, size), dtype=np.uint8) if labels and cfg.labels_column else None
    for i, (sid, relative) in enumerate(zip(ids, table["path"], strict=True)):
        image = read_image(folder / str(relative), f"volume {sid!r}")
        x[i, 0] = to_cube(image.data, cfg, f"volume {sid!r}")
        if maps is not None:
            path = str(table[cfg.labels_column].iloc[i]).strip()
            if not path:
                raise DataError(f"volume {sid!r} has no label map (empty {cfg.labels_column!r} in {folder / META})")
            maps[i, 0] = labels_to_cube(read_labels(folder / path, image, f"label map of {sid!r}"), size)
    return RegistrationCohort(torch.from_numpy(x), None if maps is None else torch.from_numpy(maps), ids)


def cohort_table(folder: Path, labels_column: str | None) -> pd.DataFrame:
    """The cohort's ``meta.tsv`` (id, path and the label column, when given, checked)."""
    from biolatent.data.volume_sets import list_volumes

    table, _ = list_volumes(folder, [labels_column] if labels_column else [])
    if len(table) < 2:
        raise DataError(f"{folder}: a registration cohort needs at least two volumes, got {len(table)}")
    if labels_column is not None and labels_column not in table.columns:
        raise DataError(f"{folder / META} has no {labels_column!r} column (the run's data.labels_column)")
    return table
