"""Synthetic DICOM series for tests: slices of a CT series with a known geometry, written with pydicom."""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROW_SPACING, COL_SPACING, GAP = 0.8, 0.7, 2.5


def write_slice(path, pixels, *, position, orientation, series_uid, slope=2.0, intercept=-1024.0,
                spacing=(ROW_SPACING, COL_SPACING)):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.Modality = series_uid, "CT"
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_series(folder, stored, orientation, origin, *, uid=None, shuffle=True, gaps=None):
    """``stored`` (slices, rows, cols); slice k at origin + normal * (k * GAP or gaps[k]); files in random order."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or generate_uid()
    normal = np.cross(orientation[:3], orientation[3:])
    order = np.random.default_rng(0).permutation(len(stored)) if shuffle else np.arange(len(stored))
    for name, k in enumerate(order):
        offset = k * GAP if gaps is None else gaps[k]
        write_slice(folder / f"{name:03d}.dcm", stored[k], position=np.asarray(origin) + normal * offset,
                    orientation=orientation, series_uid=uid)
    return uid
