"""Volume and cine cohorts -> SampleSet: the ``volume`` (3D) and ``cine`` (3D+time) data modalities.

A cohort is a folder with ``meta.tsv`` (columns ``id``, ``path`` relative to the folder, and any metadata such as
``site`` or subject parameters) or, without it, every ``*.nii`` / ``*.nii.gz`` of the folder and every sub-folder
of DICOM files (ids = file / folder names without the suffix). A ``path`` that is a folder is one DICOM series
(``biolatent.io.dicom.read_dicom_series``: slices sorted along their normal, rescale slope and intercept; a folder
mixing series is an error); volumes only, a cine is a 4D NIfTI. Every volume is in canonical RAS orientation
(``biolatent.io.nifti.read_nifti``), then:

1. grid: with ``spacing`` None every volume must share one voxel spacing (a cohort of mixed spacings is an error
   that asks for ``data.spacing``) and is resized (trilinear) to ``image_size``^3; with ``spacing`` s it is
   resampled to s mm isotropic (``resample``) and centre-cropped / padded (with its minimum) to ``image_size``^3;
2. time (cine): with ``frames`` F the cycle is resampled to F frames by periodic linear interpolation; without,
   every cine must have the same number of frames;
3. alignment (volumes, with ``template``): an affine registration to the template put on the same cube, and the
   volume and its masks resampled on the template's cube (``biolatent.data.volume_alignment``);
4. intensities to [0, 1] per volume (``normalise_intensity``: MRI foreground percentiles, CT window, min-max;
   a cine is normalised over all its frames at once, so contrast changes over the cycle are kept).

Files are read and preprocessed one at a time (``stream_volumes``): only the preprocessed arrays of a cohort are
held, never all its raw images. Arrays are (x, y, z) after the channel axis: volumes (N, 1, S, S, S), cines (N, T,
S, S, S) with the frames in the channel axis. ``mask_column`` (volumes) names a column of anatomy-mask files (same
grid as the image; resized with nearest neighbours) kept in ``SampleSet.fields["mask"]``: an empty mask is an
error. ``lesion_column`` (volumes) names a column of lesion-mask files (empty: no lesion; same grid as the image,
else a one-line error; resized with nearest neighbours) kept in ``SampleSet.fields["lesion"]``. ``group_column``
names the subject/patient column whose codes become ``SampleSet.groups`` (MICLe).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from biolatent.config import CineData, VolumeData
from biolatent.data.inputs import META, join_metadata, read_meta, require_path
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.data.volume_alignment import register_affine, resample_to_template
from biolatent.errors import DataError

SUFFIXES = (".nii.gz", ".nii")
SPACING_TOLERANCE = 1e-3  # relative


def file_stem(path: Path) -> str:
    name = path.name
    return next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)


def list_volumes(folder: Path, text_columns: Sequence[str] = ()) -> tuple[pd.DataFrame, bool]:
    """(table with at least ``id`` and ``path``, whether it came from ``meta.tsv``); DataError if empty."""
    if not folder.is_dir():
        raise DataError(f"volume set not found: {folder} (a folder of NIfTI volumes, optionally with {META})")
    if not (folder / META).is_file():
        files = sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIXES) or _is_dicom_folder(p))
        if not files:
            raise DataError(f"{folder} holds no NIfTI volumes (*.nii, *.nii.gz), no DICOM series folders and no "
                            f"{META}")
        return pd.DataFrame({"id": [file_stem(p) for p in files], "path": [p.name for p in files]}), False
    return read_meta(folder, text_columns, "volumes"), True


def _is_dicom_folder(path: Path) -> bool:
    return path.is_dir() and any(f.suffix.lower() == ".dcm" for f in path.iterdir())


def read_volume(path: Path, ndim: int):
    """A 3D/4D NIfTI file, or a folder holding one DICOM series (3D only), as a ``Volume``."""
    from biolatent.io.dicom import read_dicom_series
    from biolatent.io.nifti import read_nifti

    if path.is_dir():
        if ndim != 3:
            raise DataError(f"{path} is a DICOM folder: cines are read from 4D NIfTI files")
        return read_dicom_series(path)
    return read_nifti(path, ndim=ndim)


def _zoom(data: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    if tuple(data.shape) == tuple(shape):
        return data
    factors = np.asarray(shape, dtype=np.float64) / np.asarray(data.shape, dtype=np.float64)
    return ndimage.zoom(data, factors, order=order, mode="nearest", grid_mode=True)


def centre_fit(data: np.ndarray, size: int, fill: float) -> np.ndarray:
    """Centre-crop or pad (with ``fill``) each of the three axes of ``data`` to ``size``."""
    out = np.full((size,) * 3, fill, dtype=data.dtype)
    src, dst = [], []
    for n in data.shape:
        if n >= size:
            start = (n - size) // 2
            src.append(slice(start, start + size))
            dst.append(slice(0, size))
        else:
            start = (size - n) // 2
            src.append(slice(0, n))
            dst.append(slice(start, start + n))
    out[tuple(dst)] = data[tuple(src)]
    return out


def to_grid(data: np.ndarray, spacing: tuple[float, ...], cfg: VolumeData | CineData, order: int) -> np.ndarray:
    """One 3D array onto the cohort's cube (module docstring, step 1)."""
    from biolatent.data.volume_preprocessing import resample
    from biolatent.io.nifti import Volume

    size = cfg.image_size
    if cfg.spacing is None:
        return _zoom(data, (size,) * 3, order)
    fine = resample(Volume(data, spacing[:3], np.diag([*spacing[:3], 1.0])), cfg.spacing, order=order).data
    return centre_fit(fine, size, float(data.min()))


def resample_cycle(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """(..., T) samples of a periodic cycle -> (..., n_frames) by linear interpolation on the circle."""
    t = frames.shape[-1]
    if t == n_frames:
        return frames
    position = np.arange(n_frames) * t / n_frames
    lower = np.floor(position).astype(int)
    weight = (position - lower).astype(frames.dtype)
    return frames[..., lower % t] * (1 - weight) + frames[..., (lower + 1) % t] * weight


def normalise_volume(data: np.ndarray, cfg: VolumeData | CineData, what: str) -> np.ndarray:
    from biolatent.data.volume_preprocessing import normalise_intensity

    if cfg.normalise == "none":
        return data.astype(np.float32)
    try:
        return normalise_intensity(data, cfg.normalise, center=cfg.ct_center, width=cfg.ct_width)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None


def _check_spacings(spacings: list[tuple[float, ...]], ids: list[str], folder: Path) -> None:
    first = np.asarray(spacings[0][:3])
    for sid, spacing in zip(ids, spacings, strict=True):
        if not np.allclose(spacing[:3], first, rtol=SPACING_TOLERANCE):
            shown = lambda s: "x".join(f"{v:g}" for v in s[:3])  # noqa: E731
            raise DataError(f"{folder}: volumes have different voxel spacings ({shown(spacings[0])} mm in "
                            f"{ids[0]!r}, {shown(spacing)} mm in {sid!r}): set data.spacing to resample them")


def _groups(obs: pd.DataFrame, column: str | None) -> torch.Tensor | None:
    if column is None:
        return None
    if column not in obs.columns:
        raise DataError(f"data.group_column {column!r} is not a metadata column "
                        f"(columns: {', '.join(map(str, obs.columns)) or 'none'})")
    values = obs[column].astype(str)
    if (values.str.strip() == "").any() or obs[column].isna().any():
        raise DataError(f"data.group_column {column!r} has empty values: every sample needs its subject")
    return torch.as_tensor(pd.factorize(values)[0], dtype=torch.long)


def _read_cohort(cfg: VolumeData | CineData):
    """(folder, table, ids, obs) of a cohort; no image is read yet."""
    folder = require_path(cfg.path, cfg.modality)
    columns = [c for c in (getattr(cfg, "mask_column", None), getattr(cfg, "lesion_column", None)) if c]
    table, _ = list_volumes(folder, columns)
    if cfg.max_samples is not None:
        table = table.iloc[: cfg.max_samples]
    for key, column in (("mask_column", getattr(cfg, "mask_column", None)),
                        ("lesion_column", getattr(cfg, "lesion_column", None))):
        if column is not None and column not in table.columns:
            raise DataError(f"data.{key} {column!r} is not a column of {folder / META}")
    ids = [str(v) for v in table["id"]]
    obs = table.drop(columns=["id"]).set_index(pd.Index(ids))
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    return folder, table, ids, obs


def stream_volumes(folder: Path, table: pd.DataFrame, ids: list[str], ndim: int, check_spacing: bool):
    """Yield ``(id, Volume)`` one file at a time, so that a cohort's raw images are never all in memory at once
    (only the preprocessed arrays are kept); each checked for NaN/inf and, with ``check_spacing``, for the
    voxel spacing of the first volume."""
    first: tuple[str, tuple[float, ...]] | None = None
    for sid, path in zip(ids, table["path"], strict=True):
        volume = read_volume(folder / str(path), ndim)
        if not np.isfinite(volume.data).all():
            raise DataError(f"volume {sid!r} holds NaN or inf intensities")
        if check_spacing:
            if first is None:
                first = (sid, tuple(volume.spacing))
            else:
                _check_spacings([first[1], tuple(volume.spacing)], [first[0], sid], folder)
        yield sid, volume


def template_cube(cfg: VolumeData) -> np.ndarray | None:
    """``data.template`` on the cohort's cube (module docstring, step 3), or None without one."""
    if cfg.template is None:
        return None
    if not Path(cfg.template).is_file():
        raise DataError(f"data.template not found: {cfg.template} (a NIfTI volume)")
    volume = read_volume(Path(cfg.template), 3)
    if not np.isfinite(volume.data).all():
        raise DataError(f"data.template {cfg.template} holds NaN or inf intensities")
    return to_grid(volume.data, volume.spacing, cfg, 1)


def _aligned(grid: np.ndarray, masks: Sequence[np.ndarray], template: np.ndarray | None, sid: str,
             ) -> tuple[np.ndarray, list[np.ndarray]]:
    """A volume's cube and its masks' cubes, on the template's cube when there is one (module docstring, step 3)."""
    if template is None:
        return grid, list(masks)
    transform = register_affine(grid, template, f"volume {sid!r}")
    return (resample_to_template(grid, transform, template.shape),
            [resample_to_template(m, transform, template.shape, nearest=True) for m in masks])


def preprocess_volume(path: Path, sid: str, cfg: VolumeData, spacing: tuple[float, ...] | None,
                      template: np.ndarray | None = None) -> np.ndarray:
    """One volume file -> its (S, S, S) float32 grid, as ``load_volume`` makes it; ``spacing``: the cohort's shared
    spacing that it must have (``data.spacing`` unset); ``template``: ``template_cube(cfg)``."""
    volume = read_volume(path, 3)
    if not np.isfinite(volume.data).all():
        raise DataError(f"volume {sid!r} holds NaN or inf intensities")
    if spacing is not None and not np.allclose(volume.spacing[:3], spacing[:3], rtol=SPACING_TOLERANCE):
        raise DataError(f"volume {sid!r} has voxel spacing {volume.spacing[:3]}, not the cohort's {spacing[:3]}: "
                        "set data.spacing to resample them")
    grid, _ = _aligned(to_grid(volume.data, volume.spacing, cfg, 1), (), template, sid)
    return normalise_volume(grid, cfg, f"volume {sid!r}")


def load_lazy_volumes(cfg: VolumeData, folder: Path, table: pd.DataFrame, ids: list[str],
                      obs: pd.DataFrame) -> SampleSet:
    """``data.lazy``: the cohort as ``LazyVolumes`` (read per batch; ``biolatent.data.lazy_volumes``). Without
    ``data.spacing`` the voxel spacings are checked from the headers first, so a mixed cohort fails before
    training."""
    from functools import partial

    from biolatent.data.lazy_volumes import LazyVolumes, grid_settings
    from biolatent.io.nifti import read_nifti_spacing

    for key in ("mask_column", "lesion_column"):
        if getattr(cfg, key) is not None:
            raise DataError(f"data.lazy reads volumes per batch; data.{key} (masks held in memory) needs data.lazy: "
                            "false")
    paths = [folder / str(p) for p in table["path"]]
    shared = None
    if cfg.spacing is None:
        spacings = [read_volume(p, 3).spacing if p.is_dir() else read_nifti_spacing(p) for p in paths]
        _check_spacings([tuple(s) for s in spacings], ids, folder)
        shared = tuple(spacings[0])
    template = template_cube(cfg)
    preprocess = partial(preprocess_volume, cfg=cfg, spacing=shared, template=template)
    settings = grid_settings(cfg)
    if template is not None:  # the cache key follows the template's content, not only its path
        settings += f"|template={hashlib.sha256(template.tobytes()).hexdigest()}"
    x = LazyVolumes(paths, ids, cfg.image_size, preprocess, settings, cfg.cache_dir)
    info = DataInfo(modality="volume", channels=1, image_size=cfg.image_size, spatial_dims=3)
    return SampleSet(info, x, obs, groups=_groups(obs, cfg.group_column))  # type: ignore[arg-type]


def load_volume(cfg: VolumeData) -> SampleSet:
    """A volume cohort -> float32 (N, 1, S, S, S) (module docstring), read one volume at a time (or, with
    ``data.lazy``, when a batch needs it)."""
    folder, table, ids, obs = _read_cohort(cfg)
    if cfg.lazy:
        return load_lazy_volumes(cfg, folder, table, ids, obs)
    size = cfg.image_size
    x = np.empty((len(ids), 1, size, size, size), dtype=np.float32)
    masks = np.empty((len(ids), 1, size, size, size), dtype=bool) if cfg.mask_column is not None else None
    lesions = np.zeros((len(ids), 1, size, size, size), dtype=bool) if cfg.lesion_column is not None else None
    template = template_cube(cfg)
    for i, (sid, volume) in enumerate(stream_volumes(folder, table, ids, 3, cfg.spacing is None)):
        read = {}
        if masks is not None:
            read["mask"] = _read_mask(folder, sid, table[cfg.mask_column].iloc[i], volume, cfg)
        if lesions is not None and str(table[cfg.lesion_column].iloc[i]).strip():
            read["lesion"] = _read_mask(folder, sid, table[cfg.lesion_column].iloc[i], volume, cfg, "lesion")
        grid, aligned = _aligned(to_grid(volume.data, volume.spacing, cfg, 1), list(read.values()), template, sid)
        x[i, 0] = normalise_volume(grid, cfg, f"volume {sid!r}")
        for key, mask in zip(read, aligned, strict=True):
            (masks if key == "mask" else lesions)[i, 0] = mask  # type: ignore[index]
    fields: dict[str, torch.Tensor] = {} if masks is None else {"mask": torch.from_numpy(masks)}
    if lesions is not None:
        fields["lesion"] = torch.from_numpy(lesions)
    info = DataInfo(modality="volume", channels=1, image_size=cfg.image_size, spatial_dims=3)
    return SampleSet(info, torch.from_numpy(x), obs, fields=fields, groups=_groups(obs, cfg.group_column))


def _read_mask(folder: Path, sid: str, relative: object, volume, cfg: VolumeData, kind: str = "anatomy",
               ) -> np.ndarray:
    """bool (S, S, S): a mask file on its volume's grid, put on the cohort's cube with nearest neighbours."""
    from biolatent.io.nifti import read_nifti

    relative = str(relative).strip()
    if not relative:
        raise DataError(f"anatomy mask of {sid!r} is missing (empty {cfg.mask_column!r} in {folder / META})")
    if not (folder / relative).is_file():
        raise DataError(f"{kind} mask of {sid!r} not found: {folder / relative}")
    mask = read_nifti(folder / relative, ndim=3)
    if mask.data.shape != volume.data.shape:
        raise DataError(f"{kind} mask of {sid!r} has shape {mask.data.shape} but its volume has "
                        f"{volume.data.shape} (shape mismatch)")
    fitted = to_grid((mask.data > 0.5).astype(np.float32), volume.spacing, cfg, 0) > 0.5
    if kind == "anatomy" and not fitted.any():
        raise DataError(f"anatomy mask of {sid!r} is empty ({relative}): anatomy-aware masking needs foreground")
    return fitted


def load_cine(cfg: CineData) -> SampleSet:
    """A cine cohort (4D NIfTI) -> float32 (N, T, S, S, S) (module docstring), read one cine at a time."""
    folder, table, ids, obs = _read_cohort(cfg)
    size = cfg.image_size
    x: np.ndarray | None = None
    first_count: tuple[str, int] | None = None
    for i, (sid, volume) in enumerate(stream_volumes(folder, table, ids, 4, cfg.spacing is None)):
        count = int(volume.data.shape[3])
        if first_count is None:
            first_count = (sid, count)
        elif cfg.frames is None and count != first_count[1]:
            raise DataError(f"cines have different numbers of frames ({first_count[1]} in {first_count[0]!r}, "
                            f"{count} in {sid!r}): set data.frames to resample every cycle to one number")
        n_frames = cfg.frames or first_count[1]
        if x is None:
            x = np.empty((len(ids), n_frames, size, size, size), dtype=np.float32)
        data = resample_cycle(volume.data, n_frames)
        grid = np.stack([to_grid(data[..., t], volume.spacing, cfg, 1) for t in range(n_frames)])
        x[i] = normalise_volume(grid, cfg, f"cine {sid!r}")
    assert x is not None  # list_volumes refuses an empty cohort
    info = DataInfo(modality="cine", channels=1, image_size=cfg.image_size, spatial_dims=3, frames=int(x.shape[1]))
    return SampleSet(info, torch.from_numpy(x), obs, groups=_groups(obs, cfg.group_column))
