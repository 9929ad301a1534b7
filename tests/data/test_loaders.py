"""load_samples per modality: shapes, filtering, metadata joins and every DataError."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tifffile

from biolatent.config import CountsData, DnaData, Image2dData
from biolatent.data.loaders import LOADERS, load_samples
from biolatent.data.sequence import PAD_BASE
from biolatent.data.simulate import simulate_counts
from biolatent.errors import DataError
from biolatent.io import read_fasta, read_table


def test_registry_is_explicit():
    assert set(LOADERS) == {"counts", "dna", "image2d", "volume", "cine", "spatial", "records", "series", "features"}


def test_counts_loaded_and_detected(counts_h5ad):
    samples = load_samples(CountsData(path=counts_h5ad))
    assert samples.x.shape == (120, 40) and samples.x.dtype.is_floating_point
    assert samples.info.modality == "counts" and samples.info.is_counts and samples.info.n_features == 40
    assert samples.feature_names[:2] == ["gene000", "gene001"]
    assert samples.ids[:2] == ["cell0000", "cell0001"] and "cell_type" in samples.obs


def test_counts_layers_sparse_and_continuous(tmp_path):
    adata = simulate_counts(n_cells=12, n_genes=6, n_types=2, seed=0)
    counts = adata.X.copy()
    adata.layers["scaled"] = counts / 2 - 1
    adata.raw = adata.copy()
    adata.X = sp.csr_matrix(counts * 3)
    adata.write_h5ad(tmp_path / "c.h5ad")
    x = load_samples(CountsData(path=tmp_path / "c.h5ad")).x.numpy()
    np.testing.assert_array_equal(x, counts * 3)
    raw = load_samples(CountsData(path=tmp_path / "c.h5ad", layer="raw"))
    np.testing.assert_array_equal(raw.x.numpy(), counts)
    scaled = load_samples(CountsData(path=tmp_path / "c.h5ad", layer="scaled"))
    assert not scaled.info.is_counts and len(scaled) == 12  # no total filter on continuous values
    with pytest.raises(DataError, match=r"has no layer 'nope' \(layers: raw, scaled\)"):
        load_samples(CountsData(path=tmp_path / "c.h5ad", layer="nope"))
    with pytest.raises(DataError, match=r"needs non-negative integer counts; found negative value -1"):
        load_samples(CountsData(path=tmp_path / "c.h5ad", layer="scaled", values="counts"))
    forced = load_samples(CountsData(path=tmp_path / "c.h5ad", values="continuous"))
    assert not forced.info.is_counts


def test_counts_non_integer_and_nan(tmp_path):
    adata = simulate_counts(n_cells=12, n_genes=6, n_types=2, seed=0)
    adata.X = adata.X + 0.5
    adata.write_h5ad(tmp_path / "half.h5ad")
    with pytest.raises(DataError, match=r"half.h5ad \(X\): .*found non-integer value"):
        load_samples(CountsData(path=tmp_path / "half.h5ad", values="counts"))
    assert not load_samples(CountsData(path=tmp_path / "half.h5ad")).info.is_counts
    adata.X[3, 2] = np.nan
    adata.write_h5ad(tmp_path / "nan.h5ad")
    message = r"has 1 NaN or infinite values of 72 \(first: cell 'cell0003', gene 'gene002'\)"
    with pytest.raises(DataError, match=message):
        load_samples(CountsData(path=tmp_path / "nan.h5ad"))


def test_counts_min_total_filter(tmp_path):
    adata = simulate_counts(n_cells=12, n_genes=6, n_types=2, seed=0)
    adata.X[[1, 5]] = 0
    adata.write_h5ad(tmp_path / "z.h5ad")
    samples = load_samples(CountsData(path=tmp_path / "z.h5ad"))
    assert len(samples) == 10 and "cell0001" not in samples.ids and "cell0005" not in samples.ids
    totals = adata.X.sum(1)
    cut = float(np.sort(totals)[-3])
    assert len(load_samples(CountsData(path=tmp_path / "z.h5ad", min_total=cut))) == 2
    with pytest.raises(DataError, match="empty dataset after filtering"):
        load_samples(CountsData(path=tmp_path / "z.h5ad", min_total=float(totals.max())))


def test_counts_metadata_join(tmp_path, counts_h5ad):
    ids = [f"cell{i:04d}" for i in range(120)]
    table = pd.DataFrame({"id": [*ids[::-1], "extra"], "group": [f"g{i % 4}" for i in range(121)]})
    table.to_csv(tmp_path / "m.csv", index=False)
    samples = load_samples(CountsData(path=counts_h5ad, metadata=tmp_path / "m.csv"))
    assert samples.ids == ids  # data order kept, extra row ignored
    assert samples.obs.loc["cell0119", "group"] == "g0" and samples.obs.loc["cell0000", "group"] == "g3"
    table.iloc[5:].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError) as info:
        load_samples(CountsData(path=counts_h5ad, metadata=tmp_path / "short.csv"))
    assert f"5 of 120 sample ids are not in the metadata table {tmp_path / 'short.csv'}" in str(info.value)
    assert "(e.g. cell0115, cell0116, cell0117)" in str(info.value)


def test_missing_path():
    with pytest.raises(DataError, match="data path not found"):
        load_samples(CountsData(path="/no/such/file.h5ad"))


def test_dna(dna_files):
    fasta, meta = dna_files
    samples = load_samples(DnaData(path=fasta, metadata=meta, kmer=4))
    assert samples.x.shape == (80, 40) and samples.x.dtype.is_signed and not samples.x.dtype.is_floating_point
    assert samples.info.max_length == 40 and samples.info.kmer == 4
    assert list(samples.obs.columns) == ["label", "length"] and (samples.obs["length"] == 40).all()
    assert samples.ids == [r for r, _ in read_fasta(fasta)]
    assert samples.obs["label"].tolist() == read_table(meta)["label"].tolist()


def test_dna_pad_and_truncate(tmp_path):
    (tmp_path / "s.fa").write_text(">a\nACGTACGTAC\n>b\nacg\n")
    samples = load_samples(DnaData(path=tmp_path / "s.fa"))
    assert samples.x.shape == (2, 10) and samples.x[1, :3].tolist() == [0, 1, 2]
    assert (samples.x[1, 3:] == PAD_BASE).all() and samples.obs["length"].tolist() == [10, 3]
    assert load_samples(DnaData(path=tmp_path / "s.fa", max_length=8)).x.shape == (2, 8)
    (tmp_path / "bad.fa").write_text(">a\nACGU\n")
    with pytest.raises(DataError, match=r"record 'a': character 'U' at position 4"):
        load_samples(DnaData(path=tmp_path / "bad.fa"))


def test_image_folder(image_files):
    folder, meta = image_files
    samples = load_samples(Image2dData(path=folder, metadata=meta, image_size=16, max_samples=10))
    assert samples.x.shape == (10, 3, 16, 16) and samples.info.channels == 3 and samples.info.image_size == 16
    assert samples.x.min() >= 0 and samples.x.max() <= 1
    assert samples.ids == [f"img{i:04d}" for i in range(10)] and "label" in samples.obs


def test_image_slide(tmp_path):
    pixels = np.full((64, 96, 3), 245, dtype=np.uint8)
    pixels[:, 32:64] = (170, 40, 120)
    tifffile.imwrite(tmp_path / "s.tif", pixels, photometric="rgb")
    pd.DataFrame({"id": ["x32_y0", "x32_y32"], "region": ["top", "bottom"]}).to_csv(tmp_path / "m.tsv",
                                                                                  sep="\t", index=False)
    cfg = Image2dData(path=tmp_path / "s.tif", tile_size=32, image_size=16, metadata=tmp_path / "m.tsv")
    samples = load_samples(cfg)
    assert samples.ids == ["x32_y0", "x32_y32"] and samples.x.shape == (2, 3, 16, 16)
    assert samples.obs["region"].tolist() == ["top", "bottom"] and samples.obs["y"].tolist() == [0, 32]
    np.testing.assert_allclose(samples.x[0, :, 3, 3].numpy(), np.array([170, 40, 120]) / 255, atol=1e-5)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"must be a folder of images or a \.svs/\.tif/\.tiff slide"):
        load_samples(Image2dData(path=tmp_path / "notes.txt"))


def test_dataset_is_resolved_before_loading(tmp_path, monkeypatch, counts_h5ad):
    import biolatent.datasets as datasets

    seen = {}

    def fake_resolve(cfg):
        seen["dataset"] = cfg.dataset
        return cfg.model_copy(update={"path": counts_h5ad, "dataset": None})

    monkeypatch.setattr(datasets, "resolve_data_config", fake_resolve)
    samples = load_samples(CountsData(dataset="pbmc68k"))
    assert seen == {"dataset": "pbmc68k"} and len(samples) == 120


def test_counts_raw_with_more_genes_keeps_raw_gene_names(tmp_path):
    adata = simulate_counts(n_cells=10, n_genes=8, n_types=2, seed=0)
    adata.raw = adata.copy()
    adata = adata[:, :5].copy()
    adata.write_h5ad(tmp_path / "r.h5ad")
    raw = load_samples(CountsData(path=tmp_path / "r.h5ad", layer="raw"))
    assert raw.x.shape == (10, 8) and raw.feature_names[-1] == "gene007" and raw.info.n_features == 8
    x_only = load_samples(CountsData(path=tmp_path / "r.h5ad"))
    assert x_only.feature_names == [f"gene00{i}" for i in range(5)]
    simulate_counts(n_cells=10, n_genes=8, seed=0).write_h5ad(tmp_path / "noraw.h5ad")
    with pytest.raises(DataError, match=r"noraw\.h5ad has no raw matrix \(data\.layer = 'raw'\)"):
        load_samples(CountsData(path=tmp_path / "noraw.h5ad", layer="raw"))


def test_counts_batch_column(tmp_path):
    from biolatent.data.batches import BATCH_FIELD

    adata = simulate_counts(n_cells=12, n_genes=6, n_types=2, seed=0)
    adata.obs["lab"] = ["b", "a", "c"] * 4
    adata.write_h5ad(tmp_path / "labs.h5ad")
    samples = load_samples(CountsData(path=tmp_path / "labs.h5ad", batch_column="lab"))
    assert samples.info.batch_categories == ["a", "b", "c"] and samples.info.n_batches == 3
    assert samples.fields[BATCH_FIELD].tolist() == [1, 0, 2] * 4
    assert BATCH_FIELD not in load_samples(CountsData(path=tmp_path / "labs.h5ad")).fields
    with pytest.raises(DataError, match=r"data\.batch_column 'donor' is not a metadata column"):
        load_samples(CountsData(path=tmp_path / "labs.h5ad", batch_column="donor"))
    adata.obs["lab"] = adata.obs["lab"].astype(object)
    adata.obs.loc[adata.obs_names[:2], "lab"] = None
    adata.write_h5ad(tmp_path / "gaps.h5ad")
    with pytest.raises(DataError, match="2 of 12 samples have no 'lab'"):
        load_samples(CountsData(path=tmp_path / "gaps.h5ad", batch_column="lab"))
