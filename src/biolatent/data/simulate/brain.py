"""Synthetic 3D brains from a real template, healthy or with planted tumour-like lesions and their masks.

Subject synthesis follows the idea of SynthSeg (Billot et al. 2023, Medical Image Analysis 86:102789, "SynthSeg:
segmentation of brain MRI scans of any contrast and resolution without retraining"): real anatomy is spatially
deformed per subject, then rendered with intensities drawn at random per tissue, with a bias field and noise.
Here the anatomy is the grey / white matter / CSF probability maps of the MNI ICBM152 2009a template (dataset
``mni152``), so partial volume comes from the probabilities rather than from blurred hard labels. Per subject
(all from the stream seeded by ``(seed, index)``):

* a random affine about the brain centre: rotations U(-10, 10) degrees per axis, scalings U(0.92, 1.08) per axis,
  translation N(0, 2 mm);
* a smooth elastic displacement: N(0, 3 mm) on a 5x5x5 control grid, upsampled (cubic) to the volume;
* tissue means around T1 contrast: WM U(0.60, 0.72), GM = WM x U(0.60, 0.75), CSF U(0.05, 0.20);
  image = sum over tissues of probability x mean (partial volume), background 0 (skull-stripped, like the
  template);
* a smooth multiplicative bias field exp(N(0, 0.1) on a 4x4x4 grid, upsampled) and Gaussian noise of sd
  U(0.01, 0.03) inside the brain; the result is clipped to [0, 1].

Many labels (``colin27_aal_template``, ``--atlas colin27-aal``): the anatomy is the Colin27 brain (Holmes et al.
1998) instead, its tissue maps the posteriors of the dataset ``colin27-aal``, and the template carries an atlas
label map (``regions``: AAL, Tzourio-Mazoyer et al. 2002, 116 regions) that is pulled through each subject's own
map (affine + elastic, and atrophy / mass effect when drawn) with nearest neighbours and kept inside the rendered
brain (tissue > 0.5): ``BrainSubject.regions``, written as the subject's label map.

The output is a cube of ``size`` voxels per side (a power of two >= 32, because the 2D detectors need it) that
holds the template's brain with a 10 % margin, resampled (trilinear) from the template after a Gaussian
anti-aliasing blur (sigma = 0.4 output voxels). Arrays are (z, y, x) of RAS space: ``image[k]`` is axial slice
``k`` (inferior to superior); ``affine`` maps (x, y, z) voxel indices to template millimetres.

Subject parameters and sites (issue: cohorts with a known truth for self-supervised probes), each from its own
stream so that anatomy and lesions stay as they are without them:

* ``atrophy`` a in [0, 1] (stream ``(seed, index, 3)``, a ~ U(0, 1) when ``subject_parameters``): the ventricles
  enlarge (tissue is pushed away from the centre c of the deep CSF by the fold-free radial map of the mass effect
  below, ``x -> x - k (x - c) exp(-(|x - c| / 2 r)^2)`` with k = 0.25 a and r = a quarter of the brain's
  equivalent-sphere radius: a linear magnification of 1 / (1 - k) at the centre, 1.33 at a = 1, fading out
  before the cortex), and a fraction 0.3 a of the grey-matter partial volume becomes CSF everywhere (cortical
  thinning and widened sulci as partial volume); ``age`` = 45 + 35 a + N(0, 5) years is recorded as its noisy
  correlate;
* ``site`` (``sites`` = S > 0 scanner profiles, drawn once per cohort from ``(seed, "sites")``; each subject's
  site from ``(seed, index, 2)``): a GM/WM contrast factor U(0.85, 1.15), a noise factor U(0.7, 1.6) and a bias
  factor U(0.5, 2.0) applied to the subject's own draws, and a slice thickness U(1, 3) voxels (from its own stream
  ``(seed, 8)``): the signal is blurred across axial slices by a Gaussian of that FWHM before the noise, the
  through-plane resolution of a 2D multi-slice acquisition (SynthSeg's random resolution);
* the tissue volumes ``gm_ml``, ``wm_ml``, ``csf_ml`` (sums of the probability maps x voxel volume) are recorded
  for every subject;
* ``scan`` k > 0 (several scans of one subject, the positives of MICLe): the same anatomy, atrophy and lesions,
  re-acquired: tissue means, bias field and noise are drawn again from the stream ``(seed, index, 4, k)`` and
  the head is repositioned by a rigid rotation U(-5, 5) degrees per axis and a translation N(0, 2 mm).

Lesions (``lesions=True``; a separate stream seeded by ``(seed, index, 1)``, so a lesioned cohort is its healthy
cohort of the same seed plus lesions): 1-3 tumour-like blobs, centred in white matter (80 %) or any tissue,
radius log-uniform in [0.08, 0.4] x the brain's equivalent-sphere radius (from ~2 voxels at 64^3 to a diameter
of ~40 % of the brain's width), ellipsoidal (axes x U(0.75, 1)), randomly rotated, with a smooth irregular
boundary (radius x (1 + 0.15 x smooth noise)) and a soft edge (profile exp(-ln 2 rho^4), 1/2 at the boundary).
The tissue under the profile is replaced by the lesion's intensity: WM mean +- U(0.15, 0.4) (hyper- or
hypo-intense with equal chance) with a faint texture. The mask is ``rho <= 1`` inside the brain. With
``mass_effect``, tissue around each lesion is pushed radially outwards by a smooth, fold-free displacement:
a point at distance s from the centre moves by ``a s exp(-(s / 2r)^2)`` (a ~ U(0.3, 0.6) < 1, so the map is
monotone in s; largest shift ~0.43 a x 2r at s = sqrt(2) r).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from biolatent.data.simulate.brain_template import (  # noqa: F401 - importable from simulate.brain as before
    ATLASES,
    TISSUES,
    BrainTemplate,
    _Grid,
    atlas_template,
    colin27_aal_template,
    ellipsoid_template,
    load_template,
    mni152_template,
)
from biolatent.errors import ConfigError, DataError

MIN_SIZE = 32
TISSUE_LABELS = {1: "gm", 2: "wm", 3: "csf"}  # the values of BrainSubject.labels
CONTRASTS = ("t1", "t2")


@dataclass(frozen=True)
class SiteProfile:
    """A scanner's effect on every subject it images: GM/WM contrast, noise and bias-field factors."""

    name: str
    contrast: float = 1.0
    noise: float = 1.0
    bias: float = 1.0
    slice_thickness: float = 1.0  # voxels (FWHM of the through-plane blur); 1 = none


def site_profiles(n_sites: int, seed: int) -> list[SiteProfile]:
    """``n_sites`` seeded scanner profiles named site-1..site-S (module docstring)."""
    rng, thickness = np.random.default_rng([seed, 7]), np.random.default_rng([seed, 8])
    return [SiteProfile(f"site-{k + 1}", float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.7, 1.6)),
                        float(rng.uniform(0.5, 2.0)), float(thickness.uniform(1.0, 3.0))) for k in range(int(n_sites))]


@dataclass(frozen=True)
class BrainSubject:
    """One synthetic subject: ``image`` float32 (z, y, x) in [0, 1], ``mask`` bool lesion mask, ``tissue``
    float32 (3, z, y, x) GM/WM/CSF probabilities (after any mass effect), ``lesions`` their parameters."""

    image: np.ndarray
    mask: np.ndarray
    tissue: np.ndarray
    affine: np.ndarray
    lesions: list[dict[str, Any]]
    voxel_ml: float = 0.0  # volume of one voxel in millilitres
    regions: np.ndarray | None = None  # the template's atlas labels (z, y, x) int16 warped with the anatomy

    def tissue_volumes(self) -> dict[str, float]:
        """``gm_ml``, ``wm_ml``, ``csf_ml``: the tissue probability maps summed, in millilitres."""
        return {f"{t}_ml": float(self.tissue[n].sum() * self.voxel_ml) for n, t in enumerate(TISSUES)}

    @property
    def brain(self) -> np.ndarray:
        return self.tissue.sum(axis=0) > 0.5

    @property
    def labels(self) -> np.ndarray:
        """The tissue label map (z, y, x) uint8: 0 background, then ``TISSUE_LABELS`` (1 GM, 2 WM, 3 CSF), each
        brain voxel labelled by its most probable tissue."""
        return np.where(self.brain, self.tissue.argmax(axis=0) + 1, 0).astype(np.uint8)


def check_size(size: int) -> int:
    size = int(size)
    if size < MIN_SIZE or size & (size - 1):
        raise ConfigError(f"the brain volume side must be a power of two >= {MIN_SIZE}, got {size}")
    return size


def _rotation(angles: np.ndarray) -> np.ndarray:
    a, b, c = np.deg2rad(angles)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _upsample(coarse: np.ndarray, size: int, order: int = 3) -> np.ndarray:
    """A small 3D array zoomed to ``size``^3 (cubic by default): a smooth random field."""
    return ndimage.zoom(coarse, np.asarray((size,) * 3) / np.asarray(coarse.shape), order=order, mode="nearest")


@dataclass(frozen=True)
class _Anatomy:
    """Everything drawn from the subject's anatomy stream (identical with and without lesions)."""

    matrix: np.ndarray
    shift: np.ndarray
    elastic: np.ndarray  # (3, s, s, s) mm, (x, y, z) components on the (z, y, x) grid
    means: dict[str, float]
    bias: np.ndarray
    noise: np.ndarray


def _draw_anatomy(rng: np.random.Generator, size: int) -> _Anatomy:
    angles, scales, shift = rng.uniform(-10, 10, 3), rng.uniform(0.92, 1.08, 3), rng.normal(0.0, 2.0, 3)
    elastic = np.stack([_upsample(c, size) for c in rng.normal(0.0, 3.0, (3, 5, 5, 5))])
    wm = rng.uniform(0.60, 0.72)
    means = {"wm": wm, "gm": wm * rng.uniform(0.60, 0.75), "csf": rng.uniform(0.05, 0.20)}
    bias = np.exp(_upsample(rng.normal(0.0, 0.1, (4, 4, 4)), size))
    noise = rng.normal(0.0, rng.uniform(0.01, 0.03), (size,) * 3)
    return _Anatomy(_rotation(angles) @ np.diag(scales), shift, elastic, means, bias, noise)


def _template_coordinates(grid: _Grid, anatomy: _Anatomy) -> np.ndarray:
    """(3, s, s, s) template voxel coordinates (x, y, z) of every output voxel (affine + elastic)."""
    s = grid.size
    k, j, i = np.meshgrid(*(np.arange(s, dtype=np.float64),) * 3, indexing="ij")  # (z, y, x) grid
    offset = (s - 1) / 2.0
    p = np.stack([i - offset, j - offset, k - offset]) * grid.spacing  # mm about the centre, (x, y, z)
    q = np.einsum("ab,b...->a...", anatomy.matrix, p) + anatomy.shift[:, None, None, None] + anatomy.elastic
    q = q + grid.centre_mm[:, None, None, None]
    inv = grid.inverse_affine
    return np.einsum("ab,b...->a...", inv[:3, :3], q) + inv[:3, 3][:, None, None, None]


def _sample_maps(grid: _Grid, coords: np.ndarray) -> np.ndarray:
    return np.stack([ndimage.map_coordinates(m, coords, order=1, mode="constant", cval=0.0) for m in grid.maps])


def subject_atrophy(seed: int, index: int) -> tuple[float, float]:
    """(atrophy in [0, 1], age in years) of subject ``index`` (module docstring)."""
    rng = np.random.default_rng([seed, index, 3])
    atrophy = float(rng.uniform(0.0, 1.0))
    return atrophy, float(45.0 + 35.0 * atrophy + rng.normal(0.0, 5.0))


def ventricle_source(tissue: np.ndarray, atrophy: float) -> np.ndarray | None:
    """Where each voxel takes its tissue from when the ventricles enlarge with ``atrophy`` (module docstring);
    None for no atrophy. ``tissue`` (3, s, s, s) are the subject's gm/wm/csf maps before atrophy."""
    if atrophy <= 0.0:
        return None
    size = tissue.shape[-1]
    brain = tissue.sum(axis=0) > 0.5
    grid = np.stack(np.meshgrid(*(np.arange(size, dtype=np.float64),) * 3, indexing="ij"))
    radius = (3.0 * float(brain.sum()) / (4.0 * math.pi)) ** (1.0 / 3.0)
    centre = np.array([float((g * brain).sum() / max(1, brain.sum())) for g in grid])
    deep = brain & (((grid - centre[:, None, None, None]) ** 2).sum(axis=0) < (0.5 * radius) ** 2)
    weight = tissue[2] * deep  # CSF within the inner half of the brain: the ventricles
    if float(weight.sum()) > 0:
        centre = np.array([float((g * weight).sum() / weight.sum()) for g in grid])
    offset = grid - centre[:, None, None, None]
    falloff = np.exp(-(offset**2).sum(axis=0) / (2.0 * 0.25 * radius) ** 2)
    return grid - 0.25 * atrophy * offset * falloff


def _atrophied(tissue: np.ndarray, atrophy: float) -> np.ndarray:
    moved = 0.3 * atrophy * tissue[0]
    return np.stack([tissue[0] - moved, tissue[1], tissue[2] + moved])


def _rescanned(anatomy: _Anatomy, rng: np.random.Generator, size: int) -> _Anatomy:
    """The same anatomy re-acquired: new tissue means, bias, noise and a rigid repositioning (module docstring)."""
    acquisition = _draw_anatomy(rng, size)
    moved = _rotation(rng.uniform(-5, 5, 3))
    return _Anatomy(moved @ anatomy.matrix, moved @ anatomy.shift + rng.normal(0.0, 2.0, 3), anatomy.elastic,
                    acquisition.means, acquisition.bias, acquisition.noise)


def simulate_brain(template: BrainTemplate, seed: int, index: int, *, size: int = 64, lesions: bool = False,
                   mass_effect: bool = False, atrophy: float = 0.0, site: SiteProfile | None = None,
                   scan: int = 0, contrast: str = "t1") -> BrainSubject:
    """Subject ``index`` of the cohort seeded by ``seed`` (module docstring); ``atrophy`` in [0, 1] and ``site``
    (a ``SiteProfile``) default to none; ``scan`` > 0 re-acquires the same subject. ``contrast`` ``t2`` renders
    the same anatomy T2-like: every tissue mean m becomes 1 - m (CSF brightest, then GM, WM darkest; background
    stays 0), so the intensities of a T1/T2 pair are related by no monotone map (an inter-modal pair)."""
    size = check_size(size)
    if contrast not in CONTRASTS:
        raise ConfigError(f"contrast must be one of {', '.join(CONTRASTS)}, got {contrast!r}")
    if not 0.0 <= atrophy <= 1.0:
        raise ConfigError(f"atrophy must lie in [0, 1], got {atrophy}")
    if scan < 0:
        raise ConfigError(f"scan must be >= 0, got {scan}")
    if scan > 0 and lesions:
        raise ConfigError("rescans (scan > 0) of lesioned subjects are not simulated: lesions are placed in scanner "
                          "space, so a repositioned head would move them relative to the anatomy")
    grid = template.grid(size)
    anatomy = _draw_anatomy(np.random.default_rng([seed, index]), size)
    if scan > 0:
        anatomy = _rescanned(anatomy, np.random.default_rng([seed, index, 4, scan]), size)
    if site is not None:
        means = {**anatomy.means, "gm": anatomy.means["gm"] / site.contrast}
        anatomy = _Anatomy(anatomy.matrix, anatomy.shift, anatomy.elastic, means,
                           np.exp(np.log(anatomy.bias) * site.bias), anatomy.noise * site.noise)
    if contrast == "t2":
        anatomy = _Anatomy(anatomy.matrix, anatomy.shift, anatomy.elastic,
                           {k: 1.0 - v for k, v in anatomy.means.items()}, anatomy.bias, anatomy.noise)
    coords = _template_coordinates(grid, anatomy)
    enlarged = ventricle_source(_sample_maps(grid, coords), atrophy)
    if enlarged is not None:
        coords = np.stack([ndimage.map_coordinates(c, enlarged, order=1, mode="nearest") for c in coords])
    tissue = _atrophied(_sample_maps(grid, coords), atrophy)
    found: list[dict[str, Any]] = []
    delta_weight, delta_value = None, None
    mask = np.zeros((size,) * 3, bool)
    if lesions:
        rng = np.random.default_rng([seed, index, 1])
        found = _draw_lesions(rng, tissue, size)
        if mass_effect:
            source = _mass_effect_source(found, size)
            coords = np.stack([ndimage.map_coordinates(c, source, order=1, mode="nearest") for c in coords])
            tissue = _atrophied(_sample_maps(grid, coords), atrophy)
        delta_weight, delta_value, mask = _render_lesions(rng, found, tissue, anatomy.means["wm"], size)
    brain = np.clip(tissue.sum(axis=0), 0.0, 1.0)
    clean = sum(tissue[n] * anatomy.means[t] for n, t in enumerate(TISSUES))
    if delta_weight is not None:
        clean = (1.0 - delta_weight) * clean + delta_weight * delta_value
    inside = brain > 0.05
    signal = clean * anatomy.bias
    if site is not None and site.slice_thickness > 1.0:  # FWHM -> sigma; axis 0 is z (axial slices)
        signal = ndimage.gaussian_filter1d(signal, site.slice_thickness / 2.3548, axis=0, mode="nearest")
    image = np.clip(signal + anatomy.noise * inside, 0.0, 1.0) * inside
    regions = None
    if template.regions is not None:  # nearest neighbour through the same map; kept inside the rendered brain
        regions = ndimage.map_coordinates(template.regions, coords, order=0, mode="constant", cval=0)
        regions = np.where(tissue.sum(axis=0) > 0.5, regions, 0).astype(np.int16)
    return BrainSubject(image.astype(np.float32), mask, tissue.astype(np.float32), grid.affine, found,
                        grid.spacing**3 / 1000.0, regions)


def template_image(template: BrainTemplate, *, size: int = 64, contrast: str = "t1") -> tuple[np.ndarray, np.ndarray]:
    """(image float32 (z, y, x), affine): the template's own anatomy rendered at the identity pose (no affine, no
    elastic displacement) with the middle of every tissue-mean range (WM 0.66, GM 0.66 x 0.675, CSF 0.125; ``t2``:
    1 - each), no bias field and no noise: the atlas that subjects are registered to (``data.template``), as real
    cohorts are registered to the MNI T1 template."""
    size = check_size(size)
    if contrast not in CONTRASTS:
        raise ConfigError(f"contrast must be one of {', '.join(CONTRASTS)}, got {contrast!r}")
    grid = template.grid(size)
    means = {"wm": 0.66, "gm": 0.66 * 0.675, "csf": 0.125}
    if contrast == "t2":
        means = {k: 1.0 - v for k, v in means.items()}
    identity = _Anatomy(np.eye(3), np.zeros(3), np.zeros((3,) + (size,) * 3), means, np.ones((size,) * 3),
                        np.zeros((size,) * 3))
    tissue = _sample_maps(grid, _template_coordinates(grid, identity))
    image = sum(tissue[n] * means[t] for n, t in enumerate(TISSUES)) * (np.clip(tissue.sum(axis=0), 0, 1) > 0.05)
    return np.clip(image, 0.0, 1.0).astype(np.float32), grid.affine


def simulate_brains(n: int, *, size: int = 64, lesions: bool = False, mass_effect: bool = False, seed: int = 0,
                    template: BrainTemplate | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` subjects -> (images float32 (N, D, H, W) in [0, 1], lesion masks bool (N, D, H, W)).

    ``template`` defaults to the real ``mni152`` (fetched through the dataset registry).
    """
    if int(n) < 1:
        raise ConfigError(f"simulate_brains needs n >= 1, got {n}")
    template = template if template is not None else mni152_template()
    subjects = [simulate_brain(template, seed, i, size=size, lesions=lesions, mass_effect=mass_effect)
                for i in range(int(n))]
    return np.stack([s.image for s in subjects]), np.stack([s.mask for s in subjects])


def _draw_lesions(rng: np.random.Generator, tissue: np.ndarray, size: int) -> list[dict[str, Any]]:
    gm, wm = tissue[0], tissue[1]
    brain_voxels = float((tissue.sum(axis=0) > 0.5).sum())
    brain_radius = (3.0 * brain_voxels / (4.0 * math.pi)) ** (1.0 / 3.0)
    # keep centres at least ~2 voxels inside the brain so a blob is never only a rim
    depth = ndimage.distance_transform_edt(tissue.sum(axis=0) > 0.5)
    white = np.argwhere((wm > 0.5) & (depth > 2))
    any_tissue = np.argwhere((gm + wm > 0.5) & (depth > 2))
    if len(any_tissue) == 0:
        raise DataError("no brain tissue to place a lesion in (is the template empty at this size?)")
    lesions = []
    for _ in range(int(rng.integers(1, 4))):
        pool = white if (len(white) and rng.random() < 0.8) else any_tissue
        centre = pool[rng.integers(len(pool))].astype(float)
        radius = brain_radius * math.exp(rng.uniform(math.log(0.08), math.log(0.4)))
        lesions.append({
            "centre": centre.tolist(), "radius": float(radius), "axes": (radius * rng.uniform(0.75, 1.0, 3)).tolist(),
            "rotation": rng.uniform(-180.0, 180.0, 3).tolist(), "sign": 1.0 if rng.random() < 0.5 else -1.0,
            "contrast": float(rng.uniform(0.15, 0.4)), "mass_strength": float(rng.uniform(0.3, 0.6)),
            "centre_tissue": "wm" if pool is white else "tissue",
        })
    return lesions


def _offsets(centre: list[float], size: int) -> np.ndarray:
    grid = np.meshgrid(*(np.arange(size, dtype=np.float64),) * 3, indexing="ij")
    return np.stack([g - c for g, c in zip(grid, centre, strict=True)])  # (3, z, y, x)


def _mass_effect_source(lesions: list[dict[str, Any]], size: int) -> np.ndarray:
    """Where each output voxel takes its tissue from: x - sum_l a_l (x - c_l) exp(-(|x - c_l| / 2 r_l)^2)."""
    grid = np.stack(np.meshgrid(*(np.arange(size, dtype=np.float64),) * 3, indexing="ij"))
    source = grid.copy()
    for lesion in lesions:
        d = _offsets(lesion["centre"], size)
        s2 = (d**2).sum(axis=0)
        source -= lesion["mass_strength"] * d * np.exp(-s2 / (2.0 * lesion["radius"]) ** 2)
    return source


def _render_lesions(rng: np.random.Generator, lesions: list[dict[str, Any]], tissue: np.ndarray, wm_mean: float,
                    size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight, value, mask): the image becomes (1 - weight) x tissue + weight x value."""
    brain = np.clip(tissue.sum(axis=0), 0.0, 1.0)
    weight, value, mask = np.zeros((size,) * 3), np.zeros((size,) * 3), np.zeros((size,) * 3, bool)
    irregular = _upsample(rng.normal(0.0, 1.0, (6, 6, 6)), size)
    irregular /= max(float(irregular.std()), 1e-12)
    texture = _upsample(rng.normal(0.0, 1.0, (8, 8, 8)), size)
    for lesion in lesions:
        d = _offsets(lesion["centre"], size)
        u = np.einsum("ab,b...->a...", _rotation(np.asarray(lesion["rotation"])).T, d)
        rho = np.sqrt(sum((u[a] / lesion["axes"][a]) ** 2 for a in range(3)))
        rho = rho / np.clip(1.0 + 0.15 * irregular, 0.6, 1.4)
        profile = np.exp(-math.log(2.0) * rho**4) * brain
        intensity = wm_mean + lesion["sign"] * lesion["contrast"] + 0.02 * texture
        value = np.where(profile > weight, intensity, value)
        weight = np.maximum(weight, profile)
        inside = (rho <= 1.0) & (brain > 0.5)
        lesion["voxels"] = int(inside.sum())
        mask |= inside
    return weight, value, mask
