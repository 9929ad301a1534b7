"""Simulators: seeded, shaped as documented, with the planted class structure really there."""

from __future__ import annotations

import numpy as np

from biolatent.data.simulate import (
    MOTIFS,
    simulate_counts,
    simulate_dna,
    simulate_images,
    write_counts_dataset,
    write_dna_dataset,
    write_image_dataset,
)
from biolatent.io import read_fasta, read_h5ad, read_image_folder, read_table


def test_counts_structure_and_seed():
    adata = simulate_counts(n_cells=200, n_genes=30, n_types=3, seed=0)
    x = adata.X
    assert x.shape == (200, 30) and x.dtype == np.float32
    assert (x >= 0).all() and (x == np.round(x)).all() and (x.sum(1) > 0).all()
    assert set(adata.obs["cell_type"]) == {"type0", "type1", "type2"}
    assert set(adata.obs["batch"]) == {"batch0", "batch1"}
    totals = x.sum(1)
    assert totals.max() / totals.min() > 3  # library sizes vary
    # type programmes: each type's mean profile is far from the others'
    norm = np.log1p(x / totals[:, None] * 1e4)
    means = np.stack([norm[adata.obs["cell_type"] == t].mean(0) for t in ("type0", "type1", "type2")])
    nearest = np.argmin(((norm[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    truth = adata.obs["cell_type"].map({"type0": 0, "type1": 1, "type2": 2}).to_numpy()
    assert (nearest == truth).mean() > 0.95
    var = x.var(0) / x.mean(0)
    assert np.median(var) > 1.5  # over-dispersed (negative binomial, not Poisson)
    np.testing.assert_array_equal(simulate_counts(n_cells=200, n_genes=30, seed=0).X, x)
    assert not np.array_equal(simulate_counts(n_cells=200, n_genes=30, seed=1).X, x)


def test_dna_motifs_planted():
    records, meta = simulate_dna(n=100, length=50, seed=3)
    assert len(records) == 100 and {len(s) for _, s in records} == {50}
    assert list(meta.columns) == ["id", "label"] and list(meta["id"]) == [r for r, _ in records]
    assert meta["label"].value_counts().to_dict() == {"motif0": 50, "motif1": 50}
    for (_, seq), label in zip(records, meta["label"], strict=True):
        assert MOTIFS[label] in seq
    assert simulate_dna(n=100, length=50, seed=3)[0] == records


def test_images_two_textures():
    images, meta = simulate_images(n=40, size=32, seed=0)
    assert images.shape == (40, 32, 32, 3) and images.dtype == np.uint8
    assert meta["label"].value_counts().to_dict() == {"stripes": 20, "dots": 20}
    gray = images.mean(-1)
    # stripes cover much of the image with bright pixels, dots only small blobs
    bright = (gray > 100).mean(axis=(1, 2))
    stripes = (meta["label"] == "stripes").to_numpy()
    assert bright[stripes].min() > bright[~stripes].max()
    np.testing.assert_array_equal(simulate_images(n=40, size=32, seed=0)[0], images)


def test_writers_round_trip(tmp_path):
    h5ad = write_counts_dataset(tmp_path / "c", n_cells=30, n_genes=10, seed=2)
    assert read_h5ad(h5ad).shape == (30, 10)
    fasta, meta = write_dna_dataset(tmp_path / "d", n=10, length=20, seed=2)
    assert [r for r, _ in read_fasta(fasta)] == list(read_table(meta).index)
    folder, meta = write_image_dataset(tmp_path / "i", n=6, size=16, seed=2)
    ids, x = read_image_folder(folder, 16)
    images, _ = simulate_images(n=6, size=16, seed=2)
    assert ids == list(read_table(meta).index)
    np.testing.assert_allclose(x.transpose(0, 2, 3, 1) * 255, images, atol=1e-3)
