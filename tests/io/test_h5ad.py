"""h5ad reading: content comes back, damaged files give a DataError."""

from __future__ import annotations

import numpy as np
import pytest

from biolatent.data.simulate import simulate_counts
from biolatent.errors import DataError
from biolatent.io.h5ad import read_h5ad


def test_reads_what_was_written(tmp_path):
    adata = simulate_counts(n_cells=20, n_genes=8, n_types=2, seed=1)
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(back.X, adata.X)
    assert list(back.obs["cell_type"]) == list(adata.obs["cell_type"])


def test_missing_corrupt_and_truncated(tmp_path):
    with pytest.raises(DataError, match="h5ad file not found"):
        read_h5ad(tmp_path / "none.h5ad")
    junk = tmp_path / "junk.h5ad"
    junk.write_text("not hdf5 at all")
    with pytest.raises(DataError, match=r"junk.h5ad is not an HDF5/h5ad file"):
        read_h5ad(junk)
    simulate_counts(n_cells=50, n_genes=30, seed=0).write_h5ad(tmp_path / "full.h5ad")
    data = (tmp_path / "full.h5ad").read_bytes()
    cut = tmp_path / "cut.h5ad"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.h5ad"):
        read_h5ad(cut)
