"""Volumes read per batch (data.lazy) equal the cohort read at load, with an on-disk cache that is never stale."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from biolatent.config import VolumeData
from biolatent.data.features import raw_features
from biolatent.data.lazy_volumes import LazyVolumes
from biolatent.data.loaders import load_samples
from biolatent.errors import DataError
from biolatent.io.nifti import read_nifti, read_nifti_spacing, write_nifti


def _cohort(folder, n=5, spacing=(2.0, 2.0, 2.0), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        data = rng.normal(100.0, 20.0, (10, 12, 14)).astype(np.float32)
        data[:2] = 0.0  # background
        write_nifti(folder / f"v{i}.nii.gz", data, spacing if i else (2.0, 2.0, 2.0))
    pd.DataFrame({"id": [f"v{i}" for i in range(n)], "path": [f"v{i}.nii.gz" for i in range(n)],
                  "subject": ["a", "a", "b", "c", "c"][:n]}).to_csv(folder / "meta.tsv", sep="\t", index=False)
    return folder


@pytest.mark.parametrize("spacing", [None, 3.0])
def test_lazy_volumes_equal_the_cohort_read_at_load(tmp_path, spacing):
    folder = _cohort(tmp_path / "c")
    eager = load_samples(VolumeData(path=folder, image_size=16, spacing=spacing, group_column="subject"))
    lazy = load_samples(VolumeData(path=folder, image_size=16, spacing=spacing, group_column="subject", lazy=True))
    assert isinstance(lazy.x, LazyVolumes) and lazy.x.shape == eager.x.shape == (5, 1, 16, 16, 16)
    assert lazy.ids == eager.ids and torch.equal(lazy.groups, eager.groups)
    torch.testing.assert_close(lazy.x[torch.arange(5)], eager.x, rtol=0, atol=0)
    torch.testing.assert_close(lazy.x[3], eager.x[3], rtol=0, atol=0)
    torch.testing.assert_close(lazy.x[1:4], eager.x[1:4], rtol=0, atol=0)
    torch.testing.assert_close(lazy.x.take(np.array([4, 0]))[0:2], eager.x[[4, 0]], rtol=0, atol=0)
    torch.testing.assert_close(pickle.loads(pickle.dumps(lazy.x))[2], eager.x[2], rtol=0, atol=0)
    np.testing.assert_array_equal(raw_features(lazy), raw_features(eager))


def test_the_cache_is_used_and_never_stale(tmp_path, monkeypatch):
    folder = _cohort(tmp_path / "c", n=3)
    cache = tmp_path / "cache"
    config = VolumeData(path=folder, image_size=8, lazy=True, cache_dir=cache)
    first = load_samples(config).x[torch.arange(3)]
    assert len(list(cache.glob("*.npy"))) == 3
    import biolatent.data.volume_sets as volume_sets

    def unreadable(*args, **kwargs):
        raise AssertionError("read from the file although it is cached")

    monkeypatch.setattr(volume_sets, "read_volume", unreadable)
    torch.testing.assert_close(load_samples(config).x[torch.arange(3)], first, rtol=0, atol=0)
    monkeypatch.undo()
    # another grid setting, or a changed file, is another key: recomputed, not the old entry
    other = load_samples(config.model_copy(update={"normalise": "minmax"})).x[0]
    assert len(list(cache.glob("*.npy"))) == 4 and not torch.equal(other, first[0])
    data = read_nifti(folder / "v1.nii.gz").data * 0.0
    data[3:6, 3:6, 3:6] = 50.0
    write_nifti(folder / "v1.nii.gz", data, (2.0, 2.0, 2.0))
    changed = load_samples(config).x[1]
    fresh = load_samples(VolumeData(path=folder, image_size=8)).x[1]
    torch.testing.assert_close(changed, fresh, rtol=0, atol=0)


def test_lazy_bad_input_is_one_line_before_training(tmp_path):
    folder = _cohort(tmp_path / "c", spacing=(1.0, 1.0, 1.0))
    with pytest.raises(DataError, match="different voxel spacings"):
        load_samples(VolumeData(path=folder, image_size=8, lazy=True))
    folder = _cohort(tmp_path / "d")
    with pytest.raises(DataError, match=r"data\.lazy: false"):
        load_samples(VolumeData(path=folder, image_size=8, lazy=True, mask_column="subject"))
    bad = folder / "v2.nii.gz"
    data = read_nifti(bad).data
    data[5, 5, 5] = np.nan
    write_nifti(bad, data, (2.0, 2.0, 2.0))
    samples = load_samples(VolumeData(path=folder, image_size=8, lazy=True))
    with pytest.raises(DataError, match="'v2' holds NaN"):
        samples.x[2]


def test_header_spacing_is_the_canonical_spacing(tmp_path):
    affine = np.array([[0.0, 0.0, 3.0, 0.0], [-1.5, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    write_nifti(tmp_path / "p.nii.gz", np.zeros((4, 5, 6), np.float32), affine=affine)
    assert read_nifti_spacing(tmp_path / "p.nii.gz") == pytest.approx(read_nifti(tmp_path / "p.nii.gz").spacing)
    assert read_nifti_spacing(tmp_path / "p.nii.gz") == pytest.approx((3.0, 1.5, 2.0))


def test_pretrain_and_embed_stream_the_volumes(tmp_path, run_cli):
    import anndata

    from conftest import TINY_MODELS, write_config

    folder = _cohort(tmp_path / "c")
    cache = tmp_path / "cache"
    config = write_config(tmp_path / "lazy.yaml", {
        "data": {"modality": "volume", "path": str(folder), "image_size": 16, "lazy": True,
                 "cache_dir": str(cache)},
        "method": {"name": "simclr"}, "model": {"name": "resnet", **TINY_MODELS["resnet"]},
        "train": {"epochs": 1, "batch_size": 4, "seed": 0}})
    result = run_cli("pretrain", config, "--out", tmp_path / "run", "--quiet")
    assert result.code == 0, result.err
    assert len(list(cache.glob("*.npy"))) == 5  # every volume preprocessed once, then read from the cache
    result = run_cli("embed", tmp_path / "run")
    assert result.code == 0, result.err
    assert anndata.read_h5ad(tmp_path / "run" / "embeddings.h5ad").n_obs == 5
