"""Slides read per batch (image2d, data.lazy): the same tiles as the eager read, cut only when indexed."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from biolatent.config import Image2dData
from biolatent.data.features import raw_features
from biolatent.data.loaders import load_samples
from biolatent.data.slide_tiles import SlideTiles
from biolatent.errors import DataError


def _slide(path, height=224, width=288, seed=0, **layout):
    rng = np.random.default_rng(seed)
    pixels = np.full((height, width, 3), 236, dtype=np.int64) + rng.integers(-10, 10, (height, width, 3))
    yy, xx = np.mgrid[:height, :width]
    tissue = (yy - 100) ** 2 + (xx - 130) ** 2 < 90**2
    pixels[tissue] = np.array([180, 60, 140]) + rng.integers(-40, 40, (int(tissue.sum()), 3))
    tifffile.imwrite(path, np.clip(pixels, 0, 255).astype(np.uint8), photometric="rgb", **layout)
    return path


@pytest.mark.parametrize("layout", [{"tile": (64, 64)}, {"rowsperstrip": 16}])
def test_lazy_slide_tiles_equal_the_eager_tiles(tmp_path, layout):
    path = _slide(tmp_path / "s.tif", **layout)
    config = Image2dData(path=path, tile_size=32, image_size=24, min_tissue_fraction=0.4)
    ids = load_samples(config).ids
    parts = ["centre" if i == "x96_y96" else "other" for i in ids]
    pd.DataFrame({"id": ids[::-1], "part": parts[::-1]}).to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    config = config.model_copy(update={"metadata": tmp_path / "m.tsv"})
    eager = load_samples(config)
    lazy = load_samples(config.model_copy(update={"lazy": True}))
    assert isinstance(lazy.x, SlideTiles) and isinstance(eager.x, torch.Tensor)
    assert lazy.ids == eager.ids and len(lazy) > 10 and lazy.x.shape == eager.x.shape == (len(eager), 3, 24, 24)
    pd.testing.assert_frame_equal(lazy.obs, eager.obs)
    assert lazy.obs.loc["x96_y96", "part"] == "centre"
    n = len(eager)
    torch.testing.assert_close(lazy.x[torch.arange(n)], eager.x, rtol=0, atol=0)
    torch.testing.assert_close(lazy.x[3], eager.x[3], rtol=0, atol=0)
    torch.testing.assert_close(lazy.x[2:7], eager.x[2:7], rtol=0, atol=0)
    torch.testing.assert_close(lazy.x.take(np.array([n - 1, 0]))[0:2], eager.x[[n - 1, 0]], rtol=0, atol=0)
    torch.testing.assert_close(pickle.loads(pickle.dumps(lazy.x))[5], eager.x[5], rtol=0, atol=0)
    np.testing.assert_array_equal(raw_features(lazy), raw_features(eager))
    capped = load_samples(config.model_copy(update={"lazy": True, "max_samples": 4}))
    assert capped.ids == eager.ids[:4]


def test_a_batch_decodes_only_its_tiles_regions(tmp_path, monkeypatch):
    """Tiles of 48 px on TIFF tiles of 64 px: each tile overlaps 1, 2 or 4 TIFF tiles; a batch decodes exactly the
    TIFF tiles its tiles overlap, each once, and nothing else."""
    from biolatent.io.slide import SlideReader

    samples = load_samples(Image2dData(path=_slide(tmp_path / "s.tif", tile=(64, 64)), tile_size=48, image_size=16,
                                       min_tissue_fraction=0.3, lazy=True))
    decoded: list[int] = []
    original = SlideReader.segment
    monkeypatch.setattr(SlideReader, "segment", lambda self, index: decoded.append(index) or original(self, index))
    x = samples.x
    batch = np.array([0, 5, len(x) - 1])
    x[torch.from_numpy(batch)]
    expected = set()
    for row in batch.tolist():
        x0, y0 = int(x.xs[row]), int(x.ys[row])
        expected |= {r * x.reader.per_row + c for r in range(y0 // 64, (y0 + 47) // 64 + 1)
                     for c in range(x0 // 64, (x0 + 47) // 64 + 1)}
    assert sorted(decoded) == sorted(expected)
    total = len(x.reader.page.dataoffsets)
    assert len(decoded) < total
    decoded.clear()
    x[2]
    assert 1 <= len(decoded) <= 4


def test_lazy_slide_errors_are_one_line(tmp_path, image_files):
    path = _slide(tmp_path / "s.tif", tile=(64, 64))
    samples = load_samples(Image2dData(path=path, tile_size=32, lazy=True))
    samples.x[0]
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match=r"s\.tif was modified during the run"):
        samples.x[1]
    with pytest.raises(DataError, match=r"data\.lazy reads a slide .* set data\.lazy: false"):
        load_samples(Image2dData(path=image_files[0], metadata=image_files[1], lazy=True))


def test_pretrain_and_embed_stream_the_slide(tmp_path, run_cli, monkeypatch):
    import anndata

    import biolatent.io.slide as slide
    from conftest import TINY_MODELS, write_config

    path = _slide(tmp_path / "s.tif", tile=(64, 64))
    config = write_config(tmp_path / "lazy.yaml", {
        "data": {"modality": "image2d", "path": str(path), "tile_size": 16, "image_size": 16, "lazy": True,
                 "min_tissue_fraction": 0.5},
        "method": {"name": "simclr"}, "model": {"name": "resnet", **TINY_MODELS["resnet"]},
        "train": {"epochs": 1, "batch_size": 8, "seed": 0}})
    eager_ids = load_samples(Image2dData(path=path, tile_size=16, image_size=16)).ids
    n = len(eager_ids)

    def whole_level0(*args):
        raise AssertionError("level 0 read whole although data.lazy is set")

    monkeypatch.setattr(slide, "_read_level0", whole_level0)
    batches = []
    read = SlideTiles.read
    monkeypatch.setattr(SlideTiles, "read", lambda self, rows: batches.append(rows.size) or read(self, rows))
    result = run_cli("pretrain", config, "--out", tmp_path / "run", "--quiet")
    assert result.code == 0, result.err
    result = run_cli("embed", tmp_path / "run")
    assert result.code == 0, result.err
    embeddings = anndata.read_h5ad(tmp_path / "run" / "embeddings.h5ad")
    assert embeddings.n_obs == n and list(embeddings.obs_names) == eager_ids
    assert max(batches) <= 64 < n  # read batch by batch (embedding batches: 64), never every tile at once


def test_pairing_keeps_the_tiles_lazy(tmp_path):
    """Tiles paired with a genetic table naming a subset of the ids stay lazy and equal the eager ones."""
    path = _slide(tmp_path / "s.tif", tile=(64, 64))
    config = Image2dData(path=path, tile_size=32, image_size=16)
    ids = load_samples(config).ids
    kept = ids[1::2]
    pd.DataFrame({"id": kept, "score": np.arange(len(kept), dtype=float)}).to_csv(tmp_path / "g.tsv", sep="\t",
                                                                                  index=False)
    config = config.model_copy(update={"genetic_tables": {"scores": tmp_path / "g.tsv"}})
    eager = load_samples(config)
    lazy = load_samples(config.model_copy(update={"lazy": True}))
    assert isinstance(lazy.x, SlideTiles) and lazy.ids == eager.ids == kept
    torch.testing.assert_close(lazy.x[torch.arange(len(lazy))], eager.x, rtol=0, atol=0)
    torch.testing.assert_close(lazy.fields["scores"], eager.fields["scores"], rtol=0, atol=0)
