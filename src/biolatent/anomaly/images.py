"""Image sets for anomaly detection: a folder of images, optionally with ``meta.tsv`` listing labels and masks.

A set is a folder. Without ``meta.tsv`` every image in it is read (ids = file stems). With ``meta.tsv`` (columns
``id``, ``path``, and optionally ``is_anomaly`` (0/1) and ``mask``: a PNG of the lesion, empty for none), the
listed
images are read in its order. ``write_slice_set`` writes the synthetic 2D slices of
``biolatent.data.simulate.lesions2d`` in this layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from biolatent.anomaly.metrics import binary_labels
from biolatent.errors import DataError

META = "meta.tsv"


def _resize(image: Image.Image, size: int, nearest: bool) -> np.ndarray:
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR)
    return np.asarray(image)


def read_image_set(folder: str | Path, image_size: int, *, label_column: str = "is_anomaly",
                   mask_column: str = "mask") -> tuple[list[str], np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(ids, images float32 (N, C, S, S) in [0, 1], labels bool (N,) or None, masks bool (N, S, S) or None)."""
    from biolatent.io.images import read_image_folder

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image set not found: {folder} (a folder of images, optionally with {META})")
    if not (folder / META).is_file():
        ids, images = read_image_folder(folder, image_size)
        return ids, images, None, None
    meta = pd.read_csv(folder / META, sep="\t", dtype={"id": str}, keep_default_na=False)
    for column in ("id", "path"):
        if column not in meta.columns:
            raise DataError(f"{folder / META} has no {column!r} column")
    planes, masks = [], []
    for row in meta.itertuples(index=False):
        path = folder / str(row.path)
        if not path.is_file():
            raise DataError(f"{folder / META}: image {row.path!r} of {row.id!r} not found")
        image = Image.open(path).convert("L")
        planes.append(_resize(image, image_size, nearest=False).astype(np.float32) / 255.0)
        if mask_column in meta.columns:
            mask_path = str(getattr(row, mask_column))
            if not mask_path:
                masks.append(np.zeros((image_size, image_size), bool))
                continue
            mask = Image.open(folder / mask_path).convert("L")
            if mask.size != image.size:
                raise DataError(f"{row.id}: mask {mask_path} is {mask.size[0]}x{mask.size[1]} but the image is "
                                f"{image.size[0]}x{image.size[1]} (shape mismatch)")
            masks.append(_resize(mask, image_size, nearest=True) > 127)
    images = np.stack(planes)[:, None]
    labels = None
    if label_column in meta.columns:
        labels = binary_labels(meta[label_column], label_column, str(folder / META))
    mask_array = np.stack(masks) if masks else None
    if labels is None and mask_array is not None:
        labels = mask_array.any(axis=(1, 2))
    return meta["id"].tolist(), images, labels, mask_array


def write_slice_set(out_dir: str | Path, n: int, *, size: int = 64, lesions: bool = False, seed: int = 0,
                    lesion_fraction: float = 0.5) -> Path:
    """``images/<id>.png``, ``masks/<id>.png`` and ``meta.tsv`` (id, path, is_anomaly, mask, lesion_pixels).

    With ``lesions``, a seeded ``lesion_fraction`` of the slices carry lesions (the others stay healthy).
    """
    from biolatent.data.simulate.lesions2d import simulate_slices
    from biolatent.io.images import write_png

    out_dir = Path(out_dir)
    if (out_dir / META).exists():
        raise DataError(f"{out_dir} already holds a set ({META}): choose another --out")
    images, masks = simulate_slices(n, size=size, lesions=False, seed=seed)
    if lesions:
        if not 0.0 < lesion_fraction <= 1.0:
            raise DataError(f"lesion_fraction must lie in (0, 1], got {lesion_fraction}")
        lesioned, lesion_masks = simulate_slices(n, size=size, lesions=True, seed=seed)
        chosen = np.random.default_rng([seed, 1]).random(n) < lesion_fraction
        images[chosen], masks[chosen] = lesioned[chosen], lesion_masks[chosen]
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    if lesions:
        (out_dir / "masks").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        subject = f"slice-{i + 1:04d}"
        write_png(out_dir / "images" / f"{subject}.png", (images[i, 0] * 255).round().astype(np.uint8))
        mask = ""
        if lesions:
            mask = f"masks/{subject}.png"
            write_png(out_dir / mask, masks[i].astype(np.uint8) * 255)
        rows.append({"id": subject, "path": f"images/{subject}.png", "is_anomaly": int(masks[i].any()),
                     "mask": mask, "lesion_pixels": int(masks[i].sum())})
    pd.DataFrame(rows).to_csv(out_dir / META, sep="\t", index=False)
    return out_dir / META
