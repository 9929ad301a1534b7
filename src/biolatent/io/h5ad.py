"""AnnData .h5ad reading with a DataError for missing, corrupt or truncated files."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata
import h5py

from biolatent.errors import DataError


def read_h5ad(path: str | Path) -> anndata.AnnData:
    """Read an .h5ad file fully into memory."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"h5ad file not found: {path}")
    if not h5py.is_hdf5(path):
        raise DataError(f"{path} is not an HDF5/h5ad file (corrupt, truncated or another format)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return anndata.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types for damaged files
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read h5ad file {path} (corrupt or truncated?): {detail}") from None
