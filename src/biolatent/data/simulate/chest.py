"""Synthetic chest CT volumes in Hounsfield units, healthy or with lung nodules and their masks.

A stand-in for multi-subject chest CT (no real CT cohort is reachable here, see DATA.md): an analytic thorax
whose tissues carry their textbook attenuation, drawn per subject from the stream seeded by ``(seed, index)``.
The grid is a cube of ``size`` voxels over a ``FOV_MM`` (350 mm) field of view, isotropic spacing
``FOV_MM / size`` (5.5 mm at 64^3, 2.7 mm at 128^3), written in the NIfTI affine. Arrays are (z, y, x) of RAS
space: ``image[k]`` is axial slice ``k`` (inferior to superior), +x the subject's right, +y anterior.

Anatomy (millimetres about the grid centre, every coordinate displaced by a smooth elastic field N(0, 4 mm) on a
4x4x4 control grid, upsampled), painted in this order on a grid supersampled 2x per axis, then averaged to the
output grid (partial volume); ``labels`` is the most frequent tissue of each output voxel (``TISSUES``):

* body: a cylinder of rounded-rectangle cross-section (``|x / a|^3 + |y / b|^3 < 1``), semi-axes U(140, 170) x
  U(95, 120) mm, subcutaneous fat (U(-120, -80) HU) of U(8, 25) mm over soft tissue (muscle, mediastinum:
  U(30, 55) HU);
* lungs: two ellipsoids beside a mediastinum, domed at the base (the diaphragm), cut by the heart (a soft-tissue
  ellipsoid left, anterior and low); a breathing factor b ~ U(0.9, 1.1) scales them (height x b, width x
  sqrt(b)) and sets the parenchyma density: U(-860, -800) HU - 300 (b - 1), with a gravity gradient (40 HU
  denser posteriorly than anteriorly) and a smooth texture of sd 15 HU;
* airways: the trachea (radius U(7, 10) mm, air lumen -1000 HU, 2 mm soft-tissue wall) from the top of the
  field to the carina, the two main bronchi (70 % of its radius) to the hila, and two lobar bronchi a side;
* pulmonary vessel trees (blood, U(30, 50) HU) drawn inside the lungs only: three roots a hilum (upper, middle,
  lower), each a binary tree of 5 generations from a root of radius U(6.5, 8.5) mm whose segments shrink
  (length x U(0.65, 0.85), radius x U(0.65, 0.8)) and turn U(20, 45) degrees away from their parent;
* ribs (11 a side, along the body's cross-section inside its wall, U(22, 26) mm apart, sloping down anteriorly
  by U(30, 50) mm, a flat cross-section of 4 x 6 mm half-axes, cortical bone U(600, 1000) HU), the sternum and
  the spine (vertebral bodies of radius U(16, 20) mm, U(250, 400) HU with a cortical rim of U(600, 900) HU, discs
  of soft tissue every ~28 mm, the posterior arch around a spinal canal of fluid, 10 HU).

Acquisition: a Gaussian point spread (sigma 0.5 voxels) and noise N(0, U(8, 25) HU); air outside the body
stays near -1000 HU. Values are rounded to whole HU and clipped to [-1024, 3071].

Nodules (``nodules=True``; a separate stream ``(seed, index, 1)``, so a nodule subject is the healthy subject of
the same seed plus its nodules): 1-3 a subject, diameter log-uniform in [``NODULE_MM``] = [3, 15] mm, slightly
ellipsoidal (axes x U(0.8, 1)), centred on a lung voxel whose distance to the lung boundary is at least the
radius plus one voxel, of one of three types: ``solid`` (U(-30, 80) HU), ``part_solid`` (a ground-glass halo
U(-650, -450) HU around a solid core of 40-60 % of the diameter) and ``ground_glass`` (U(-700, -450) HU). A
nodule is rendered with its partial volume (4x supersampling) before the point spread; its mask is the voxels
at least half covered, and always the voxel of its centre (a 3 mm nodule is smaller than a voxel at 64^3).

``write_chest_set`` writes the brains' layout (``biolatent.anomaly.volumes.write_brain_set``): ``<id>.nii.gz``,
``<id>_mask.nii.gz`` for nodule subjects, ``<id>_labels.nii.gz`` and ``meta.tsv`` with the columns id, path,
is_anomaly, mask (empty for none), labels, lesion_voxels, n_lesions, then lung_ml, breathing, noise_hu; and
``nodules.tsv`` (one row a nodule: id, nodule, type, diameter_mm, hu, centre_x/y/z_mm, voxels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from biolatent.errors import DataError

FOV_MM = 350.0
MIN_SIZE = 16
SUPERSAMPLE = 2
NODULE_MM = (3.0, 15.0)
NODULE_TYPES = ("solid", "part_solid", "ground_glass")
TISSUES = {0: "air", 1: "fat", 2: "soft_tissue", 3: "lung", 4: "vessel", 5: "airway", 6: "bone"}
AIR, FAT, SOFT, LUNG, VESSEL, AIRWAY, BONE = range(7)
META = "meta.tsv"


@dataclass
class ChestSubject:
    """One synthetic subject: ``image`` float32 (z, y, x) in HU, ``mask`` bool nodule mask, ``labels`` uint8
    tissue map (``TISSUES``), ``affine`` (x, y, z voxel -> mm), ``nodules`` their parameters."""

    image: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    nodules: list[dict[str, Any]] = field(default_factory=list)
    breathing: float = 1.0
    noise_hu: float = 0.0

    @property
    def spacing(self) -> float:
        return float(self.affine[0, 0])

    def lung_ml(self) -> float:
        """Lung volume (parenchyma, vessels and airways inside the lungs are not counted) in millilitres."""
        return float((self.labels == LUNG).sum() * self.spacing**3 / 1000.0)


def check_size(size: int) -> int:
    size = int(size)
    if size < MIN_SIZE:
        raise DataError(f"the chest volume side must be >= {MIN_SIZE} voxels, got {size}")
    return size


def affine_for(size: int) -> np.ndarray:
    """The (x, y, z) voxel -> mm affine of the ``size``^3 grid centred on 0."""
    spacing = FOV_MM / size
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -spacing * (size - 1) / 2.0
    return affine


def _coordinates(size: int, rng: np.random.Generator) -> np.ndarray:
    """(3, n, n, n) float32 (x, y, z) millimetres of the supersampled grid's voxel centres, (z, y, x) order of
    the array axes, displaced by the smooth elastic field."""
    n = size * SUPERSAMPLE
    step = FOV_MM / n
    axis = ((np.arange(n) - (n - 1) / 2.0) * step).astype(np.float32)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    coords = np.stack([x, y, z])
    for k in range(3):
        coords[k] += _smooth_field(rng.normal(0.0, 4.0, (4, 4, 4)), n)
    return coords


def _smooth_field(coarse: np.ndarray, n: int) -> np.ndarray:
    """A (m, m, m) control grid upsampled (cubic spline, as ``ndimage.zoom``) to (n, n, n), axis by axis."""
    m = coarse.shape[0]
    up = ndimage.zoom(np.eye(m), (n / m, 1), order=3, mode="nearest", grid_mode=True)  # (n, m) per axis
    return np.einsum("ai,bj,ck,ijk->abc", up, up, up, coarse, optimize=True).astype(np.float32)


def _radius(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """The normalised radius of (x, y) on the axial superellipse |x / a|^3 + |y / b|^3 = 1 (the rounded-rectangle
    cross-section of the thorax; < 1 inside)."""
    return (np.abs(x / a) ** 3 + np.abs(y / b) ** 3) ** (1.0 / 3.0)


def _ellipsoid(c: np.ndarray, centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
    """The normalised radius ((x - cx) / rx)^2 + ... of every point (< 1 inside)."""
    return sum(((c[k] - centre[k]) / radii[k]) ** 2 for k in range(3))


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of (3, ...) points to the segment a-b."""
    ab = b - a
    t = np.clip(np.tensordot(ab, points - a[:, None], axes=1) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    return np.sqrt(((points - a[:, None] - ab[:, None] * t[None]) ** 2).sum(axis=0))


def _paint_tube(labels: np.ndarray, coords: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, value: int,
                where: np.ndarray | None = None) -> None:
    """Set ``labels`` to ``value`` within ``radius`` mm of the segment a-b (and inside ``where``), on its bounding
    box only."""
    n = labels.shape[0]
    step = FOV_MM / n
    low = np.minimum(a, b) - radius - 12.0  # the elastic field moves points by ~10 mm at most
    high = np.maximum(a, b) + radius + 12.0
    lo = np.clip(np.floor(low / step + (n - 1) / 2.0).astype(int), 0, n)  # (x, y, z) index bounds
    hi = np.clip(np.ceil(high / step + (n - 1) / 2.0).astype(int) + 1, 0, n)
    if np.any(hi <= lo):
        return
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    points = coords[(slice(None), *box)].reshape(3, -1)
    inside = (_segment_distance(points, a, b) <= radius).reshape(labels[box].shape)
    if where is not None:
        inside &= where[box]
    labels[box][inside] = value


def _rotate_away(direction: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at ``angle`` radians from ``direction``, in a random plane."""
    other = rng.normal(size=3)
    other -= (other @ direction) * direction
    other /= np.linalg.norm(other) + 1e-12
    return np.cos(angle) * direction + np.sin(angle) * other


def _tree(rng: np.random.Generator, start: np.ndarray, direction: np.ndarray, length: float, radius: float,
          generations: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Segments (a, b, radius) of a binary branching tree."""
    segments: list[tuple[np.ndarray, np.ndarray, float]] = []
    stack = [(start, direction / np.linalg.norm(direction), length, radius, generations)]
    while stack:
        a, d, length_, r, g = stack.pop()
        b = a + length_ * d
        segments.append((a, b, r))
        if g <= 1:
            continue
        for _ in range(2):
            child = _rotate_away(d, np.deg2rad(rng.uniform(20.0, 45.0)), rng)
            stack.append((b, child, length_ * rng.uniform(0.65, 0.85), r * rng.uniform(0.65, 0.8), g - 1))
    return segments


def _anatomy(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, float]]:
    """The supersampled tissue label map (z, y, x) uint8 and the subject's HU and shape parameters."""
    c = _coordinates(size, rng)
    x, y, z = c
    ax, ay = rng.uniform(140.0, 170.0), rng.uniform(95.0, 120.0)
    fat = rng.uniform(8.0, 25.0)
    breathing = rng.uniform(0.9, 1.1)
    p: dict[str, float] = {
        "fat_hu": rng.uniform(-120.0, -80.0), "soft_hu": rng.uniform(30.0, 55.0), "blood_hu": rng.uniform(30.0, 50.0),
        "lung_hu": rng.uniform(-860.0, -800.0) - 300.0 * (breathing - 1.0), "rib_hu": rng.uniform(600.0, 1000.0),
        "vertebra_hu": rng.uniform(250.0, 400.0), "cortex_hu": rng.uniform(600.0, 900.0), "breathing": breathing,
        "ay": ay}
    labels = np.zeros(x.shape, np.uint8)
    labels[_radius(x, y, ax, ay) < 1.0] = FAT
    labels[_radius(x, y, ax - fat, ay - fat) < 1.0] = SOFT
    # lungs: ellipsoids beside the mediastinum, domed base, minus the heart
    mediastinum = rng.uniform(25.0, 35.0)
    inner = ax - fat - 12.0  # the inside of the rib cage, laterally
    rx = 0.55 * (inner - mediastinum) * np.sqrt(breathing)
    ry = 0.92 * (ay - fat - 12.0) * np.sqrt(breathing)
    rz = rng.uniform(125.0, 145.0) * breathing
    heart = _ellipsoid(c, (-rng.uniform(15.0, 35.0), 0.3 * ay, -rng.uniform(40.0, 60.0)), (60.0, 0.45 * ay, 55.0))
    lung = np.zeros(x.shape, bool)
    for side in (1.0, -1.0):
        xc = side * (mediastinum + inner) / 2.0
        inside = _ellipsoid(c, (xc, -0.05 * ay, -10.0), (rx, ry, rz)) < 1.0
        dome = -10.0 - 0.55 * rz + 0.35 * rz * np.clip(1.0 - ((x - xc) / rx) ** 2 - (y / ry) ** 2, 0.0, 1.0)
        lung |= inside & (side * x > mediastinum) & (z > dome)
    lung &= heart > 1.0
    lung &= _radius(x, y, inner, ay - fat - 12.0) < 1.0
    labels[lung] = LUNG
    # airways: trachea, main bronchi, lobar bronchi (soft-tissue wall, air lumen)
    top = FOV_MM / 2.0 + 20.0
    carina = np.array([0.0, 0.05 * ay, rng.uniform(40.0, 70.0)])
    r_trachea = rng.uniform(7.0, 10.0)
    hila = [np.array([s * (mediastinum + 15.0), 0.0, carina[2] - rng.uniform(25.0, 40.0)]) for s in (1.0, -1.0)]
    airways = [(np.array([0.0, 0.05 * ay, top]), carina, r_trachea)]
    for hilum in hila:
        airways.append((carina, hilum, 0.7 * r_trachea))
        for dz in (35.0, -45.0):
            end = hilum + np.array([np.sign(hilum[0]) * 30.0, rng.normal(0, 8.0), dz])
            airways.append((hilum, end, 0.45 * r_trachea))
    for a, b, r in airways:
        _paint_tube(labels, c, a, b, r + 2.0, SOFT)
    # pulmonary vessel trees inside the lungs
    for hilum in hila:
        side = np.sign(hilum[0])
        for direction in ((side, 0.0, 0.9), (side, 0.3, 0.0), (side, -0.4, -0.9)):
            for a, b, r in _tree(rng, hilum, np.asarray(direction), rng.uniform(35.0, 45.0), rng.uniform(6.5, 8.5), 5):
                _paint_tube(labels, c, a, b, r, VESSEL, where=lung)
    for a, b, r in airways:
        _paint_tube(labels, c, a, b, r, AIRWAY)
    _bones(labels, c, rng, ax, ay, fat)
    return labels, p


def _bones(labels: np.ndarray, c: np.ndarray, rng: np.random.Generator, ax: float, ay: float, fat: float) -> None:
    """Ribs, sternum and spine (vertebral bodies, discs, posterior arch around the canal) painted as BONE / SOFT."""
    x, y, z = c
    # ribs: bands along an ellipse inside the body wall, sloping down anteriorly
    ex, ey = ax - fat - 6.0, ay - fat - 6.0
    radial = (_radius(x, y, ex, ey) - 1.0) * 0.5 * (ex + ey)  # ~ mm from the rib curve
    theta = np.arctan2(y / ey, np.abs(x) / ex)  # -90 deg posterior, 0 lateral, +90 anterior
    gap, drop = rng.uniform(22.0, 26.0), rng.uniform(30.0, 50.0)
    start = rng.uniform(120.0, 140.0)
    along = (theta > np.deg2rad(-75.0)) & (theta < np.deg2rad(65.0))
    for k in range(11):
        level = start - k * gap - drop * (1.0 + np.sin(theta)) / 2.0
        labels[along & ((radial / 4.0) ** 2 + ((z - level) / 6.0) ** 2 < 1.0)] = BONE
    # sternum
    sternum = (np.abs(x) < 15.0) & (np.abs(y - (ay - fat - 10.0)) < 6.0) & (z > start - 6 * gap) & (z < start)
    labels[sternum] = BONE
    # spine: vertebral bodies with discs, the arch around the canal
    yv, rv = -ay + fat + rng.uniform(50.0, 60.0), rng.uniform(16.0, 20.0)
    body = x**2 + (y - yv) ** 2 < rv**2
    disc = np.mod(z, 28.0) < 5.0
    labels[body & ~disc] = BONE
    labels[body & disc] = SOFT
    canal = x**2 + (y - (yv - rv - 10.0)) ** 2
    labels[(canal < 15.0**2) & (canal >= 8.0**2)] = BONE
    labels[canal < 8.0**2] = AIRWAY + 100  # spinal canal: fluid (marked, rendered below)
    labels[(np.abs(x) < 5.0) & (y < yv - rv - 20.0) & (y > yv - rv - 40.0)] = BONE  # spinous process


def _render(labels: np.ndarray, p: dict[str, float], rng: np.random.Generator, size: int) -> tuple[np.ndarray,
                                                                                               np.ndarray]:
    """(HU image, tissue labels) on the output grid: supersampled HU averaged per output voxel."""
    n = labels.shape[0]
    hu = np.full(labels.shape, -1000.0, np.float32)
    hu[labels == FAT] = p["fat_hu"]
    hu[labels == SOFT] = p["soft_hu"]
    hu[labels == VESSEL] = p["blood_hu"]
    hu[labels == AIRWAY + 100] = 10.0
    lung = labels == LUNG
    texture = _smooth_field(rng.normal(0.0, 15.0, (8, 8, 8)), n)
    axis = (np.arange(n) - (n - 1) / 2.0) * FOV_MM / n
    gravity = -20.0 * np.clip(axis / p["ay"], -1.0, 1.0)[None, :, None]  # posterior (y < 0) denser
    hu[lung] = (p["lung_hu"] + texture + gravity + np.zeros_like(hu))[lung]
    bone = labels == BONE
    rim = bone & ~ndimage.binary_erosion(bone)
    hu[bone] = p["vertebra_hu"]
    hu[rim] = p["cortex_hu"]
    hu[bone & (np.abs(_x_axis(n))[None, None, :] > 40.0)] = p["rib_hu"]  # ribs: thin, mostly cortical
    labels = np.where(labels == AIRWAY + 100, SOFT, labels).astype(np.uint8)
    blocks = (size, SUPERSAMPLE, size, SUPERSAMPLE, size, SUPERSAMPLE)
    image = hu.reshape(blocks).mean(axis=(1, 3, 5))
    counts = np.stack([(labels == t).reshape(blocks).sum(axis=(1, 3, 5), dtype=np.int16) for t in TISSUES])
    return image.astype(np.float32), counts.argmax(axis=0).astype(np.uint8)


def _x_axis(n: int) -> np.ndarray:
    return (np.arange(n) - (n - 1) / 2.0) * FOV_MM / n


def _draw_nodules(rng: np.random.Generator, labels: np.ndarray, spacing: float) -> list[dict[str, Any]]:
    """1-3 nodules: type, diameter, HU, centre voxel (z, y, x) deep enough inside the lungs."""
    depth = ndimage.distance_transform_edt(labels == LUNG) * spacing
    nodules = []
    for k in range(int(rng.integers(1, 4))):
        diameter = float(np.exp(rng.uniform(*np.log(NODULE_MM))))
        kind = NODULE_TYPES[int(rng.choice(3, p=[0.5, 0.25, 0.25]))]
        candidates = np.argwhere(depth >= diameter / 2.0 + spacing)
        if not len(candidates):
            candidates = np.argwhere(depth == depth.max())
        centre = candidates[int(rng.integers(len(candidates)))]
        hu = {"solid": rng.uniform(-30.0, 80.0), "part_solid": rng.uniform(-650.0, -450.0),
              "ground_glass": rng.uniform(-700.0, -450.0)}[kind]
        nodules.append({"nodule": k + 1, "type": kind, "diameter_mm": round(diameter, 3), "hu": round(hu, 1),
                        "core_hu": round(rng.uniform(-30.0, 80.0), 1), "core_fraction": rng.uniform(0.4, 0.6),
                        "axes": rng.uniform(0.8, 1.0, 3), "voxel": centre})
    return nodules


def _plant(image: np.ndarray, mask: np.ndarray, nodule: dict[str, Any], spacing: float) -> None:
    """Blend one nodule into ``image`` with its partial volume (4x supersampled coverage); mark its mask."""
    fine = 4
    radius = nodule["diameter_mm"] / 2.0
    half = int(np.ceil(radius / spacing)) + 1
    centre = nodule["voxel"]
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, image.shape)
    offsets = [(np.arange(lo[k] * fine, hi[k] * fine) + 0.5) / fine - 0.5 - centre[k] for k in range(3)]
    dz, dy, dx = np.meshgrid(*[o * spacing for o in offsets], indexing="ij")
    axes = nodule["axes"] * radius
    rho = np.sqrt((dz / axes[0]) ** 2 + (dy / axes[1]) ** 2 + (dx / axes[2]) ** 2)
    shape = tuple(int(h - low) for h, low in zip(hi, lo, strict=True))

    def cover(inside: np.ndarray) -> np.ndarray:
        return inside.reshape(shape[0], fine, shape[1], fine, shape[2], fine).mean(axis=(1, 3, 5))

    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    whole = cover(rho <= 1.0)
    image[box] = image[box] * (1.0 - whole) + whole * nodule["hu"]
    if nodule["type"] == "part_solid":
        core = cover(rho <= nodule["core_fraction"])
        image[box] = image[box] * (1.0 - core) + core * nodule["core_hu"]
    mask[box] |= whole >= 0.5
    mask[tuple(int(v) for v in centre)] = True


def simulate_chest(seed: int, index: int, *, size: int = 64, nodules: bool = False) -> ChestSubject:
    """One subject (module docstring); the same ``(seed, index)`` gives the same anatomy with or without nodules."""
    size = check_size(size)
    rng = np.random.default_rng([seed, index])
    fine_labels, p = _anatomy(rng, size)
    image, labels = _render(fine_labels, p, rng, size)
    spacing = FOV_MM / size
    mask = np.zeros(image.shape, bool)
    drawn: list[dict[str, Any]] = []
    if nodules:
        drawn = _draw_nodules(np.random.default_rng([seed, index, 1]), labels, spacing)
        for nodule in drawn:
            _plant(image, mask, nodule, spacing)
    noise_hu = rng.uniform(8.0, 25.0)
    image = ndimage.gaussian_filter(image, 0.5, mode="nearest") + rng.normal(0.0, noise_hu, image.shape)
    image = np.clip(np.round(image), -1024.0, 3071.0).astype(np.float32)
    return ChestSubject(image, mask, labels, affine_for(size), drawn, breathing=p["breathing"], noise_hu=noise_hu)


def _nodule_rows(name: str, subject: ChestSubject) -> list[dict[str, Any]]:
    rows = []
    spacing = subject.spacing
    components, _ = ndimage.label(subject.mask)
    for nodule in subject.nodules:
        z, y, x = (int(v) for v in nodule["voxel"])
        centre = subject.affine @ np.array([x, y, z, 1.0])
        rows.append({"id": name, "nodule": nodule["nodule"], "type": nodule["type"],
                     "diameter_mm": nodule["diameter_mm"], "hu": nodule["hu"],
                     "centre_x_mm": round(float(centre[0]), 2), "centre_y_mm": round(float(centre[1]), 2),
                     "centre_z_mm": round(float(centre[2]), 2),
                     "voxels": int((components == components[z, y, x]).sum()), "spacing_mm": round(spacing, 4)})
    return rows


def _save(path: Path, volume: np.ndarray, affine: np.ndarray) -> None:
    from biolatent.io.nifti import write_nifti

    write_nifti(path, np.asarray(volume, np.float32).transpose(2, 1, 0), affine=affine)


def write_chest_set(out_dir: str | Path, n: int, *, size: int = 64, nodules: bool = False, seed: int = 0,
                    nodule_fraction: float = 0.5, say: Callable[[str], object] | None = None) -> Path:
    """``<id>.nii.gz`` (HU), ``<id>_labels.nii.gz``, ``<id>_mask.nii.gz`` for nodule subjects, ``meta.tsv`` and
    ``nodules.tsv`` (module docstring); with ``nodules`` a seeded ``nodule_fraction`` of the subjects has nodules."""
    from biolatent.rundir import atomic_path

    out_dir, size = Path(out_dir), check_size(size)
    if int(n) < 1:
        raise DataError(f"the number of subjects must be >= 1, got {n}")
    if (out_dir / META).exists():
        raise DataError(f"{out_dir} already holds a set ({META}): choose another --out")
    if nodules and not 0.0 < nodule_fraction <= 1.0:
        raise DataError(f"the fraction of subjects with nodules must lie in (0, 1], got {nodule_fraction}")
    chosen = np.random.default_rng([seed, 2]).random(int(n)) < nodule_fraction if nodules else np.zeros(int(n), bool)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, nodule_rows = [], []
    for i in range(int(n)):
        subject = simulate_chest(seed, i, size=size, nodules=bool(chosen[i]))
        name = f"chest-{i + 1:04d}"
        _save(out_dir / f"{name}.nii.gz", subject.image, subject.affine)
        _save(out_dir / f"{name}_labels.nii.gz", subject.labels, subject.affine)
        mask = ""
        if chosen[i]:
            mask = f"{name}_mask.nii.gz"
            _save(out_dir / mask, subject.mask, subject.affine)
            nodule_rows += _nodule_rows(name, subject)
        rows.append({"id": name, "path": f"{name}.nii.gz", "is_anomaly": int(subject.mask.any()), "mask": mask,
                     "labels": f"{name}_labels.nii.gz", "lesion_voxels": int(subject.mask.sum()),
                     "n_lesions": len(subject.nodules), "lung_ml": round(subject.lung_ml(), 1),
                     "breathing": round(subject.breathing, 4), "noise_hu": round(subject.noise_hu, 2)})
        if say is not None and ((i + 1) % max(1, int(n) // 10) == 0 or i + 1 == int(n)):
            say(f"{i + 1}/{n} chests written")
    columns = ["id", "nodule", "type", "diameter_mm", "hu", "centre_x_mm", "centre_y_mm", "centre_z_mm", "voxels",
               "spacing_mm"]
    with atomic_path(out_dir / "nodules.tsv") as tmp:
        pd.DataFrame(nodule_rows, columns=columns).to_csv(tmp, sep="\t", index=False)
    meta = out_dir / META
    with atomic_path(meta) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False)
    return meta
