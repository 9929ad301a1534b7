"""Per-lesion detection broken down by lesion size, for 2D (N, H, W) and 3D (N, D, H, W) maps and masks alike.

Pooled pixel metrics (AUROC, Dice) are dominated by the largest lesions; a detector can score well while
missing every small one. Each ground-truth lesion is therefore scored on its own, with lesion-wise detection
counts as used in the MS-lesion segmentation challenges (e.g. Commowick et al. 2018, Scientific Reports
8:13650), here with the simplest overlap rule:

* **lesions** are the connected components of each sample's mask (``scipy.ndimage.label``) with *full*
  connectivity: 8-connected in 2D, 26-connected in 3D (``generate_binary_structure(ndim, ndim)``), so a
  diagonal chain of pixels is one lesion; components never cross samples;
* **size**: its number of pixels (voxels);
* **recall**: the fraction of its pixels where the map is strictly above ``threshold`` (the same ``map >
  threshold`` rule as ``biolatent.anomaly.metrics.dense_metrics``). This is the lesion-wise true-positive rate;
  it is chosen instead of a per-lesion Dice in a dilated neighbourhood because it needs no neighbourhood size
  and never charges a lesion for false positives that belong to another lesion (false positives are what the
  pooled Dice and AP already measure);
* **detected**: at least ``max(1, ceil(min_overlap * size))`` of its pixels are above the threshold. The
  default ``min_overlap = 0`` means "any pixel" (any overlap); ``min_overlap = 0.5`` asks for half;
* **mean_score**: the mean map value inside the lesion (threshold-free).

``size_breakdown`` groups these rows into fixed size bins given by inclusive upper ``edges`` (no quantiles,
so tables of different detectors and runs share their bins). The default edges ``(4, 16, 64, 256)`` (bins
``<=4, 5-16, 17-64, 65-256, >256``, a factor 4 apart) cover both the 1-36 pixel lesions of the 32-pixel
simulated slices and those of larger images or volumes; pass other edges for other data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy import ndimage

from biolatent.errors import DataError

DEFAULT_EDGES: tuple[int, ...] = (4, 16, 64, 256)
VOLUME_EDGES: tuple[int, ...] = (64, 512, 4096)  # 3D: cubes of side 4, 8, 16 voxels
LESION_COLUMNS = ["sample", "lesion", "size", "detected", "recall", "mean_score"]
SIZE_COLUMNS = ["size_bin", "n_lesions", "detection_rate", "mean_recall", "mean_score"]


def _check(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(maps, dtype=np.float64)
    t = np.asarray(masks)
    if m.ndim not in (3, 4):
        raise DataError(f"lesion sizes: expected maps (N, H, W) or (N, D, H, W), got shape {m.shape}")
    if m.shape != t.shape:
        raise DataError(f"lesion sizes: maps have shape {m.shape} but masks {t.shape} (shape mismatch)")
    if not np.isfinite(m).all():
        raise DataError("lesion sizes: the maps hold NaN or inf")
    return m, t.astype(bool)


def lesion_table(maps: np.ndarray, masks: np.ndarray, threshold: float, *, min_overlap: float = 0.0) -> pd.DataFrame:
    """One row per ground-truth lesion: ``LESION_COLUMNS`` (sample index, lesion number within the sample from 1,
    size in pixels/voxels, detected, recall, mean_score); see the module docstring for the definitions."""
    if not 0.0 <= min_overlap <= 1.0:
        raise DataError(f"min_overlap must lie in [0, 1], got {min_overlap}")
    values, truth = _check(maps, masks)
    structure = ndimage.generate_binary_structure(truth.ndim - 1, truth.ndim - 1)  # full connectivity
    rows = []
    for sample, (score, mask) in enumerate(zip(values, truth, strict=True)):
        if not mask.any():
            continue
        labels, n = ndimage.label(mask, structure=structure)
        flat = labels.ravel()
        sizes = np.bincount(flat, minlength=n + 1)[1:]
        above = np.bincount(flat, weights=(score > threshold).ravel(), minlength=n + 1)[1:]
        sums = np.bincount(flat, weights=score.ravel(), minlength=n + 1)[1:]
        for k in range(n):
            size, hit = int(sizes[k]), round(float(above[k]))
            needed = max(1, math.ceil(min_overlap * size - 1e-9))
            rows.append({"sample": sample, "lesion": k + 1, "size": size, "detected": hit >= needed,
                         "recall": hit / size, "mean_score": float(sums[k] / size)})
    return pd.DataFrame(rows, columns=LESION_COLUMNS).astype({"sample": int, "lesion": int, "size": int,
                                                              "detected": bool})


def bin_labels(edges: Sequence[int]) -> list[str]:
    """Names of the bins of inclusive upper ``edges``: ``<=e0``, ``e0+1-e1``, ..., ``>ek``."""
    names = [f"<={edges[0]}"]
    names += [f"{low + 1}-{high}" for low, high in pairwise(edges)]
    return [*names, f">{edges[-1]}"]


def check_edges(edges: Sequence[int]) -> list[int]:
    values = [int(e) for e in edges]
    if not values or values[0] < 1 or any(b <= a for a, b in pairwise(values)):
        raise DataError(f"size edges must be increasing positive pixel counts, got {list(edges)}")
    return values


def size_breakdown(table: pd.DataFrame, edges: Sequence[int] = DEFAULT_EDGES) -> pd.DataFrame:
    """``SIZE_COLUMNS`` per size bin (every bin listed, empty ones with NaN rates), then an ``all`` row.

    A lesion of size s falls in the first bin whose upper edge is >= s (the last bin is ``> edges[-1]``).
    """
    edge_list = check_edges(edges)
    names = bin_labels(edge_list)
    sizes = table["size"].to_numpy(dtype=np.int64)
    index = np.searchsorted(np.asarray(edge_list), sizes, side="left")  # s <= e_i  ->  bin i
    rows = []
    for b, name in enumerate([*names, "all"]):
        chosen = table[index == b] if name != "all" else table
        n = len(chosen)
        rows.append({"size_bin": name, "n_lesions": n,
                     "detection_rate": float(chosen["detected"].mean()) if n else math.nan,
                     "mean_recall": float(chosen["recall"].mean()) if n else math.nan,
                     "mean_score": float(chosen["mean_score"].mean()) if n else math.nan})
    return pd.DataFrame(rows, columns=SIZE_COLUMNS)


def parse_edges(text: str) -> tuple[int, ...]:
    """``"4,16,64"`` -> (4, 16, 64); DataError when not increasing positive integers."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DataError(f"size edges must be integers separated by commas, got {text!r}") from None
    return tuple(check_edges(values))
