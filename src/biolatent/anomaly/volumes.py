"""3D volume sets for anomaly detection: maps and scores (natively in 3D or slice-wise), maps written back on the
input's grid, figures, and the synthetic brain sets.

Volumes are read by the core loader (``data.volume_sets``: ``data.modality: volume``, lesion masks in
``fields["lesion"]``); here arrays are (z, y, x) of canonical RAS (the loader's (x, y, z) transposed): ``v[k]`` is
axial slice ``k``. ``write_volume_map`` puts a (z, y, x) map of the cube back on the input's own grid (resampling
back, undoing the re-orientation) with the input's affine.

``write_brain_set`` writes the synthetic brains of ``biolatent.data.simulate.brain`` in this layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import ndimage

from biolatent.errors import DataError
from biolatent.rundir import atomic_path

META = "meta.tsv"
TEMPLATE_FILE = "template.nii.gz"  # the atlas a simulated set is registered to (``data.template``)


@dataclass(frozen=True)
class VolumeHeader:
    """Where a volume of a set came from: its ``affine`` and ``shape`` as stored, and its file."""

    id: str
    path: Path
    affine: np.ndarray
    shape: tuple[int, ...]


def read_volume_header(path: Path, sid: str) -> VolumeHeader:
    """The stored affine and shape of one NIfTI volume (its header only)."""
    import nibabel as nib

    if not path.is_file():
        raise DataError(f"volume {sid!r} not found: {path}")
    image = nib.load(path)
    return VolumeHeader(sid, path, np.asarray(image.affine), tuple(image.shape[:3]))


def read_volume_headers(folder: str | Path, ids: list[str] | None = None) -> list[VolumeHeader]:
    """The stored affine and shape of the volumes of a set (``data.volume_sets.list_volumes``; those of ``ids``,
    in their order, when given), for writing maps on the input's grid."""
    from biolatent.data.volume_sets import list_volumes

    folder = Path(folder)
    table, _ = list_volumes(folder)
    if ids is not None:
        table = table.set_index(table["id"].astype(str), drop=False).loc[ids]
    return [read_volume_header(folder / str(row.path), str(row.id)) for row in table.itertuples(index=False)]


def save_volume(path: str | Path, volume: np.ndarray, affine: np.ndarray) -> Path:
    """Write a (z, y, x) array (canonical RAS) with ``affine`` (its x, y, z voxel -> mm), atomically."""
    from biolatent.io.nifti import write_nifti

    return write_nifti(path, np.asarray(volume).transpose(2, 1, 0), affine=affine)


def write_volume_map(path: str | Path, volume_map: np.ndarray, header: VolumeHeader) -> Path:
    """A (z, y, x) map of the canonical ``size``^3 grid, written on the input's own grid with its affine."""
    from nibabel import orientations

    from biolatent.io.nifti import write_nifti

    ornt = orientations.io_orientation(header.affine)
    canonical_shape = tuple(int(header.shape[int(axis)]) for axis in ornt[:, 0])  # RAS (x, y, z) sizes
    data = np.asarray(volume_map, np.float32)
    if data.shape != canonical_shape[::-1]:
        data = ndimage.zoom(data, np.asarray(canonical_shape[::-1]) / np.asarray(data.shape), order=1,
                            mode="nearest", grid_mode=True)
    xyz = data.transpose(2, 1, 0)
    back = orientations.ornt_transform(orientations.axcodes2ornt(("R", "A", "S")), ornt)
    return write_nifti(path, orientations.apply_orientation(xyz, back), affine=header.affine)


def write_brain_set(out_dir: str | Path, n: int, *, size: int = 64, lesions: bool = False, mass_effect: bool = False,
                    seed: int = 0, lesion_fraction: float = 0.5, template: Any = None, sites: int = 0,
                    subject_parameters: bool = False, scans_per_subject: int = 1, contrast: str = "t1",
                    exact_fraction: bool = False, say: Callable[[str], object] | None = None) -> Path:
    """``<id>.nii.gz`` (+ ``<id>_mask.nii.gz`` for lesioned subjects), ``meta.tsv``, ``preview.png`` and
    ``template.nii.gz`` (``simulate.brain.template_image``: the atlas for ``data.template``).

    ``scans_per_subject`` = K > 1 writes K scans of every subject (ids ``brain-0001-scan1`` ..; the same anatomy
    re-acquired, each scan at its own site when ``sites`` > 0) with a ``subject`` column: MICLe's positives.

    Every subject's tissue label map (``<id>_labels.nii.gz``, integer: 0 background, 1 GM, 2 WM, 3 CSF) is written
    too, or, when the template carries an atlas (``colin27_aal_template``: AAL), its atlas regions warped with the
    subject, and then ``label_names.tsv`` (index, name) beside ``meta.tsv``; ``contrast`` ``t2`` renders the same
    anatomy T2-like (``simulate.brain``: inter-modal registration).

    ``meta.tsv`` columns: id, path, is_anomaly, mask (empty for none), labels, lesion_voxels, n_lesions, gm_ml,
    wm_ml, csf_ml, and with ``subject_parameters`` atrophy and age, with ``sites`` > 0 site (``simulate.brain``). With
    ``lesions``, a seeded ``lesion_fraction`` of the subjects carries lesions (the others stay healthy; a
    lesioned subject is the healthy subject of the same seed plus its lesions; with ``exact_fraction``, exactly
    round(``lesion_fraction`` x ``n``) seeded subjects, else each with that probability). ``template`` defaults to the
    real ``mni152`` (dataset registry).
    """
    from biolatent.data.simulate.brain import (
        CONTRASTS,
        check_size,
        mni152_template,
        simulate_brain,
        site_profiles,
        subject_atrophy,
        template_image,
    )

    out_dir, size = Path(out_dir), check_size(size)
    if int(n) < 1:
        raise DataError(f"the number of subjects must be >= 1, got {n}")
    if int(sites) < 0:
        raise DataError(f"the number of sites must be >= 0, got {sites}")
    if (out_dir / META).exists():
        raise DataError(f"{out_dir} already holds a set ({META}): choose another --out")
    if lesions and not 0.0 < lesion_fraction <= 1.0:
        raise DataError(f"lesion_fraction must lie in (0, 1], got {lesion_fraction}")
    if mass_effect and not lesions:
        raise DataError("mass effect needs lesions (--lesions)")
    if contrast not in CONTRASTS:
        raise DataError(f"the contrast must be one of {', '.join(CONTRASTS)}, got {contrast!r}")
    if int(scans_per_subject) < 1:
        raise DataError(f"scans per subject must be >= 1, got {scans_per_subject}")
    if lesions and int(scans_per_subject) > 1:
        raise DataError("several scans per subject are simulated for healthy cohorts only (drop --lesions)")
    template = template if template is not None else mni152_template(progress=say)
    draws = np.random.default_rng([seed, 2]).random(int(n))
    if exact_fraction:  # the round(fraction * n) subjects of the smallest draws
        chosen = np.zeros(int(n), bool)
        chosen[np.argsort(draws, kind="stable")[: round(lesion_fraction * int(n))]] = True
    else:
        chosen = draws < lesion_fraction
    chosen &= bool(lesions)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    lesioned: list[tuple[str, np.ndarray, np.ndarray]] = []
    healthy: list[tuple[str, np.ndarray, np.ndarray]] = []
    profiles = site_profiles(int(sites), seed)
    for i in range(int(n)):
        for scan in range(int(scans_per_subject)):
            extra: dict[str, Any] = {}
            atrophy = 0.0
            if subject_parameters:
                atrophy, age = subject_atrophy(seed, i)
                extra.update({"atrophy": round(atrophy, 6), "age": round(age, 3)})
            site = None
            if profiles:
                stream = [seed, i, 2] if scan == 0 else [seed, i, 2, scan]  # scan 1 keeps the single-scan site
                site = profiles[int(np.random.default_rng(stream).integers(len(profiles)))]
                extra["site"] = site.name
            subject = simulate_brain(template, seed, i, size=size, lesions=bool(chosen[i]), mass_effect=mass_effect,
                                     atrophy=atrophy, site=site, scan=scan, contrast=contrast)
            name = f"brain-{i + 1:04d}" + (f"-scan{scan + 1}" if int(scans_per_subject) > 1 else "")
            if int(scans_per_subject) > 1:
                extra["subject"] = f"brain-{i + 1:04d}"
            save_volume(out_dir / f"{name}.nii.gz", subject.image, subject.affine)
            mask = ""
            if chosen[i]:
                mask = f"{name}_mask.nii.gz"
                save_volume(out_dir / mask, subject.mask.astype(np.float32), subject.affine)
            labels = subject.labels if subject.regions is None else subject.regions
            save_volume(out_dir / f"{name}_labels.nii.gz", labels.astype(np.float32), subject.affine)
            rows.append({"id": name, "path": f"{name}.nii.gz", "is_anomaly": int(subject.mask.any()), "mask": mask,
                         "labels": f"{name}_labels.nii.gz",
                         "lesion_voxels": int(subject.mask.sum()), "n_lesions": len(subject.lesions),
                         **{k: round(v, 3) for k, v in subject.tissue_volumes().items()}, **extra})
        shown = lesioned if chosen[i] else healthy
        if len(shown) < 4:
            shown.append((name, subject.image, subject.mask))
        if say is not None and ((i + 1) % max(1, int(n) // 10) == 0 or i + 1 == int(n)):
            say(f"{i + 1}/{n} brains written")
    if template.regions is not None:
        names = template.region_names or {int(k): str(k) for k in np.unique(template.regions) if k}
        with atomic_path(out_dir / "label_names.tsv") as tmp:
            pd.DataFrame({"index": list(names), "name": list(names.values())}).to_csv(tmp, sep="\t", index=False)
    save_volume(out_dir / TEMPLATE_FILE, *template_image(template, size=size, contrast=contrast))
    meta = out_dir / META
    with atomic_path(meta) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False)
    preview_figure((lesioned + healthy)[:4]).savefig(out_dir / "preview.png", dpi=100)
    return meta


def _through(volume: np.ndarray, mask: np.ndarray) -> tuple[int, int, int]:
    """The (z, y, x) point the preview slices pass through: the largest lesion's centre of mass, else the centre."""
    if mask.any():
        components, _ = ndimage.label(mask)
        largest = 1 + int(np.argmax(np.bincount(components.ravel())[1:]))
        return tuple(round(float(c)) for c in ndimage.center_of_mass(components == largest))  # type: ignore[return-value]
    return tuple(s // 2 for s in volume.shape)  # type: ignore[return-value]


def preview_figure(subjects: list[tuple[str, np.ndarray, np.ndarray]]) -> Figure:
    """Rows: subjects; columns: axial, coronal, sagittal slices (through the lesion) with the mask outline."""
    figure = Figure(figsize=(7.5, 2.5 * max(1, len(subjects))))
    axes = np.atleast_2d(figure.subplots(max(1, len(subjects)), 3, squeeze=False))
    for row, (name, volume, mask) in enumerate(subjects):
        z, y, x = _through(volume, mask)
        for column, (plane, outline, title) in enumerate(((volume[z], mask[z], "axial"),
                                                         (volume[:, y], mask[:, y], "coronal"),
                                                         (volume[:, :, x], mask[:, :, x], "sagittal"))):
            axis = axes[row, column]
            axis.imshow(plane, cmap="gray", vmin=0.0, vmax=1.0, origin="lower")
            if outline.any():
                axis.contour(outline.astype(float), levels=[0.5], colors="tab:red", linewidths=0.8)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"{name} {title}", fontsize=7)
    figure.tight_layout()
    return figure


def volume_map_figure(volumes: np.ndarray, maps: np.ndarray, masks: np.ndarray | None, ids: list[str], *,
                      labels: np.ndarray | None = None, n: int = 6) -> Figure:
    """The 2D map grid (image / anomaly map / mask) of one axial slice per volume: through the largest lesion's
    centre of mass when there is a mask, else the middle slice."""
    from biolatent.anomaly.plots import map_grid_figure

    order = np.arange(len(ids)) if labels is None else np.r_[np.flatnonzero(labels), np.flatnonzero(~labels)]
    order = order[:n]
    picks = [_through(volumes[i], masks[i] if masks is not None else np.zeros(1, bool))[0] for i in order]
    images = np.stack([volumes[i, z] for i, z in zip(order, picks, strict=True)])[:, None]
    slices = np.stack([maps[i, z] for i, z in zip(order, picks, strict=True)])
    mask_slices = None if masks is None else np.stack([masks[i, z] for i, z in zip(order, picks, strict=True)])
    names = [f"{ids[i]} z={z}" for i, z in zip(order, picks, strict=True)]
    return map_grid_figure(images[:, :, ::-1], slices[:, ::-1], None if mask_slices is None else mask_slices[:, ::-1],
                           names, n=n)


# --- detection in 3D, or slice-wise (Baur et al. 2021, Medical Image Analysis 69:101952: 2D models on axial slices) ---


def brain_region(volumes: np.ndarray, erosion: int = 0) -> np.ndarray:
    """bool (N, D, H, W): the nonzero voxels of each (skull-stripped) volume, dilated by one voxel (6-connected),
    or with ``erosion`` > 0 eroded by that many voxels (6-connected steps).

    Maps are kept and voxel metrics computed inside it, as brain-MRI anomaly benchmarks do with brain masks; the
    eroded mask is the usual post-processing against the residual rim that reconstruction models leave along
    the brain boundary (e.g. Baur et al. 2021, MedIA 69:101952, constrain their maps to an eroded brain mask).
    Lesion voxels outside the region get a map of 0 and count as missed.
    """
    if erosion > 0:
        return np.stack([ndimage.binary_erosion(v > 0, iterations=int(erosion)) for v in volumes])
    return np.stack([ndimage.binary_dilation(v > 0) for v in volumes])


def brain_slices(volumes: np.ndarray) -> np.ndarray:
    """The axial slices (M, 1, H, W) of (N, D, H, W) volumes that hold any nonzero voxel."""
    slices = volumes.reshape(-1, *volumes.shape[2:])
    keep = slices.reshape(slices.shape[0], -1).max(axis=1) > 0
    if not keep.any():
        raise DataError("the volumes hold no nonzero voxel (no brain to learn from)")
    return slices[keep][:, None]


def volume_maps(detector: Any, volumes: np.ndarray, erosion: int = 0) -> np.ndarray:
    """float32 (N, D, H, W), 0 outside ``brain_region(volumes, erosion)``: a 3D detector's (``spatial_dims`` 3) map
    of each whole volume, or a 2D detector's map of every axial slice that holds brain (0 on the other slices)."""
    if getattr(detector, "spatial_dims", 2) == 3:
        maps = np.asarray(detector.score_maps(volumes[:, None]), np.float32)
        return maps * brain_region(volumes, erosion)
    n, d, h, w = volumes.shape
    slices = volumes.reshape(n * d, h, w)
    keep = np.flatnonzero(slices.reshape(n * d, -1).max(axis=1) > 0)
    maps = np.zeros((n * d, h, w), np.float32)
    if keep.size:
        maps[keep] = detector.score_maps(slices[keep][:, None])
    return maps.reshape(n, d, h, w) * brain_region(volumes, erosion)


def volume_scores(maps: np.ndarray, top_fraction: float, opening_radius: int) -> np.ndarray:
    """(N, D, H, W) -> (N,): each axial slice grey-opened as in the 2D detector, then the top-fraction mean
    over the whole volume's voxel map (the same for maps scored in 3D, slice-wise and the trivial baselines, so
    that their sample scores compare)."""
    from biolatent.anomaly.image.detector import top_fraction_mean

    if opening_radius > 0:
        size = (1, 2 * opening_radius + 1, 2 * opening_radius + 1)
        maps = np.stack([ndimage.grey_opening(m, size=size, mode="reflect") for m in maps])
    return top_fraction_mean(maps, top_fraction)


def brain_slice_index(subject_image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """The axial slice of a subject for a 2D set: through the centre of mass of its largest lesion, else a seeded
    slice in the middle 40% of its brain's axial extent."""
    if mask.any():
        components, count = ndimage.label(mask)
        largest = 1 + int(np.argmax(ndimage.sum(mask, components, range(1, count + 1))))
        return round(float(ndimage.center_of_mass(components == largest)[0]))
    rows = np.flatnonzero(subject_image.reshape(subject_image.shape[0], -1).max(axis=1) > 0)
    low, high = rows.min(), rows.max()
    span = high - low
    return int(rng.integers(low + round(0.3 * span), low + round(0.7 * span) + 1))


def write_brain_slice_set(out_dir: str | Path, n: int, *, size: int = 64, lesions: bool = False, seed: int = 0,
                          lesion_fraction: float = 0.5, template: Any = None,
                          say: Callable[[str], object] | None = None) -> Path:
    """A 2D image set (``biolatent.anomaly.images`` layout) of one axial slice per synthetic brain.

    ``images/<id>.png``, ``masks/<id>.png`` (with ``lesions``) and ``meta.tsv`` (id, path, is_anomaly, mask,
    lesion_pixels, slice): each subject of ``simulate_brain`` (the real MNI152 template by default) gives its
    slice through its largest lesion, or (healthy subjects) a seeded slice of the middle of the brain, so 2D
    detectors are compared on the same synthetic anatomy as the 3D ones.
    """
    from biolatent.data.simulate.brain import check_size, mni152_template, simulate_brain
    from biolatent.io.images import write_png

    out_dir, size = Path(out_dir), check_size(size)
    if int(n) < 1:
        raise DataError(f"the number of subjects must be >= 1, got {n}")
    if (out_dir / META).exists():
        raise DataError(f"{out_dir} already holds a set ({META}): choose another --out")
    if lesions and not 0.0 < lesion_fraction <= 1.0:
        raise DataError(f"lesion_fraction must lie in (0, 1], got {lesion_fraction}")
    template = template if template is not None else mni152_template(progress=say)
    chosen = np.random.default_rng([seed, 2]).random(int(n)) < lesion_fraction if lesions else np.zeros(int(n), bool)
    rng = np.random.default_rng([seed, 3])
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    if lesions:
        (out_dir / "masks").mkdir(exist_ok=True)
    rows = []
    for i in range(int(n)):
        subject = simulate_brain(template, seed, i, size=size, lesions=bool(chosen[i]))
        k = brain_slice_index(subject.image, subject.mask, rng)
        name = f"brainslice-{i + 1:04d}"
        write_png(out_dir / "images" / f"{name}.png", (subject.image[k] * 255).round().astype(np.uint8))
        mask = ""
        if lesions:
            mask = f"masks/{name}.png"
            write_png(out_dir / mask, subject.mask[k].astype(np.uint8) * 255)
        rows.append({"id": name, "path": f"images/{name}.png", "is_anomaly": int(subject.mask[k].any()),
                     "mask": mask, "lesion_pixels": int(subject.mask[k].sum()), "slice": k})
        if say is not None and ((i + 1) % max(1, int(n) // 10) == 0 or i + 1 == int(n)):
            say(f"{i + 1}/{n} brain slices written")
    meta = out_dir / META
    with atomic_path(meta) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False)
    return meta
