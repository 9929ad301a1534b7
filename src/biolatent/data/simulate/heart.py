"""A 3D+time cardiac cine phantom whose shape and motion follow subject-level parameters.

Geometry (in mm, long axis along z), in the spirit of the XCAT / MRXCAT phantoms (Segars et al. 2010, Med
Phys 37:4902; Wissmann et al. 2014, JCMR 16:63) but analytic and small:

* LV cavity: a prolate ellipsoid (short semi-axis ``a``, long semi-axis ``KAPPA * a``) truncated at the base,
  whose full-ellipsoid volume is ``V(t) = EDV * (1 - EF * s(t))`` with the contraction profile
  ``s(t) = sin^2(pi t)`` over one cycle ``t in [0, 1)`` (end-diastole at t = 0, end-systole at t = 0.5);
* LV myocardium: the shell up to an outer ellipsoid ``(a + w, KAPPA * a + w)``; ``w`` at end-diastole is the
  wall thickness and the shell volume is conserved over the cycle (incompressible myocardium), so the wall
  thickens in systole;
* twist: the myocardium carries a tagging-like angular texture ``cos(6 theta)`` rotated by
  ``twist * s(t) * (z - z_apex) / length``, degrees (base rotates most; Buchalter et al. 1990);
* RV cavity: a crescent (ellipsoid beside the LV minus the LV) with the same ejection fraction.

Subject parameters (``PARAMETERS``): ``cavity_volume`` (EDV, mL), ``wall_thickness`` (mm), ``ejection_fraction``
and ``twist`` (degrees). Sites (``SITES``) are scanner profiles: blood / myocardium / background intensity,
noise, bias-field strength. Intensities have partial-volume edges (a logistic of the ellipsoid distance).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError

KAPPA = 1.8  # long / short semi-axis of the LV
BASE_CUT = 0.65  # the LV is cut at z = BASE_CUT * long semi-axis above its centre
TAG_LINES = 6


@dataclass(frozen=True)
class ParameterSpec:
    """Population distribution of a subject parameter: normal(mean, sd) clipped to [low, high]."""

    mean: float
    sd: float
    low: float
    high: float
    unit: str


PARAMETERS: dict[str, ParameterSpec] = {
    "cavity_volume": ParameterSpec(150.0, 25.0, 80.0, 230.0, "mL"),
    "wall_thickness": ParameterSpec(9.0, 1.3, 5.0, 14.0, "mm"),
    "ejection_fraction": ParameterSpec(0.60, 0.06, 0.35, 0.80, "fraction"),
    "twist": ParameterSpec(15.0, 4.0, 3.0, 30.0, "degrees"),
}


@dataclass(frozen=True)
class SiteProfile:
    blood: float
    myocardium: float
    background: float
    noise: float
    bias: float


SITES: dict[str, SiteProfile] = {
    "site_a": SiteProfile(blood=1.00, myocardium=0.20, background=0.50, noise=0.03, bias=0.10),
    "site_b": SiteProfile(blood=0.90, myocardium=0.25, background=0.60, noise=0.05, bias=0.20),
    "site_c": SiteProfile(blood=1.10, myocardium=0.15, background=0.45, noise=0.04, bias=0.15),
}


@dataclass(frozen=True)
class Grid:
    """Voxel grid of the phantom: ``shape`` (x, y, z) voxels of ``spacing`` mm, ``n_frames`` per cycle."""

    shape: tuple[int, int, int] = (48, 48, 24)
    spacing: tuple[float, float, float] = (3.5, 3.5, 7.0)
    n_frames: int = 10


def draw_parameters(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` subjects' parameters drawn independently from ``PARAMETERS``."""
    return parameters_from_scores(pd.DataFrame(rng.standard_normal((n, len(PARAMETERS))), columns=list(PARAMETERS)))


def parameters_from_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Standard-normal scores (one column per parameter name) -> parameters on their scale, clipped."""
    unknown = [c for c in scores.columns if c not in PARAMETERS]
    if unknown:
        raise DataError(f"unknown heart parameters {unknown} (known: {', '.join(PARAMETERS)})")
    out = pd.DataFrame(index=scores.index)
    for name, spec in PARAMETERS.items():
        z = scores[name].to_numpy(float) if name in scores else np.zeros(len(scores))
        out[name] = np.clip(spec.mean + spec.sd * z, spec.low, spec.high)
    return out


def contraction(t: np.ndarray | float) -> np.ndarray:
    """``s(t) = sin^2(pi t)``: 0 at end-diastole (t = 0), 1 at end-systole (t = 0.5)."""
    return np.sin(np.pi * np.asarray(t, float)) ** 2


def _short_axis(volume_ml: float) -> float:
    """Short semi-axis (mm) of the prolate ellipsoid of ``volume_ml`` mL with long/short ratio KAPPA."""
    return float((3.0 * volume_ml * 1000.0 / (4.0 * np.pi * KAPPA)) ** (1.0 / 3.0))


def _shell_volume(a: float, w: float) -> float:
    return 4.0 / 3.0 * np.pi * ((a + w) ** 2 * (KAPPA * a + w) - KAPPA * a**3)


def wall_over_cycle(edv_ml: float, ef: float, wall_mm: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(short semi-axis a(t), wall thickness w(t)) with conserved myocardial volume (bisection on w)."""
    a = np.array([_short_axis(edv_ml * (1.0 - ef * s)) for s in contraction(t)])
    target = _shell_volume(_short_axis(edv_ml), wall_mm)
    w = np.empty_like(a)
    for i, ai in enumerate(a):
        low, high = 0.0, 10.0 * wall_mm + 50.0
        for _ in range(60):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if _shell_volume(ai, mid) < target else (low, mid)
        w[i] = 0.5 * (low + high)
    return a, w


def _soft_inside(distance: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume occupancy of a region whose signed normalised distance is ``distance`` (< 0 inside)."""
    return 1.0 / (1.0 + np.exp(np.clip(distance / width, -50.0, 50.0)))


def _coordinates(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    axes = [(np.arange(n) - (n - 1) / 2.0) * d for n, d in zip(grid.shape, grid.spacing, strict=True)]
    return np.meshgrid(*axes, indexing="ij")


def occupancy(params: dict[str, float], grid: Grid = Grid()) -> dict[str, np.ndarray]:
    """Partial-volume fractions (x, y, z, t) of ``lv_cavity``, ``myocardium``, ``rv_cavity`` and the
    myocardial tag ``texture`` (multiplier around 1), noise-free."""
    xx, yy, zz = _coordinates(grid)
    t = np.arange(grid.n_frames) / grid.n_frames
    a_t, w_t = wall_over_cycle(params["cavity_volume"], params["ejection_fraction"], params["wall_thickness"], t)
    a_ed, w_ed = a_t[0], w_t[0]
    centre_z = -0.25 * KAPPA * a_ed  # the apex points to -z, the base plane stays inside the field of view
    theta = np.arctan2(yy, xx)
    edge = 0.6 * min(grid.spacing)  # partial-volume width in mm
    out = {key: np.empty((*grid.shape, grid.n_frames), dtype=np.float32)
           for key in ("lv_cavity", "myocardium", "rv_cavity", "texture")}
    zc = zz - centre_z
    base = BASE_CUT * KAPPA * a_ed
    below_base = _soft_inside(zc - base, edge)
    for f, (a, w, s) in enumerate(zip(a_t, w_t, contraction(t), strict=True)):
        cavity_r = np.sqrt((xx / a) ** 2 + (yy / a) ** 2 + (zc / (KAPPA * a)) ** 2)
        outer_r = np.sqrt((xx / (a + w)) ** 2 + (yy / (a + w)) ** 2 + (zc / (KAPPA * a + w)) ** 2)
        cavity = _soft_inside((cavity_r - 1.0) * a, edge) * below_base
        outer = _soft_inside((outer_r - 1.0) * (a + w), edge) * below_base
        rv_centre = -(a + w) - 0.2 * (a_ed + w_ed)
        rv_scale = 1.0 - 0.5 * params["ejection_fraction"] * s  # RV contracts with the same EF (area ~ scale^2)
        rv_r = np.sqrt(((xx - rv_centre) / (0.75 * (a_ed + w_ed) * rv_scale)) ** 2
                       + (yy / (1.3 * (a_ed + w_ed) * rv_scale)) ** 2 + (zc / (0.9 * KAPPA * a_ed)) ** 2)
        rotation = np.deg2rad(params["twist"]) * s * (zc + KAPPA * (a + w)) / (KAPPA * (a + w) + base)
        out["lv_cavity"][..., f] = cavity
        out["myocardium"][..., f] = np.clip(outer - cavity, 0.0, 1.0)
        out["rv_cavity"][..., f] = np.clip(_soft_inside((rv_r - 1.0) * a_ed, edge) * below_base - outer, 0.0, 1.0)
        out["texture"][..., f] = 1.0 + 0.25 * np.cos(TAG_LINES * (theta - rotation))
    return out


def render_cine(params: dict[str, float], site: str, rng: np.random.Generator, grid: Grid = Grid()) -> np.ndarray:
    """Cine of one subject: float32 (x, y, z, t) intensities (site profile, texture, bias field, noise)."""
    if site not in SITES:
        raise DataError(f"unknown site {site!r} (choose from {', '.join(SITES)})")
    profile = SITES[site]
    parts = occupancy(params, grid)
    xx, yy, zz = _coordinates(grid)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    extent = np.array([xx.max(), yy.max(), zz.max()]) + 1e-9
    bias = 1.0 + profile.bias * (xx * direction[0] / extent[0] + yy * direction[1] / extent[1]
                                 + zz * direction[2] / extent[2])
    blood = np.clip(parts["lv_cavity"] + parts["rv_cavity"], 0.0, 1.0)
    tissue = np.clip(1.0 - blood - parts["myocardium"], 0.0, 1.0)
    image = (blood * profile.blood + parts["myocardium"] * profile.myocardium * parts["texture"]
             + tissue * profile.background) * bias[..., None]
    return (image + rng.normal(0.0, profile.noise, size=image.shape)).astype(np.float32)


def end_phase_slices(cine: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) summary image: mid short-axis slice at end-diastole (R), at end-systole (G), and the
    central long-axis slice at end-diastole resampled to the same size (B). Intensities mapped 0..1.3 -> 0..255.
    """
    _, ny, nz, nt = cine.shape
    mid_z, es = nz // 2 - nz // 8, nt // 2
    long_axis = cine[:, ny // 2, :, 0]  # (x, z)
    zi = np.linspace(0, nz - 1, ny)
    resampled = np.stack([np.interp(zi, np.arange(nz), row) for row in long_axis])  # (x, ny)
    planes = [cine[:, :, mid_z, 0], cine[:, :, mid_z, es], resampled]
    stacked = np.stack(planes, axis=-1)
    return (np.clip(stacked / 1.3, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def simulate_heart_cohort(
    n: int,
    out_dir: str | Path,
    *,
    seed: int = 0,
    parameters: pd.DataFrame | None = None,
    grid: Grid = Grid(),
    write_png: bool = False,
    records: bool = False,
    prevalence: float = 0.03,
    progress=None,
) -> Path:
    """Write ``n`` subjects' cines (``cine/<id>.nii.gz``, 4D NIfTI) and ``meta.tsv``; return meta.tsv's path.

    ``parameters``: one row per subject (index = ids) with some or all ``PARAMETERS`` columns (the rest are
    drawn); e.g. the output of ``discover.genetics.simulate.heart_parameters`` to drive the hearts by
    genotypes. ``write_png``: also ``slices/<id>.png`` (``end_phase_slices``) for 2D methods.
    meta.tsv columns: id, path, site, every parameter, stroke_volume (mL).

    ``records``: each person also gets a latent health state that shifts the heart parameters and drives
    health records (``data.simulate.records``, a rare disease of prevalence ``prevalence``): ``records.tsv``
    (patient, time, code, value) and the state's columns in meta.tsv (birth_date, landmark_date, age, sex,
    hypertension, diabetes, amyloidosis, heart_failure, last_nt_probnp).
    """
    from biolatent.io.nifti import write_nifti

    rng = np.random.default_rng(seed)
    if parameters is None:
        if n < 1:
            raise DataError(f"--n must be >= 1, got {n}")
        table = draw_parameters(n, rng)
        table.index = pd.Index([f"sub-{i + 1:04d}" for i in range(n)], name="id")
    else:
        drawn = draw_parameters(len(parameters), rng)
        drawn.index = parameters.index.astype(str)
        table = drawn.assign(**{c: parameters[c].to_numpy(float) for c in parameters.columns if c in PARAMETERS})
        table.index.name = "id"
    health, health_rng = None, np.random.default_rng([seed, 7])  # own stream: cines without records unchanged
    if records:
        from biolatent.data.simulate.records import draw_health, heart_failure, heart_scores_from_health

        health = draw_health([str(i) for i in table.index], health_rng, prevalence=prevalence)
        scores = pd.DataFrame({name: (table[name] - spec.mean) / spec.sd for name, spec in PARAMETERS.items()})
        table = parameters_from_scores(heart_scores_from_health(health, scores.set_axis(health.index)))
        table.index.name = "id"
        health["heart_failure"] = heart_failure(table, health, health_rng)
    out_dir = Path(out_dir)
    (out_dir / "cine").mkdir(parents=True, exist_ok=True)
    if write_png:
        (out_dir / "slices").mkdir(exist_ok=True)
    sites = rng.choice(list(SITES), size=len(table))
    paths = []
    for i, (subject, row) in enumerate(table.iterrows()):
        cine = render_cine(row.to_dict(), str(sites[i]), rng, grid)
        path = write_nifti(out_dir / "cine" / f"{subject}.nii.gz", cine, grid.spacing,
                           frame_seconds=1.0 / grid.n_frames)
        paths.append(str(path.relative_to(out_dir)))
        if write_png:
            from biolatent.io.images import write_png as save_png

            save_png(out_dir / "slices" / f"{subject}.png", end_phase_slices(cine))
        if progress is not None and (i + 1) % max(1, len(table) // 10) == 0:
            progress(f"{i + 1}/{len(table)} subjects")
    meta = table.copy()
    meta.insert(0, "site", sites)
    meta.insert(0, "path", paths)
    meta["stroke_volume"] = meta["cavity_volume"] * meta["ejection_fraction"]
    if health is not None:
        from biolatent.data.simulate.records import records_outcomes, simulate_records, write_records

        events = simulate_records(health, table, health_rng)
        write_records(out_dir / "records.tsv", events)
        meta = meta.join(records_outcomes(health, events))
    meta_path = out_dir / "meta.tsv"
    meta.reset_index().to_csv(meta_path, sep="\t", index=False, float_format="%.6g")
    return meta_path
