"""Brain templates for ``simulate.brain``: tissue probability maps (and optionally an atlas label map) on a grid with
their affine, the output grid each cube size uses, and where templates come from (the dataset registry's
``mni152`` and ``colin27-aal``, a folder in their layout, or a tiny analytic ellipsoid for tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from biolatent.errors import DataError

MARGIN = 1.1  # field of view = 1.1 x the brain's largest extent
TISSUES = ("gm", "wm", "csf")


@dataclass
class BrainTemplate:
    """Tissue probability maps (x, y, z) in [0, 1] on a common grid, with its voxel -> mm ``affine`` (RAS)."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    affine: np.ndarray
    name: str = "template"
    regions: np.ndarray | None = None  # an integer atlas label map on the same grid (0 = none), e.g. AAL
    region_names: dict[int, str] = field(default_factory=dict)
    _grids: dict[int, _Grid] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        shapes = {np.shape(self.gm), np.shape(self.wm), np.shape(self.csf)}
        if self.regions is not None:
            shapes.add(np.shape(self.regions))
            self.regions = np.rint(np.asarray(self.regions)).astype(np.int16)
        if len(shapes) != 1 or np.ndim(self.gm) != 3:
            raise DataError(f"template {self.name!r}: gm, wm, csf (and regions) must be 3D maps of one shape, got "
                            f"{sorted(shapes)}")
        if np.shape(self.affine) != (4, 4):
            raise DataError(f"template {self.name!r}: the affine must be 4x4")
        self.gm, self.wm, self.csf = (np.clip(np.asarray(m, np.float32), 0.0, 1.0) for m in (self.gm, self.wm,
                                                                                             self.csf))
        if not (self.gm + self.wm + self.csf > 0.5).any():
            raise DataError(f"template {self.name!r} holds no brain (gm + wm + csf > 0.5 nowhere)")

    def grid(self, size: int) -> _Grid:
        """The output grid of ``size``^3 voxels and the anti-aliased maps (cached per size)."""
        if size not in self._grids:
            self._grids[size] = _make_grid(self, size)
        return self._grids[size]


@dataclass(frozen=True)
class _Grid:
    size: int
    spacing: float  # mm per output voxel (isotropic)
    centre_mm: np.ndarray  # (3,) template mm at the cube centre
    maps: tuple[np.ndarray, ...]  # anti-aliased gm, wm, csf (x, y, z) of the template
    inverse_affine: np.ndarray  # template mm -> template voxel

    @property
    def affine(self) -> np.ndarray:
        """(x, y, z) output voxel index -> template mm."""
        affine = np.diag([self.spacing] * 3 + [1.0])
        affine[:3, 3] = self.centre_mm - self.spacing * (self.size - 1) / 2.0
        return affine


def _make_grid(template: BrainTemplate, size: int) -> _Grid:
    brain = template.gm + template.wm + template.csf > 0.5
    corners = np.argwhere(brain)
    low, high = corners.min(axis=0), corners.max(axis=0)
    box = np.array([[*low, 1.0], [*high, 1.0]]) @ template.affine.T  # template voxel -> mm
    extent = np.abs(box[1, :3] - box[0, :3])
    spacing = float(MARGIN * extent.max() / size)
    voxel = np.sqrt((template.affine[:3, :3] ** 2).sum(axis=0))  # template voxel sizes (mm)
    sigma = np.maximum(0.4 * spacing / voxel, 0.0)
    maps = tuple(ndimage.gaussian_filter(m, sigma=sigma, mode="constant") for m in (template.gm, template.wm,
                                                                                  template.csf))
    return _Grid(size, spacing, (box[0, :3] + box[1, :3]) / 2.0, maps, np.linalg.inv(template.affine))


def load_template(folder: str | Path, name: str = "mni152") -> BrainTemplate:
    """The template in a folder holding ``gm.nii.gz``, ``wm.nii.gz``, ``csf.nii.gz`` (the ``mni152`` layout)."""
    from biolatent.io.nifti import read_nifti

    folder = Path(folder)
    volumes = {t: read_nifti(folder / f"{t}.nii.gz", ndim=3) for t in TISSUES}
    return BrainTemplate(*(volumes[t].data for t in TISSUES), affine=volumes["gm"].affine, name=name)


def mni152_template(progress: Any = None) -> BrainTemplate:
    """The real MNI ICBM152 2009a template, obtained through the dataset registry (``mni152``)."""
    from biolatent.datasets import fetch

    return load_template(fetch("mni152", progress=progress or (lambda _: None)))


def colin27_aal_template(progress: Any = None) -> BrainTemplate:
    """The Colin27 brain with its AAL atlas (116 regions), obtained through the dataset registry (``colin27-aal``):
    its GM/WM/CSF posteriors render the subjects, its AAL map is warped with each subject (``regions``)."""
    import pandas as pd

    from biolatent.datasets import fetch
    from biolatent.io.nifti import read_nifti

    folder = fetch("colin27-aal", progress=progress or (lambda _: None))
    tissue = load_template(folder, name="colin27-aal")
    names = pd.read_csv(folder / "labels.tsv", sep="\t")
    return BrainTemplate(tissue.gm, tissue.wm, tissue.csf, tissue.affine, name="colin27-aal",
                         regions=read_nifti(folder / "labels.nii.gz", ndim=3).data,
                         region_names=dict(zip(names["index"].astype(int), names["name"].astype(str), strict=True)))


ATLASES = {"mni152": mni152_template, "colin27-aal": colin27_aal_template}


def atlas_template(name: str, progress: Any = None) -> BrainTemplate:
    """The template called ``name`` (``ATLASES``: ``mni152``, tissue labels; ``colin27-aal``, AAL's 116 regions)."""
    if name not in ATLASES:
        raise DataError(f"unknown atlas {name!r} (choose from {', '.join(ATLASES)})")
    return ATLASES[name](progress)


def ellipsoid_template(shape: tuple[int, int, int] = (40, 48, 40), spacing: float = 4.0) -> BrainTemplate:
    """A tiny analytic stand-in (for tests): an ellipsoid brain, a GM rind with a wavy inner surface over a WM
    core, and two CSF 'ventricles'; soft (partial volume) edges."""
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    centre = (np.asarray(shape, float) - 1) / 2.0
    u = (idx - centre[:, None, None, None]) / (np.asarray(shape, float)[:, None, None, None] * 0.42)
    radius = np.sqrt((u**2).sum(axis=0))
    soft = lambda d: 1.0 / (1.0 + np.exp(d / 0.03))  # noqa: E731 - a logistic edge
    brain = soft(radius - 1.0)
    inner = 0.72 + 0.06 * np.sin(7 * np.arctan2(u[1], u[0])) * np.cos(5 * u[2])
    wm = brain * soft(radius - inner)
    ventricles = np.maximum(_soft_ellipsoid(u, (0.18, 0.05, 0.1), (0.1, 0.25, 0.14), soft),
                            _soft_ellipsoid(u, (-0.18, 0.05, 0.1), (0.1, 0.25, 0.14), soft))
    csf = brain * ventricles
    wm = wm * (1 - ventricles)
    gm = np.clip(brain - wm - csf, 0.0, 1.0)
    affine = np.diag([spacing] * 3 + [1.0])
    affine[:3, 3] = -spacing * centre
    return BrainTemplate(gm, wm, csf, affine, name="ellipsoid")


def _soft_ellipsoid(u: np.ndarray, centre: tuple[float, ...], axes: tuple[float, ...], soft: Any) -> np.ndarray:
    r = np.sqrt(sum(((u[a] - centre[a]) / axes[a]) ** 2 for a in range(3)))
    return soft(r - 1.0)
