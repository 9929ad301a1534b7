"""AnnData .h5ad files: reading with a DataError for missing, corrupt or truncated files; writing atomically with
tables every anndata version can write and read back."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata
import h5py
import pandas as pd

from biolatent.errors import DataError
from biolatent.rundir import atomic_path


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def h5_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` that any anndata can write: the index and every text column as plain ``object`` strings.

    pandas 3 stores text as its own string arrays, which anndata refuses to write unless a global opt-in is set (and
    anndata < 0.11 cannot read back); mixed-type object columns (numbers and text) are not writable at all. Missing
    text becomes the empty string. Categorical, numeric and boolean columns are kept as they are."""
    safe = frame.copy()
    safe.index = pd.Index([str(i) for i in safe.index], dtype=object)
    for column in safe.columns:
        dtype = safe[column].dtype
        if pd.api.types.is_object_dtype(dtype) or (
            pd.api.types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
        ):
            values = [("" if _missing(v) else str(v)) for v in safe[column]]
            safe[column] = pd.Series(values, index=safe.index, dtype=object)
    return safe


def write_h5ad(adata: anndata.AnnData, path: str | Path) -> Path:
    """Write ``adata`` to ``path`` atomically (a reader never sees half a file); its ``obs`` and ``var`` are replaced
    in place by their :func:`h5_safe_frame` (no copy of the matrices); returns ``path``."""
    path = Path(path)
    adata.obs = h5_safe_frame(adata.obs)
    adata.var = h5_safe_frame(adata.var)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        adata.write_h5ad(tmp)
    return path


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
