"""10x Visium / Space Ranger output: spot positions, scale factors, tissue images and the expression matrix.

A Space Ranger folder holds ``spatial/tissue_positions_list.csv`` (no header; Space Ranger < 2.0) or
``spatial/tissue_positions.csv`` (with a header; >= 2.0), ``spatial/scalefactors_json.json``,
``spatial/tissue_hires_image.png`` / ``tissue_lowres_image.png`` and the filtered matrix, either as 10x HDF5
(``filtered_feature_bc_matrix.h5``, also gzipped) or as the Matrix Market folder ``filtered_feature_bc_matrix/``.
Positions are in pixels of the full-resolution image; ``tissue_<res>_scalef`` maps them onto the hires /
lowres PNG. The matrix is read with scanpy's 10x readers (``read_10x_h5``, ``read_10x_mtx``).
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from biolatent.errors import DataError

if TYPE_CHECKING:
    import anndata

POSITION_COLUMNS = ("barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres")
POSITION_FILES = ("tissue_positions.csv", "tissue_positions_list.csv")
MATRIX_NAME = "filtered_feature_bc_matrix"
SCALEFACTORS_FILE = "scalefactors_json.json"
SLIDE_SUFFIXES = (".tif", ".tiff", ".svs")


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def find_positions(folder: Path) -> Path:
    """``spatial/tissue_positions.csv`` or ``spatial/tissue_positions_list.csv`` (optionally ``.gz``)."""
    found = _first_existing(folder / "spatial", POSITION_FILES)
    if found is None:
        raise DataError(f"{folder} is not a Space Ranger folder: no spatial/tissue_positions.csv or "
                        "spatial/tissue_positions_list.csv")
    return found


def read_positions(path: str | Path) -> pd.DataFrame:
    """A tissue positions table (with or without its header line) -> index barcode, the five numeric columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"positions table not found: {path}")
    try:
        first = pd.read_csv(path, header=None, nrows=1, dtype=str)
        header = 0 if str(first.iloc[0, 0]).strip().lower() == "barcode" else None
        table = pd.read_csv(path, header=header, names=None if header == 0 else list(POSITION_COLUMNS),
                            dtype={"barcode": str})
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read positions table {path}: {str(exc).splitlines()[0]}") from None
    missing = [c for c in POSITION_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"positions table {path} lacks the column(s) {', '.join(missing)} (expected "
                        f"{', '.join(POSITION_COLUMNS)})")
    table = table.set_index("barcode")[list(POSITION_COLUMNS[1:])]
    table.index = table.index.astype(str)
    if table.index.has_duplicates:
        raise DataError(f"positions table {path}: duplicate barcode {table.index[table.index.duplicated()][0]!r}")
    numeric = table.apply(pd.to_numeric, errors="coerce")
    if numeric.isna().any().any():
        column = str(numeric.columns[numeric.isna().any()][0])
        raise DataError(f"positions table {path}: column {column} has a missing or non-numeric value")
    return numeric


def read_scalefactors(folder: Path) -> dict[str, float]:
    """``spatial/scalefactors_json.json`` as a dict; DataError when absent or not a JSON object."""
    path = folder / "spatial" / SCALEFACTORS_FILE
    if not path.is_file():
        raise DataError(f"missing scale factors: {path} not found")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(values, dict):
        raise DataError(f"{path} must hold a JSON object of scale factors")
    return values


def scale_factor(factors: dict, key: str, where: str) -> float:
    """One positive scale factor, or a one-line DataError naming it."""
    value = factors.get(key)
    if not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
        found = ", ".join(sorted(factors)) or "none"
        raise DataError(f"missing scale factor {key} in {where} (found: {found})")
    return float(value)


def find_matrix(folder: Path) -> Path:
    """The filtered matrix of a Space Ranger folder: ``.h5``, ``.h5.gz`` or the Matrix Market folder."""
    for candidate in (folder / f"{MATRIX_NAME}.h5", folder / f"{MATRIX_NAME}.h5.gz", folder / MATRIX_NAME):
        if candidate.exists():
            return candidate
    raise DataError(f"{folder} has no {MATRIX_NAME}.h5, {MATRIX_NAME}.h5.gz or {MATRIX_NAME}/ folder")


def read_matrix(path: Path) -> anndata.AnnData:
    """A 10x matrix (HDF5, gzipped HDF5 or Matrix Market folder) as spots x genes (gene symbols made unique)."""
    import scanpy as sc

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.is_dir():
                adata = sc.read_10x_mtx(path, var_names="gene_symbols", cache=False)
            elif path.name.endswith(".gz"):
                with tempfile.TemporaryDirectory(prefix="biolatent-10x-") as tmp:
                    plain = Path(tmp) / path.name.removesuffix(".gz")
                    with gzip.open(path, "rb") as source, plain.open("wb") as out:
                        shutil.copyfileobj(source, out)
                    adata = sc.read_10x_h5(plain)
            else:
                adata = sc.read_10x_h5(path)
    except Exception as exc:  # h5py, gzip, scipy and pandas raise many types for damaged files
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read the 10x matrix {path} (corrupt or not a 10x matrix?): {detail}") from None
    adata.var_names_make_unique()
    adata.obs_names = adata.obs_names.astype(str)
    return adata


def as_rgb(pixels: np.ndarray, where: str) -> np.ndarray:
    """(H, W), (H, W, C) or planar (C, H, W) pixels of any dtype -> uint8 (H, W, 3); only 1, 3 or 4 channels."""
    from biolatent.io.slide import _as_rgb

    if pixels.ndim == 3 and pixels.shape[0] < pixels.shape[-1] and pixels.shape[0] <= 8:  # planar (C, H, W)
        pixels = np.moveaxis(pixels, 0, -1)
    channels = 1 if pixels.ndim == 2 else pixels.shape[-1]
    if pixels.ndim not in (2, 3) or channels not in (1, 3, 4):
        raise DataError(f"image {where} has {channels} channels (shape {pixels.shape}); expected RGB (3), RGBA (4) "
                        "or grayscale (1)")
    if channels == 1:
        pixels = pixels.reshape(pixels.shape[:2])
    return _as_rgb(pixels, Path(where))


def read_rgb(path: str | Path) -> np.ndarray:
    """A tissue image (PNG/JPEG, or a TIFF/SVS whole slide at level 0) as uint8 (H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    if path.suffix.lower() in SLIDE_SUFFIXES:
        from biolatent.io.slide import _read_level0

        return as_rgb(_read_level0(path), str(path))
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("P", "PA"):
                image = image.convert("RGBA")
            pixels = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {path} (corrupt or not an image): {exc}") from None
    return as_rgb(pixels, str(path))
