"""NIfTI-1 volumes (3D) and cines (4D) with nibabel (Brett et al., nipy/nibabel).

``write_nifti`` writes ``(x, y, z[, t])`` float32 data with a diagonal affine (voxel spacing in mm, RAS) or a
given affine, time step in seconds, atomically. ``read_nifti`` returns the data re-oriented to the closest
canonical (RAS) orientation with its spacing; a file that is not NIfTI or has the wrong number of dimensions
is a DataError (a 3D volume stored with a trailing time axis of length 1 is read as 3D).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolatent.errors import DataError
from biolatent.rundir import atomic_path


@dataclass(frozen=True)
class Volume:
    """Intensities ``(x, y, z[, t])`` in canonical RAS orientation, ``spacing`` (mm, + seconds for 4D)."""

    data: np.ndarray
    spacing: tuple[float, ...]
    affine: np.ndarray


def write_nifti(path: str | Path, data: np.ndarray, spacing: tuple[float, float, float] | None = None, *,
                affine: np.ndarray | None = None, frame_seconds: float | None = None) -> Path:
    """Write ``data`` (x, y, z[, t]) with ``affine``, or the diagonal affine of ``spacing`` (one of the two)."""
    import nibabel as nib

    data = np.asarray(data, dtype=np.float32)
    if data.ndim not in (3, 4):
        raise DataError(f"a NIfTI volume is 3D or 4D, got shape {data.shape}")
    if (spacing is None) == (affine is None):
        raise DataError("write_nifti needs the voxel spacing or the affine (one of the two)")
    affine = np.diag([*map(float, spacing), 1.0]) if affine is None else np.asarray(affine, dtype=np.float64)
    image = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    image.header.set_xyzt_units("mm", "sec")
    if data.ndim == 4 and frame_seconds is not None:
        zooms = (*image.header.get_zooms()[:3], float(frame_seconds))
        image.header.set_zooms(zooms)
    path = Path(path)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    with atomic_path(path) as tmp:
        target = tmp.with_name(tmp.name + suffix)  # nibabel picks compression from the suffix
        nib.save(image, target)
        target.replace(tmp)
    return path


def read_nifti(path: str | Path, *, ndim: int | None = None) -> Volume:
    """The volume of ``path`` in canonical orientation; ``ndim`` (3 or 4) is checked when given."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(f"NIfTI file not found: {path}")
    try:
        image = nib.as_closest_canonical(nib.load(path))
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, zlib errors...
        raise DataError(f"cannot read NIfTI {path}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    if ndim == 3 and data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if ndim is not None and data.ndim != ndim:
        what = {3: "a 3D volume", 4: "a 4D (3D+time) cine"}.get(ndim, f"{ndim}D data")
        raise DataError(f"{path} holds {data.ndim}D data of shape {data.shape}, expected {what}")
    zooms = tuple(float(z) for z in image.header.get_zooms()[: data.ndim])
    return Volume(data, zooms, np.asarray(image.affine))


def read_nifti_spacing(path: str | Path) -> tuple[float, float, float]:
    """The voxel spacing (mm) of the first three axes of ``path`` in canonical orientation, as ``read_nifti``
    gives it, from the header alone (no voxel is read)."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError(f"NIfTI file not found: {path}")
    try:
        image = nib.load(path)
        orientation = nib.io_orientation(image.affine)
        zooms = image.header.get_zooms()
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, zlib errors...
        raise DataError(f"cannot read NIfTI {path}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    spacing = [0.0, 0.0, 0.0]
    for axis, (target, _) in enumerate(orientation[:3]):
        spacing[int(target)] = float(zooms[axis])
    return spacing[0], spacing[1], spacing[2]
