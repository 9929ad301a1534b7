"""A counts matrix that stays in its .h5ad file: rows are read (and densified) only when indexed.

``BackedCounts`` is what ``SampleSet.x`` holds for counts read with ``data.backed`` (``loaders.load_counts``): it
behaves like a read-only float32 (N, G) tensor for ``len``, ``shape``, ``x[i]``, ``x[a:b]``, ``x[index_tensor]``
and ``x[bool_mask]`` (each returns a real tensor of just those rows), so the training loader and
``embed.compute_embeddings`` read it batch by batch and memory does not grow with the number of samples. The matrix
may be dense or CSR sparse (``X``, a layer, or ``raw/X``), in any numeric dtype.

The file's size and modification time are recorded when it is opened and compared at every read: a file changed
during a run raises a one-line ``DataError`` (the outputs are written only at the end, so nothing is written).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sp
import torch

from biolatent.data.lazy_rows import LazyRows
from biolatent.errors import DataError
from biolatent.io.file_stamp import check_unchanged, file_stamp

STREAM_BYTES = 2**30  # data.backed 'auto': stream a matrix whose dense float32 copy would exceed this
CHECK_BYTES = 2**26  # rows read at once by the value checks: about this many bytes of dense float32



def matrix_key(handle: h5py.File, layer: str | None, path: Path) -> str:
    """The HDF5 key of the chosen matrix (``X``, ``layers/<name>``, ``raw/X``), with the loader's errors."""
    if layer is None:
        key = "X"
    elif layer == "raw":
        if "raw" not in handle:
            raise DataError(f"{path} has no raw matrix (data.layer = 'raw')")
        key = "raw/X"
    elif "layers" in handle and layer in handle["layers"]:
        key = f"layers/{layer}"
    else:
        names = list(handle["layers"]) if "layers" in handle else []
        layers = ", ".join(["raw"] * ("raw" in handle) + names) or "none"
        raise DataError(f"{path} has no layer {layer!r} (layers: {layers})")
    if key not in handle:
        raise DataError(f"{path} has no X matrix")
    return key


def matrix_format(node: h5py.Dataset | h5py.Group) -> str:
    """'dense', 'csr' or 'csc' (anndata's ``encoding-type``)."""
    if isinstance(node, h5py.Dataset):
        return "dense"
    encoding = node.attrs.get("encoding-type", "")
    encoding = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
    return {"csr_matrix": "csr", "csc_matrix": "csc"}.get(encoding, encoding or "unknown")


def matrix_shape(node: h5py.Dataset | h5py.Group) -> tuple[int, int]:
    shape = node.shape if isinstance(node, h5py.Dataset) else tuple(node.attrs["shape"])
    return int(shape[0]), int(shape[1])


def matrix_dtype(node: h5py.Dataset | h5py.Group) -> np.dtype:
    return node.dtype if isinstance(node, h5py.Dataset) else node["data"].dtype


class BackedCounts(LazyRows):
    """(N, G) float32 rows of a dense or CSR matrix in an .h5ad file, read when indexed (module docstring).

    ``rows`` are the file rows this matrix shows, in order (the loader's ``min_total`` filter); None = all.
    Picklable (the file is reopened in each worker process).
    """

    dtype = torch.float32
    ndim = 2

    def __init__(self, path: Path, key: str, rows: np.ndarray | None = None,
                 stamp: tuple[int, int, int] | None = None) -> None:
        self.path = Path(path)
        self.key = key
        self.stamp = stamp or file_stamp(self.path)
        self._handle: h5py.File | None = None
        node = self.node
        self.format = matrix_format(node)
        if self.format not in ("dense", "csr"):
            raise ValueError(f"only dense and CSR matrices can be read by row, not {self.format}")
        self.file_rows, self.n_cols = matrix_shape(node)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._indptr = np.asarray(node["indptr"][:], dtype=np.int64) if self.format == "csr" else None

    # -- file access -------------------------------------------------------------------------------------------
    @property
    def node(self) -> h5py.Dataset | h5py.Group:
        if self._handle is None:
            self._handle = h5py.File(self.path, "r")
        return self._handle[self.key]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None
        return state

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def check_unchanged(self) -> None:
        """Raise a ``DataError`` when the file's size, modification time or inode differ from when it was opened."""
        check_unchanged(self.path, self.stamp)

    # -- tensor-like interface ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.file_rows if self.rows is None else int(self.rows.size)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), self.n_cols))

    def __repr__(self) -> str:
        return f"BackedCounts({self.path}:{self.key}, {self.format}, shape={tuple(self.shape)})"

    def take(self, positions: np.ndarray | torch.Tensor) -> BackedCounts:
        """The rows at ``positions`` as another backed matrix (nothing read)."""
        file_rows = self._file_rows(self.positions(positions))
        return BackedCounts(self.path, self.key, file_rows, self.stamp)

    def numpy(self) -> np.ndarray:
        """The whole matrix as dense float32 (N, G) in memory: for the analyses that need every value at once."""
        out = np.empty(tuple(self.shape), dtype=np.float32)
        for start, block in self.blocks():
            out[start : start + block.shape[0]] = block.toarray() if sp.issparse(block) else block
        return out

    # -- reading -----------------------------------------------------------------------------------------------
    def _file_rows(self, positions: np.ndarray) -> np.ndarray:
        return positions if self.rows is None else self.rows[positions]

    def read(self, positions: np.ndarray) -> torch.Tensor:
        """float32 (len(positions), G) of the rows at ``positions`` (non-negative)."""
        block = self.read_raw(self._file_rows(positions))
        dense = block.toarray() if sp.issparse(block) else block
        return torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32))

    def read_raw(self, file_rows: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """The file rows ``file_rows`` in the stored dtype: a dense array, or a CSR matrix (not densified)."""
        self.check_unchanged()
        if file_rows.size == 0:
            return np.zeros((0, self.n_cols), dtype=np.float32)
        unique, inverse = np.unique(file_rows, return_inverse=True)
        first, last = int(unique[0]), int(unique[-1])
        contiguous = last - first + 1 == unique.size
        try:
            block = self._read_span(first, last + 1) if contiguous else self._read_sorted(unique)
        except (OSError, KeyError, ValueError) as exc:  # a file truncated or rewritten under us
            self.check_unchanged()
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"cannot read rows of {self.path} ({self.key}): {detail}") from None
        if unique.size == file_rows.size and np.array_equal(unique, file_rows):
            return block
        return block[inverse]

    def _read_span(self, start: int, stop: int) -> np.ndarray | sp.csr_matrix:
        node = self.node
        if self.format == "dense":
            return node[start:stop]
        assert self._indptr is not None
        lo, hi = int(self._indptr[start]), int(self._indptr[stop])
        indptr = self._indptr[start : stop + 1] - lo
        return sp.csr_matrix((node["data"][lo:hi], node["indices"][lo:hi], indptr), shape=(stop - start, self.n_cols))

    def _read_sorted(self, rows: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """Sorted unique file rows, read as runs of consecutive rows."""
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        runs = [(int(run[0]), int(run[-1]) + 1) for run in np.split(rows, breaks)]
        parts = [self._read_span(start, stop) for start, stop in runs]
        return sp.vstack(parts, format="csr") if self.format == "csr" else np.concatenate(parts)

    def blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, np.ndarray | sp.csr_matrix]]:
        """(position of the first row, rows in the stored dtype) over the whole matrix, about ``CHECK_BYTES`` of
        dense float32 at a time (``block_rows`` rows when given)."""
        step = block_rows or max(1, CHECK_BYTES // (4 * max(self.n_cols, 1)))
        for start in range(0, len(self), step):
            positions = np.arange(start, min(start + step, len(self)))
            yield start, self.read_raw(self._file_rows(positions))


def open_backed(path: Path, layer: str | None,
                backed: bool | str = "auto") -> tuple[BackedCounts, Any, list[str]] | None:
    """(the backed matrix, obs, gene names) of an .h5ad file, or None to read it into memory instead.

    ``backed``: True streams (a dense or CSR matrix; CSC is refused), False never, 'auto' streams a dense or CSR
    matrix whose dense float32 copy would exceed ``STREAM_BYTES``. Only obs and the gene names are read here.
    """
    if backed is False:
        return None
    from anndata.io import read_elem

    if not h5py.is_hdf5(path):
        raise DataError(f"{path} is not an HDF5/h5ad file (corrupt, truncated or another format)")
    stamp = file_stamp(path)
    try:
        with h5py.File(path, "r") as handle:
            key = matrix_key(handle, layer, path)
            node = handle[key]
            fmt, (n, g) = matrix_format(node), matrix_shape(node)
            if fmt not in ("dense", "csr"):
                if backed is True:
                    raise DataError(f"data.backed reads {path} ({layer or 'X'}) row by row: it needs a dense or CSR "
                                    f"matrix, not {fmt} (convert it: adata.X = adata.X.tocsr())")
                return None
            if backed == "auto" and 4 * n * g <= STREAM_BYTES:
                return None
            if not np.issubdtype(matrix_dtype(node), np.number):
                raise DataError(f"{path}: matrix {layer or 'X'} is not numeric ({matrix_dtype(node)})")
            obs = read_elem(handle["obs"])
            var = read_elem(handle["raw/var" if layer == "raw" else "var"])
    except DataError:
        raise
    except Exception as exc:  # h5py/anndata raise many types for damaged files
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read h5ad file {path} (corrupt or truncated?): {detail}") from None
    genes = [str(v) for v in var.index]
    if len(obs) != n or len(genes) != g:
        raise DataError(f"{path}: the matrix is {n} x {g} but obs has {len(obs)} rows and var {len(genes)}")
    return BackedCounts(path, key, stamp=stamp), obs, genes
