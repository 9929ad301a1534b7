"""Tiny synthetic 2D "brain-like" slices, healthy or with planted lesions and their masks.

A stand-in for tests and demos until atlas-based synthetic brains in the style of SynthSeg (Billot et al.
2023, Medical Image Analysis 86:102789: label maps of real anatomy, random intensities per label) exist here.
Nothing here is anatomically faithful; it has just enough structure for a reconstruction model to learn a
"normal" appearance that lesions break:

* a head ellipse (random semi-axes, small rotation and offset) whose outer band is a bright skull rim;
* brain tissue inside it with a smooth low-frequency texture (Gaussian-filtered noise);
* two dark ventricle-like ellipses, mirrored about the midline and tilted outwards;
* a smooth multiplicative bias field (linear + quadratic, as MR intensity non-uniformity) and Gaussian noise.

With ``lesions=True`` each slice gets 1 or 2 blobs (soft-edged ellipses, a super-Gaussian profile) that are
brighter or darker than tissue, of random size and contrast, centred in tissue away from the ventricles; the
mask of a blob is its ellipse (where the profile is >= 1/2) intersected with the brain. Anatomy, bias and
noise draw from a per-slice stream seeded by ``(seed, i)`` and lesions from a separate stream, so
``simulate_slices(n, lesions=True, seed=s)`` is the healthy ``simulate_slices(n, seed=s)`` plus the lesions
(before clipping to [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from biolatent.errors import ConfigError

SKULL = 0.85  # skull rim intensity
TISSUE = 0.55  # mean brain tissue intensity
VENTRICLE = 0.15  # ventricle (CSF) intensity
NOISE_SD = 0.02


@dataclass(frozen=True)
class Slice:
    """One simulated slice: ``image`` (H, W) float in [0, 1], ``lesion`` and ``brain`` bool (H, W)."""

    image: np.ndarray
    lesion: np.ndarray
    brain: np.ndarray


def simulate_slices(n: int, size: int = 64, lesions: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` slices of ``size`` x ``size`` -> (images float32 (N, 1, H, W) in [0, 1], lesion masks bool (N, H, W)).

    The masks are all False when ``lesions`` is False.
    """
    slices = [simulate_slice(size, seed, i, lesions=lesions) for i in range(_check_n(n))]
    images = np.stack([s.image for s in slices])[:, None].astype(np.float32)
    masks = np.stack([s.lesion for s in slices])
    return images, masks


def simulate_slice(size: int, seed: int, index: int, *, lesions: bool = False) -> Slice:
    """Slice ``index`` of the series seeded by ``seed`` (also returns its brain mask)."""
    size = _check_size(size)
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    yy, xx = 2.0 * yy / (size - 1) - 1.0, 2.0 * xx / (size - 1) - 1.0  # [-1, 1]
    head = _ellipse_radius(yy, xx, centre=rng.normal(0.0, 0.02, 2), axes=(rng.uniform(0.82, 0.92),
                                                                              rng.uniform(0.68, 0.8)),
                           angle=rng.normal(0.0, 0.08))
    brain = head <= 0.86
    ventricles = _ventricles(rng, yy, xx)
    clean = np.where(head <= 1.0, SKULL, 0.0)
    clean[brain] = TISSUE
    clean = np.where(ventricles & brain, VENTRICLE, clean)
    clean += brain * _texture(rng, size)
    bias = _bias_field(rng, yy, xx)
    noise = rng.normal(0.0, NOISE_SD, (size, size)) * (head <= 1.0)
    lesion_mask = np.zeros((size, size), dtype=bool)
    if lesions:
        lesion_rng = np.random.default_rng([seed, index, 1])
        delta, lesion_mask = _lesions(lesion_rng, yy, xx, brain, brain & ~ventricles)
        clean = clean + delta
    image = np.clip(clean * bias + noise, 0.0, 1.0)
    return Slice(image=image, lesion=lesion_mask, brain=brain)


def _check_n(n: int) -> int:
    if int(n) < 1:
        raise ConfigError(f"simulate_slices needs n >= 1, got {n}")
    return int(n)


def _check_size(size: int) -> int:
    if int(size) < 16:
        raise ConfigError(f"simulate_slices needs size >= 16, got {size}")
    return int(size)


def _ellipse_radius(
    yy: np.ndarray, xx: np.ndarray, *, centre: np.ndarray, axes: tuple[float, float], angle: float
) -> np.ndarray:
    """Normalised elliptical radius (1 on the ellipse) with semi-axes ``axes`` = (along y, along x)."""
    dy, dx = yy - centre[0], xx - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dy + s * dx, -s * dy + c * dx
    return np.sqrt((u / axes[0]) ** 2 + (v / axes[1]) ** 2)


def _ventricles(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Two dark ellipses mirrored about the midline, tilted outwards (a butterfly shape)."""
    offset, height, width = rng.uniform(0.1, 0.16), rng.uniform(0.22, 0.3), rng.uniform(0.06, 0.09)
    tilt, centre_y = rng.uniform(0.2, 0.4), rng.normal(-0.05, 0.03)
    left = _ellipse_radius(yy, xx, centre=np.array([centre_y, -offset]), axes=(height, width), angle=-tilt)
    right = _ellipse_radius(yy, xx, centre=np.array([centre_y, offset]), axes=(height, width), angle=tilt)
    return (left <= 1.0) | (right <= 1.0)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth tissue texture: white noise low-passed at ~size/10 pixels, scaled to sd 0.04."""
    field = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=size / 10.0, mode="reflect")
    return 0.04 * field / max(float(field.std()), 1e-12)


def _bias_field(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Multiplicative intensity non-uniformity 1 + linear + quadratic terms, within about +-15 %."""
    gy, gx, q = rng.uniform(-0.08, 0.08, 3)
    return 1.0 + gy * yy + gx * xx + q * (yy**2 + xx**2 - 0.5)


def _lesions(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, brain: np.ndarray, tissue: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """1-2 soft blobs -> (intensity change (H, W), mask bool (H, W) inside ``brain``)."""
    size = yy.shape[0]
    delta, mask = np.zeros_like(yy), np.zeros(yy.shape, dtype=bool)
    depth = ndimage.distance_transform_edt(tissue) * 2.0 / (size - 1)  # distance to non-tissue, in [-1, 1] units
    for _ in range(int(rng.integers(1, 3))):
        radius = rng.uniform(0.08, 0.2)
        candidates = np.argwhere(depth >= 0.8 * radius)
        if len(candidates) == 0:
            candidates = np.argwhere(tissue)
        cy, cx = candidates[rng.integers(len(candidates))]
        axes = (radius * rng.uniform(0.7, 1.0), radius * rng.uniform(0.7, 1.0))
        r = _ellipse_radius(yy, xx, centre=np.array([yy[cy, cx], xx[cy, cx]]), axes=axes,
                            angle=rng.uniform(0.0, np.pi))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        delta += sign * rng.uniform(0.25, 0.4) * np.exp(-np.log(2.0) * r**4) * brain
        mask |= (r <= 1.0) & brain
    return delta, mask
