"""Counts read from their .h5ad file batch by batch (``data.backed``): the same samples, embeddings and errors as
the in-memory path, and a file changed during a run refused."""

from __future__ import annotations

import os

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
import yaml

from biolatent.config import CountsData
from biolatent.data.backed import BackedCounts
from biolatent.data.loaders import load_counts
from biolatent.errors import DataError
from biolatent.train.loader import IndexedDataset, inference_loader


def _write(path, x, sparse: bool, batches: bool = True):
    obs = pd.DataFrame(index=[f"c{i}" for i in range(x.shape[0])])
    obs["cell_type"] = [f"t{i % 3}" for i in range(x.shape[0])]
    if batches:
        obs["lab"] = ["a", "b"] * (x.shape[0] // 2) + ["a"] * (x.shape[0] % 2)
    var = pd.DataFrame(index=[f"g{j}" for j in range(x.shape[1])])
    adata = anndata.AnnData(X=sp.csr_matrix(x) if sparse else x, obs=obs, var=var)
    adata.write_h5ad(path)
    return path


def _counts(n=37, g=11, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.poisson(0.7, size=(n, g)).astype(np.float32)
    x[3] = 0  # a cell with total 0: dropped by min_total
    return x


@pytest.mark.parametrize("sparse", [False, True])
def test_backed_counts_equal_the_in_memory_ones(tmp_path, sparse):
    path = _write(tmp_path / "c.h5ad", _counts(), sparse)
    memory = load_counts(CountsData(path=path, backed=False, batch_column="lab"))
    backed = load_counts(CountsData(path=path, backed=True, batch_column="lab"))
    assert isinstance(backed.x, BackedCounts) and isinstance(memory.x, torch.Tensor)
    assert len(backed) == len(memory) == 36  # the empty cell dropped
    assert backed.info == memory.info and backed.feature_names == memory.feature_names
    pd.testing.assert_frame_equal(backed.obs, memory.obs)
    torch.testing.assert_close(backed.fields["batch_index"], memory.fields["batch_index"])
    torch.testing.assert_close(backed.x[:], memory.x)
    rows = torch.tensor([30, 2, 2, 17, 0, 35])
    torch.testing.assert_close(backed.x[rows], memory.x[rows])
    torch.testing.assert_close(backed.x[5], memory.x[5])
    torch.testing.assert_close(backed.x[3:9], memory.x[3:9])
    mask = torch.arange(len(memory)) % 4 == 1
    torch.testing.assert_close(backed.x[mask], memory.x[mask])
    np.testing.assert_array_equal(backed.x.numpy(), memory.x.numpy())
    np.testing.assert_array_equal(backed.x.take(rows)[:].numpy(), memory.x[rows].numpy())


def test_a_holdout_subset_of_backed_counts_stays_backed(tmp_path):
    from biolatent.workflows.pretrain import _subset

    path = _write(tmp_path / "c.h5ad", _counts(), sparse=True)
    memory = load_counts(CountsData(path=path, backed=False))
    backed = load_counts(CountsData(path=path, backed=True))
    rows = np.array([1, 4, 5, 20, 33])
    cut_memory, cut_backed = _subset(memory, rows), _subset(backed, rows)
    assert isinstance(cut_backed.x, BackedCounts) and len(cut_backed) == 5
    torch.testing.assert_close(cut_backed.x[:], cut_memory.x)
    assert list(cut_backed.obs.index) == list(cut_memory.obs.index) == [f"c{i}" for i in (1, 5, 6, 21, 34)]


def test_backed_batches_are_read_once_per_batch_and_equal_the_items(tmp_path):
    path = _write(tmp_path / "c.h5ad", _counts(), sparse=True)
    samples = load_counts(CountsData(path=path, backed=True))
    dataset = IndexedDataset(samples.x)
    reference = IndexedDataset(samples.x[:])
    for batch, expected in zip(inference_loader(dataset, 8), inference_loader(reference, 8), strict=True):
        torch.testing.assert_close(batch["x"], expected["x"])
        torch.testing.assert_close(batch["index"], expected["index"])


def test_a_backed_matrix_pickles_without_its_file_handle(tmp_path):  # DataLoader worker processes
    import pickle

    path = _write(tmp_path / "c.h5ad", _counts(), sparse=True)
    x = load_counts(CountsData(path=path, backed=True)).x
    before = x[2:7]
    copy = pickle.loads(pickle.dumps(x))
    torch.testing.assert_close(copy[2:7], before)
    copy.close()
    x.close()


def test_backed_checks_refuse_bad_values_like_the_in_memory_path(tmp_path):
    x = _counts()
    x[7, 4] = np.nan
    x[20, 1] = np.inf
    path = _write(tmp_path / "nan.h5ad", x, sparse=True)
    for backed in (False, True):
        with pytest.raises(DataError, match=r"has 2 NaN or infinite values of 407 \(first: cell 'c7', gene 'g4'\)"):
            load_counts(CountsData(path=path, backed=backed))
    x = _counts()
    x[9, 2] = 0.5
    path = _write(tmp_path / "half.h5ad", x, sparse=False)
    for backed in (False, True):
        with pytest.raises(DataError, match=r"non-integer value 0\.5"):
            load_counts(CountsData(path=path, backed=backed, values="counts"))
        assert not load_counts(CountsData(path=path, backed=backed)).info.is_counts


def test_backed_auto_streams_only_large_matrices_and_refuses_csc(tmp_path, monkeypatch):
    path = _write(tmp_path / "c.h5ad", _counts(), sparse=True)
    assert isinstance(load_counts(CountsData(path=path)).x, torch.Tensor)  # small: in memory
    monkeypatch.setattr("biolatent.data.backed.STREAM_BYTES", 100)
    assert isinstance(load_counts(CountsData(path=path)).x, BackedCounts)
    adata = anndata.read_h5ad(path)
    adata.X = sp.csc_matrix(adata.X)
    adata.write_h5ad(tmp_path / "csc.h5ad")
    assert isinstance(load_counts(CountsData(path=tmp_path / "csc.h5ad")).x, torch.Tensor)  # auto: in memory
    with pytest.raises(DataError, match="needs a dense or CSR matrix, not csc"):
        load_counts(CountsData(path=tmp_path / "csc.h5ad", backed=True))


def test_a_file_modified_after_opening_is_refused(tmp_path):
    path = _write(tmp_path / "c.h5ad", _counts(), sparse=True)
    samples = load_counts(CountsData(path=path, backed=True))
    samples.x[0:4]
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    with pytest.raises(DataError, match="was modified during the run"):
        samples.x[0:4]


def _backed_config(tmp_path, path, method="vae"):
    config = {
        "data": {"modality": "counts", "path": str(path), "backed": True, "batch_column": "lab"},
        "method": {"name": method},
        "model": {"name": "mlp", "hidden_dims": [16], "out_dim": 8},
        "train": {"epochs": 2, "batch_size": 8, "seed": 0},
    }
    out = tmp_path / "backed.yaml"
    out.write_text(yaml.safe_dump(config))
    return out


@pytest.mark.parametrize("sparse", [False, True])
def test_pretrain_and_embed_from_a_backed_file(run_cli, tmp_path, sparse):
    path = _write(tmp_path / "c.h5ad", _counts(n=64, g=20), sparse)
    run = tmp_path / "run"
    result = run_cli("pretrain", _backed_config(tmp_path, path), "--out", run, "--quiet")
    assert result.code == 0, result.err
    assert run_cli("embed", run).code == 0
    streamed = anndata.read_h5ad(run / "embeddings.h5ad")
    assert streamed.n_obs == 63 and list(streamed.obs["lab"][:2]) == ["a", "b"]
    # the same run embedding the same file read into memory: identical embeddings
    memory_yaml = tmp_path / "memory.yaml"
    config = yaml.safe_load((tmp_path / "backed.yaml").read_text())
    config["data"]["backed"] = False
    memory_yaml.write_text(yaml.safe_dump(config))
    assert run_cli("embed", run, "--data", memory_yaml, "--out", tmp_path / "memory.h5ad").code == 0
    memory = anndata.read_h5ad(tmp_path / "memory.h5ad")
    assert list(memory.obs_names) == list(streamed.obs_names)
    np.testing.assert_array_equal(memory.obsm["X_biolatent"], streamed.obsm["X_biolatent"])


def test_embed_refuses_a_file_modified_during_the_run(run_cli, tmp_path, monkeypatch):
    path = _write(tmp_path / "c.h5ad", _counts(n=64, g=20), sparse=True)
    run = tmp_path / "run"
    assert run_cli("pretrain", _backed_config(tmp_path, path), "--out", run, "--quiet").code == 0
    import biolatent.workflows.embed as embed_workflow

    real = embed_workflow.compute_embeddings

    def modify_then_embed(*args, **kwargs):  # another process rewrites the file after it was opened
        with open(path, "ab") as handle:
            handle.write(b"\0" * 16)
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_workflow, "compute_embeddings", modify_then_embed)
    result = run_cli("embed", run, "--out", tmp_path / "e.h5ad")
    result.expect_error("c.h5ad was modified during the run", "nothing was written")
    assert not (tmp_path / "e.h5ad").exists()
    assert not list(tmp_path.glob(".e.h5ad*"))


def test_pretrain_refuses_a_file_modified_during_the_run(run_cli, tmp_path, monkeypatch):
    path = _write(tmp_path / "c.h5ad", _counts(n=64, g=20), sparse=True)
    import importlib

    fit_module = importlib.import_module("biolatent.train.fit")  # the module (biolatent.train.fit is also a function)

    real = fit_module.fit

    def modify_then_fit(*args, **kwargs):  # another process rewrites the file after it was opened
        with open(path, "ab") as handle:
            handle.write(b"\0" * 16)
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "fit", modify_then_fit)
    run = tmp_path / "run"
    result = run_cli("pretrain", _backed_config(tmp_path, path), "--out", run, "--quiet")
    result.expect_error("c.h5ad was modified during the run")
    assert not (run / "model.safetensors").exists()
