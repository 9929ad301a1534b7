"""StRegA post-processing of an anomaly map into a binary segmentation (Chatterjee et al. 2022, Computers in
Biology and Medicine 106093, doi:10.1016/j.compbiomed.2022.106093, arXiv:2201.13271; their code soumickmj/StRegA).

Chain, per call: keep the positive part of the map (StRegA thresholds the signed residual, so intensities the
model fails to explain in one direction only are kept), binarise it at a threshold (Otsu's by default,
computed over everything passed in, as StRegA does for a whole volume: pass one volume, or give ``threshold``; the
workflows give the healthy-validation threshold, never Otsu over pooled test maps), a binary morphological opening
with a (2r+1)x(2r+1) square, then removal of connected components of fewer than ``min_area`` pixels (8-connected by
default). Opening and labelling act on each 2D slice separately. StRegA's own code additionally caps the
residual at 1 above a fixed level (0.2) before Otsu and uses skimage's area opening; neither is done here.

``otsu_threshold`` is Otsu's method (Otsu 1979, IEEE Trans. Syst. Man Cybern. 9:62, "A threshold selection
method from gray-level histograms"): over a 256-bin histogram of the values, the bin centre that maximises the
between-class variance w0 * w1 * (mu0 - mu1)^2, pixels strictly above it being foreground. It follows the
algorithm of ``skimage.filters.threshold_otsu`` (van der Walt et al. 2014, PeerJ 2:e453) so that it gives the
same threshold without the dependency; a constant input returns its value (so nothing is foreground).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from biolatent.errors import DataError


def otsu_threshold(values: np.ndarray, nbins: int = 256) -> float:
    """Otsu's threshold of ``values`` (any shape, finite); foreground is ``values > threshold``."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0 or not np.isfinite(flat).all():
        raise DataError("otsu_threshold: the values are empty or hold NaN/inf")
    if np.all(flat == flat[0]):
        return float(flat[0])
    counts, edges = np.histogram(flat, bins=nbins)
    centres = (edges[:-1] + edges[1:]) / 2.0
    weight0 = np.cumsum(counts)
    weight1 = np.cumsum(counts[::-1])[::-1]
    mean0 = np.cumsum(counts * centres) / np.maximum(weight0, 1)
    mean1 = (np.cumsum((counts * centres)[::-1]) / np.maximum(weight1[::-1], 1))[::-1]
    between = weight0[:-1] * weight1[1:] * (mean0[:-1] - mean1[1:]) ** 2
    return float(centres[int(np.argmax(between))])


def opening(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    """Binary opening of a 2D mask with a (2r+1)x(2r+1) square (r = 0: unchanged); the border counts as background."""
    if radius <= 0:
        return mask.copy()
    structure = np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
    return ndimage.binary_opening(mask, structure=structure, border_value=0)


def remove_small_components(mask: np.ndarray, min_area: int, connectivity: int = 2) -> np.ndarray:
    """Drop the connected components of a 2D mask with fewer than ``min_area`` pixels.

    ``connectivity`` 1 = 4-connected, 2 = 8-connected.
    """
    if min_area <= 1 or not mask.any():
        return mask.copy()
    labels, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(2, connectivity))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_area
    keep[0] = False
    return keep[labels]


def postprocess(
    anomaly_map: np.ndarray,
    *,
    threshold: float | None = None,
    opening_radius: int = 1,
    min_area: int = 4,
    connectivity: int = 2,
) -> np.ndarray:
    """Anomaly map (H, W) or (N, H, W) -> bool mask of the same shape (StRegA chain; ``threshold`` None = Otsu)."""
    maps = _check_maps(anomaly_map)
    positive = np.clip(maps, 0.0, None)
    level = otsu_threshold(positive) if threshold is None else float(threshold)
    binary = positive > level
    stack = binary if binary.ndim == 3 else binary[None]
    out = np.stack([remove_small_components(opening(m, opening_radius), min_area, connectivity) for m in stack])
    return out if binary.ndim == 3 else out[0]


def _check_maps(anomaly_map: np.ndarray) -> np.ndarray:
    maps = np.asarray(anomaly_map, dtype=np.float64)
    if maps.ndim not in (2, 3) or maps.size == 0:
        raise DataError(f"postprocess: expected an anomaly map (H, W) or (N, H, W), got shape {maps.shape}")
    if not np.isfinite(maps).all():
        raise DataError("postprocess: the anomaly map holds NaN or inf")
    return maps
