"""DICOM series -> one volume (pydicom): slices sorted in space, rescaled, with spacing and a canonical RAS affine.

A folder (or a list of files) of single-frame DICOM slices becomes the same ``Volume`` as ``read_nifti`` gives
(``biolatent.io.nifti.Volume``): data in the closest canonical (RAS+) orientation, voxel spacing in mm, affine.
Following the DICOM standard (PS3.3 C.7.6.2, Image Plane Module):

* the files are grouped by SeriesInstanceUID; more than one series without a chosen ``series_uid`` is an error
  naming them (a folder of mixed series is a common mistake);
* every slice must share ImageOrientationPatient, Rows/Columns and PixelSpacing; the slices are sorted by the
  projection of ImagePositionPatient onto the slice normal (row direction x column direction); two slices at
  one position, or slice gaps that differ by more than ``spacing_tolerance`` (relative), are errors;
* stored values become real-world values with RescaleSlope / RescaleIntercept (CT: Hounsfield units);
* the affine maps voxel (column, row, slice) to patient LPS millimetres, then to RAS (x and y negated), and
  nibabel reorients the data to the closest canonical orientation.

``read_dicom`` opens a path: a folder (series), a single file with one frame (a 2D image such as an X-ray: a
volume of one slice), or a ``.nii``/``.nii.gz`` (delegated to ``read_nifti``), so callers need not care.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from biolatent.errors import DataError
from biolatent.io.nifti import Volume, read_nifti


def _dataset(path: Path, *, pixels: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"cannot read DICOM {path}: {' '.join(str(exc).split()) or type(exc).__name__}") from None


def _floats(header, keyword: str, path: Path, count: int) -> np.ndarray:
    value = getattr(header, keyword, None)
    if value is None or len(value) != count:
        raise DataError(f"DICOM {path} lacks {keyword} ({count} numbers): cannot place the slice in space")
    return np.asarray([float(v) for v in value])


def _files(source: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(source, str | Path):
        folder = Path(source)
        if not folder.exists():
            raise DataError(f"DICOM path not found: {folder}")
        if folder.is_file():
            return [folder]
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        files = [Path(p) for p in source]
    if not files:
        raise DataError(f"no files in {source}")
    return files


def read_dicom_series(source: str | Path | Iterable[str | Path], *, series_uid: str | None = None,
                      spacing_tolerance: float = 0.01) -> Volume:
    """The volume of one DICOM series in a folder (or of the given files); see the module docstring."""
    files = _files(source)
    headers = {}
    for path in files:
        header = _dataset(path, pixels=False)
        if "Rows" not in header or "Columns" not in header:  # pixels are not read yet: image objects have a size
            if len(files) == 1:
                raise DataError(f"DICOM {path} holds no image (SOP class {getattr(header, 'SOPClassUID', '?')})")
            continue  # reports, presentation states and other non-image objects next to a series
        headers[path] = header
    if not headers:
        raise DataError(f"{source}: none of its {len(files)} DICOM files holds an image")
    series: dict[str, list[Path]] = {}
    for path, header in headers.items():
        series.setdefault(str(getattr(header, "SeriesInstanceUID", "")), []).append(path)
    if series_uid is not None:
        if series_uid not in series:
            raise DataError(f"series {series_uid} is not in {source} (series: {', '.join(sorted(series))})")
        chosen = series[series_uid]
    elif len(series) > 1:
        described = ", ".join(f"{uid or '?'} ({len(p)} files)" for uid, p in sorted(series.items()))
        raise DataError(f"{source} mixes {len(series)} DICOM series: {described}; choose one with series_uid")
    else:
        chosen = next(iter(series.values()))
    return _stack([headers[p] for p in chosen], chosen, spacing_tolerance)


def _plane_geometry(header, path: Path, alone: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ImageOrientationPatient, PixelSpacing, ImagePositionPatient); a lone projection image (X-ray) without
    patient geometry gets the identity orientation at the origin and its (Imager)PixelSpacing or 1 mm."""
    if alone and getattr(header, "ImageOrientationPatient", None) is None:
        spacing = getattr(header, "PixelSpacing", None) or getattr(header, "ImagerPixelSpacing", None) or (1.0, 1.0)
        return np.array([1.0, 0, 0, 0, 1.0, 0]), np.array([float(v) for v in spacing]), np.zeros(3)
    return (_floats(header, "ImageOrientationPatient", path, 6), _floats(header, "PixelSpacing", path, 2),
            _floats(header, "ImagePositionPatient", path, 3))


def _stack(headers: list, paths: list[Path], spacing_tolerance: float) -> Volume:
    first = headers[0]
    if int(getattr(first, "NumberOfFrames", 1) or 1) > 1:
        raise DataError(f"DICOM {paths[0]} is multi-frame ({first.NumberOfFrames} frames): multi-frame objects are "
                        "not supported, give single-frame slices")
    alone = len(headers) == 1
    orientation, pixel, _ = _plane_geometry(first, paths[0], alone)  # pixel: (between rows, between columns) mm
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    shape = (int(first.Rows), int(first.Columns))
    positions = []
    for header, path in zip(headers, paths, strict=True):
        slice_orientation, slice_pixel, position = _plane_geometry(header, path, alone)
        if not np.allclose(slice_orientation, orientation, atol=1e-4):
            raise DataError(f"{path}: its orientation differs from the rest of the series (inconsistent series)")
        if (int(header.Rows), int(header.Columns)) != shape or not np.allclose(slice_pixel, pixel, rtol=1e-4):
            raise DataError(f"{path}: its size or pixel spacing differs from the rest of the series "
                            "(inconsistent series)")
        positions.append(position)
    distance = np.array([p @ normal for p in positions])
    order = np.argsort(distance, kind="stable")
    gaps = np.diff(distance[order])
    if len(paths) > 1:
        if np.any(gaps < 1e-3 * max(pixel.min(), 1e-6)):
            i = int(np.argmin(gaps))
            raise DataError(f"{paths[order[i]]} and {paths[order[i + 1]]} lie at the same position: duplicated "
                            "slices or mixed acquisitions in one series")
        if np.ptp(gaps) > spacing_tolerance * gaps.mean():
            raise DataError(f"slice gaps vary from {gaps.min():.4g} to {gaps.max():.4g} mm: missing slices or "
                            "irregular spacing (inconsistent series)")
        slice_gap = float(gaps.mean())
    else:
        slice_gap = float(getattr(first, "SliceThickness", None) or 1.0)
    planes = []
    for i in order:
        full = _dataset(paths[i], pixels=True)
        try:
            pixels = np.asarray(full.pixel_array, dtype=np.float64)
        except Exception as exc:  # missing decoders (JPEG 2000, ...) and corrupt pixel data
            raise DataError(f"cannot decode the pixels of {paths[i]}: {' '.join(str(exc).split())}") from None
        if pixels.shape != shape:
            raise DataError(f"{paths[i]}: pixel data of shape {pixels.shape}, expected {shape} (not a grey image)")
        slope = float(getattr(full, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(full, "RescaleIntercept", 0.0) or 0.0)
        if str(getattr(full, "PhotometricInterpretation", "")) == "MONOCHROME1":
            pixels = pixels.max() - pixels  # MONOCHROME1: low values are bright
        planes.append(pixels * slope + intercept)
    data = np.stack(planes, axis=-1).transpose(1, 0, 2)  # (rows, cols, slices) -> (cols i, rows j, slices k)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * pixel[1]  # along a row: column index i, spacing between columns
    affine_lps[:3, 1] = col_dir * pixel[0]  # along a column: row index j, spacing between rows
    affine_lps[:3, 2] = normal * slice_gap
    affine_lps[:3, 3] = positions[order[0]]
    return _canonical(data.astype(np.float32), np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps)


def _canonical(data: np.ndarray, affine_ras: np.ndarray) -> Volume:
    import nibabel as nib

    image = nib.as_closest_canonical(nib.Nifti1Image(data, affine_ras))
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    return Volume(np.asarray(image.dataobj, dtype=np.float32), zooms, np.asarray(image.affine))


def read_dicom(path: str | Path, *, series_uid: str | None = None) -> Volume:
    """A DICOM series folder, a single-frame DICOM file, or a NIfTI file, as a canonical ``Volume``."""
    path = Path(path)
    if path.name.endswith((".nii", ".nii.gz")):
        return read_nifti(path, ndim=3)
    return read_dicom_series(path, series_uid=series_uid)
