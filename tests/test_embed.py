import json

import anndata
import numpy as np
import pandas as pd
import pytest

from biolatent.embed import EMBEDDING_KEY, read_embeddings, write_embeddings
from biolatent.errors import DataError


@pytest.mark.parametrize("infer_string", [False, True])  # True: the default of pandas 3
def test_embeddings_file_round_trip_with_pandas_string_arrays(tmp_path, infer_string):
    index = pd.Index(["c1", "c2", "c3"], dtype="string")
    obs = pd.DataFrame(
        {"cell_type": pd.array(["T", "B", None], dtype="string"), "n": [1, 2, 3],
         "site": pd.Categorical(["a", "b", "a"]), "mixed": ["x", 2, None]},
        index=index,
    )
    emb = np.arange(6, dtype=np.float32).reshape(3, 2)
    with pd.option_context("future.infer_string", infer_string):
        path = write_embeddings(tmp_path / "e.h5ad", emb, obs, {"command": "embed"}, "data: {}\n")
    adata = anndata.read_h5ad(path)
    assert list(adata.obs_names) == ["c1", "c2", "c3"]
    assert list(adata.obs["cell_type"]) == ["T", "B", ""]
    assert list(adata.obs["mixed"]) == ["x", "2", ""]
    np.testing.assert_array_equal(adata.obsm[EMBEDDING_KEY], emb)
    assert json.loads(adata.uns["biolatent"]["provenance"]) == {"command": "embed"}


def test_read_embeddings_uses_x_when_obsm_is_absent_and_rejects_nan(tmp_path):
    adata = anndata.AnnData(X=np.ones((4, 3), dtype=np.float32))
    adata.write_h5ad(tmp_path / "x.h5ad")
    assert read_embeddings(tmp_path / "x.h5ad").obsm[EMBEDDING_KEY].shape == (4, 3)
    bad = anndata.AnnData(X=np.full((2, 2), np.nan, dtype=np.float32))
    bad.write_h5ad(tmp_path / "nan.h5ad")
    with pytest.raises(DataError, match="NaN"):
        read_embeddings(tmp_path / "nan.h5ad")
