"""h5ad reading: content comes back, damaged files give a DataError."""

from __future__ import annotations

import numpy as np
import pandas as pd
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


@pytest.fixture
def pandas3_strings():
    """pandas 3's default text dtype (string arrays), switched on in pandas 2 as pandas documents."""
    if not hasattr(pd.options.future, "infer_string"):
        pytest.skip("this pandas has no future.infer_string option")
    previous = pd.options.future.infer_string
    pd.options.future.infer_string = True
    yield
    pd.options.future.infer_string = previous


def test_write_h5ad_with_pandas3_string_columns(tmp_path, pandas3_strings):
    import anndata

    from biolatent.io.h5ad import read_h5ad, write_h5ad

    obs = pd.DataFrame({"cell_type": ["T", "B", None], "batch": pd.Categorical(["a", "b", "a"]),
                        "mixed": [1, "x", 2.5], "n": [1, 2, 3]}, index=["c1", "c2", "c3"])
    assert pd.api.types.is_string_dtype(obs.index.dtype) and not pd.api.types.is_object_dtype(obs.index.dtype)
    var = pd.DataFrame({"symbol": ["G1", "G2"]}, index=["g1", "g2"])
    adata = anndata.AnnData(X=np.arange(6, dtype=np.float32).reshape(3, 2), obs=obs, var=var)
    path = write_h5ad(adata, tmp_path / "x.h5ad")
    back = read_h5ad(path)
    assert list(back.obs_names) == ["c1", "c2", "c3"] and list(back.var_names) == ["g1", "g2"]
    assert list(back.obs["cell_type"]) == ["T", "B", ""]
    assert list(back.obs["mixed"]) == ["1", "x", "2.5"]
    assert list(back.obs["batch"]) == ["a", "b", "a"] and list(back.obs["n"]) == [1, 2, 3]
    assert list(back.var["symbol"]) == ["G1", "G2"]
    np.testing.assert_array_equal(back.X, adata.X)
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5ad"]  # nothing half-written beside it


def test_simulators_write_h5ad_with_pandas3_strings(tmp_path, pandas3_strings):
    from biolatent.data.simulate.counts import write_counts_dataset
    from biolatent.data.simulate.expression import write_expression_dataset
    from biolatent.io.h5ad import read_h5ad

    for path in (write_counts_dataset(tmp_path / "c", n_cells=20, n_genes=10, seed=0),
                 write_expression_dataset(tmp_path / "e", n_samples=12, n_genes=30, n_signal_genes=9, seed=0)):
        assert read_h5ad(path).n_obs > 0
