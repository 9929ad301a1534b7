"""The spatial loader on a tiny Space Ranger fixture whose image colour encodes position (red = x, green = y):
samples = in-tissue spots, tiles centred on them, padded white at the border, cut lazily; one-line errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from PIL import Image

from biolatent.config import SpatialData
from biolatent.data.features import pooled_pixels, raw_features
from biolatent.data.loaders import load_samples
from biolatent.data.spatial import SpotTiles
from biolatent.data.views import ImageViews, build_views
from biolatent.errors import ConfigError, DataError
from biolatent.train.loader import IndexedDataset, training_loader
from spatial_fixture import FULLRES, gradient, write_h5, write_space_ranger, write_spatial_h5ad


def load(path, **kwargs):
    return load_samples(SpatialData(path=path, **kwargs))


def centre_colour(tiles: torch.Tensor) -> np.ndarray:
    """(N, 2) red and green at the tile centre (the mean of the four middle pixels)."""
    s = tiles.shape[-1] // 2
    return tiles[:, :2, s - 1 : s + 1, s - 1 : s + 1].mean(dim=(2, 3)).numpy()


def assert_centred(samples, fx, scale: float) -> None:
    """Tile centres have their spot's colour: on average within half an image pixel (a shift of one pixel fails),
    each within a pixel + the uint8 quantisation of the image."""
    rows = fx.positions.loc[samples.ids]
    expected = np.stack([rows["pxl_col_in_fullres"], rows["pxl_row_in_fullres"]], axis=1) / FULLRES
    error = centre_colour(samples.x[:]) - expected
    pixel = 1.0 / (scale * FULLRES)  # colour change across one image pixel
    assert np.all(np.abs(error.mean(axis=0)) < pixel / 2), error.mean(axis=0)
    assert np.abs(error).max() < pixel + 0.5 / 255


@pytest.fixture
def fx(tmp_path):
    return write_space_ranger(tmp_path / "sr")


def test_in_tissue_spots_tiles_and_expression(fx):
    samples = load(fx.folder)
    assert samples.ids == fx.in_tissue  # matrix order; the 4 out-of-tissue spots are no samples
    assert len(samples) == len(fx.positions) - 4
    info = samples.info
    assert (info.modality, info.channels, info.image_size, info.spatial_dims) == ("spatial", 3, 64, 2)
    assert info.n_features == 12 and info.is_counts and samples.feature_names == fx.genes
    assert isinstance(samples.x, SpotTiles) and samples.x.shape == (len(samples), 3, 64, 64)
    rows = [fx.barcodes.index(b) for b in samples.ids]
    expression = samples.fields["expression"]
    assert expression.dtype == torch.float32
    np.testing.assert_array_equal(expression.numpy(), fx.counts[rows])
    # hires is the default image (scale 0.5): x_px, y_px are the spot centres in its pixels
    positions = fx.positions.loc[samples.ids]
    np.testing.assert_allclose(samples.obs["x_px"], positions["pxl_col_in_fullres"] * 0.5)
    np.testing.assert_allclose(samples.obs["y_px"], positions["pxl_row_in_fullres"] * 0.5)
    np.testing.assert_array_equal(samples.obs["array_row"], positions["array_row"])
    # every tile is centred on its spot: its centre has the spot's colour
    tiles = samples.x[:]
    assert tiles.dtype == torch.float32 and 0.0 <= float(tiles.min()) and float(tiles.max()) <= 1.0
    assert_centred(samples, fx, scale=0.5)
    # 2 spot diameters of 20 hires px; the red ramp spans 2 * 40 full-res px across the tile
    assert samples.extra["tile_px"] == 40
    red = tiles[:, 0, 32, :]
    np.testing.assert_allclose((red[:, -1] - red[:, 0]).numpy(), 80 / FULLRES * 63 / 64, atol=0.01)


@pytest.mark.parametrize(("header", "matrix"), [(True, "h5"), (False, "mtx"), (True, "h5.gz")])
def test_every_folder_format_loads_the_same(tmp_path, fx, header, matrix):
    reference = load(fx.folder)
    other = load(write_space_ranger(tmp_path / "other", header=header, matrix=matrix).folder)
    assert other.ids == reference.ids
    assert torch.equal(other.fields["expression"], reference.fields["expression"])
    assert torch.equal(other.x[:], reference.x[:])


def test_lazy_tiles_index_like_a_tensor(fx):
    samples = load(fx.folder)
    x, n = samples.x, len(samples)
    stack = x[:]
    assert torch.equal(x[3], stack[3]) and torch.equal(x[-1], stack[n - 1])
    assert torch.equal(x[torch.tensor(5)], stack[5])
    assert torch.equal(x[2:7], stack[2:7])
    index = torch.tensor([9, 0, 9])
    assert torch.equal(x[index], stack[index])
    mask = torch.zeros(n, dtype=torch.bool)
    mask[[1, 4]] = True
    assert torch.equal(x[mask], stack[mask])
    with pytest.raises(IndexError):
        x[n]
    # nothing but the image and two (N, 2) coordinate arrays is held: no tile is stored
    held = sum(v.nbytes for v in vars(x).values() if isinstance(v, np.ndarray))
    assert held == x.image.nbytes + 2 * n * 2 * 8


def test_border_tiles_are_padded_white(tmp_path):
    fx = write_space_ranger(tmp_path / "sr")
    table = fx.positions.reset_index()
    edge = fx.in_tissue[0]
    table.loc[table["barcode"] == edge, "pxl_col_in_fullres"] = 4  # 2 hires px from the left border
    table.to_csv(fx.folder / "spatial" / "tissue_positions_list.csv", header=False, index=False)
    samples = load(fx.folder)
    tile = samples.x[samples.ids.index(edge)]
    # the tile spans hires x in [-18, 22): the left ~45% lies beyond the border and is white
    assert torch.all(tile[:, :, :25] == 1.0)
    assert float(tile[2, :, 40:].mean()) == pytest.approx(128 / 255, abs=0.01)  # blue channel of the image


def test_tile_um_uses_the_55_um_spot(fx):
    by_diameters = load(fx.folder, tile_diameters=2.0)
    by_um = load(fx.folder, tile_um=110.0)
    assert by_um.extra["tile_px"] == by_diameters.extra["tile_px"] == 40
    assert torch.equal(by_um.x[:], by_diameters.x[:])
    assert load(fx.folder, tile_um=55.0).extra["tile_px"] == 20


def test_lowres_and_whole_slide_cut_the_same_places(tmp_path, fx):
    hires = load(fx.folder, image_size=16)
    lowres = load(fx.folder, resolution="lowres", image_size=16)
    np.testing.assert_allclose(lowres.obs["x_px"], hires.obs["x_px"] / 2)
    assert lowres.extra["tile_px"] == 20
    slide = tmp_path / "slide.tif"
    tifffile.imwrite(slide, gradient(FULLRES, 1.0))
    full = load(fx.folder, image=slide, image_size=16)
    np.testing.assert_allclose(full.obs["x_px"], hires.obs["x_px"] * 2)
    assert full.extra["tile_px"] == 80
    assert_centred(lowres, fx, scale=0.25)
    assert_centred(full, fx, scale=1.0)
    with pytest.raises(DataError, match=r"fullres needs data\.image"):
        load(fx.folder, resolution="fullres")


def test_h5ad_with_uns_spatial_matches_the_folder(tmp_path, fx):
    path = write_spatial_h5ad(tmp_path / "visium.h5ad", fx)
    folder, adata = load(fx.folder), load(path)
    assert adata.ids == folder.ids
    assert torch.equal(adata.fields["expression"], folder.fields["expression"])
    assert torch.equal(adata.x[:], folder.x[:])
    # the same AnnData with an image given by path: positions are in that image's pixels
    slide = tmp_path / "slide.png"
    Image.fromarray(gradient(FULLRES, 1.0)).save(slide)
    given = load(path, image=slide, spot_diameter_px=40.0, image_size=16)
    assert given.extra["tile_px"] == 80
    assert_centred(given, fx, scale=1.0)
    with pytest.raises(DataError, match="spot_diameter_px is needed"):
        load(path, image=slide)


def test_metadata_joined_by_barcode(tmp_path, fx):
    table = pd.DataFrame({"barcode": fx.in_tissue[::-1], "region": [f"r{i % 3}" for i in range(len(fx.in_tissue))]})
    table.to_csv(tmp_path / "meta.tsv", sep="\t", index=False)
    samples = load(fx.folder, metadata=tmp_path / "meta.tsv", id_column="barcode")
    assert samples.obs.loc[fx.in_tissue[-1], "region"] == "r0"


def test_batches_carry_tiles_and_expression(fx):
    samples = load(fx.folder, image_size=16)
    loader = training_loader(IndexedDataset(samples.x, fields=samples.fields), batch_size=8, seed=0)
    batch = next(iter(loader))
    assert batch["x"].shape == (8, 3, 16, 16) and batch["expression"].shape == (8, 12)
    assert torch.equal(batch["x"], samples.x[batch["index"]])
    assert torch.equal(batch["expression"], samples.fields["expression"][batch["index"]])
    views = build_views(samples.info)
    assert isinstance(views, ImageViews)
    assert views(batch["x"]).shape == (8, 3, 16, 16)


def test_raw_features_are_pooled_tile_pixels(fx):
    samples = load(fx.folder)
    features = raw_features(samples)
    assert features.shape == (len(samples), 3 * 16 * 16)
    np.testing.assert_allclose(features, pooled_pixels(samples.x[:]), rtol=1e-6)


# ---------- errors: one line, naming the counts, nothing written ----------

def expect_error(folder, *fragments, **kwargs):
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    with pytest.raises(DataError) as err:
        load(folder, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def rewrite_positions(fx, edit):
    table = fx.positions.reset_index()
    edit(table)
    table.to_csv(fx.folder / "spatial" / "tissue_positions_list.csv", header=False, index=False)


def test_spots_outside_the_image(fx):
    def push_out(table):
        table.loc[table["barcode"].isin(fx.in_tissue[:2]), "pxl_row_in_fullres"] = FULLRES + 30
    rewrite_positions(fx, push_out)
    expect_error(fx.folder, "2 of 44 spots lie outside the 400 x 400 image", fx.in_tissue[0])


def test_matrix_barcodes_missing_from_positions(fx):
    rewrite_positions(fx, lambda table: table.drop(index=table.index[table["barcode"].isin(fx.barcodes[:3])],
                                                   inplace=True))
    expect_error(fx.folder, "3 barcodes of the matrix are not in tissue_positions_list.csv")


def test_in_tissue_spots_missing_from_matrix(fx):
    rewrite_positions(fx, lambda table: table.__setitem__("in_tissue", 1))
    expect_error(fx.folder, "4 in-tissue spots of tissue_positions_list.csv are not in the matrix")


@pytest.mark.parametrize("key", ["tissue_hires_scalef", "spot_diameter_fullres"])
def test_missing_scale_factor(fx, key):
    path = fx.folder / "spatial" / "scalefactors_json.json"
    factors = json.loads(path.read_text())
    del factors[key]
    path.write_text(json.dumps(factors))
    expect_error(fx.folder, f"missing scale factor {key}")


def test_image_with_two_channels(fx):
    hires = fx.folder / "spatial" / "tissue_hires_image.png"
    Image.new("LA", (400, 400), color=(200, 255)).save(hires)
    expect_error(fx.folder, "has 2 channels")


def test_image_with_five_channels(tmp_path, fx):
    slide = tmp_path / "slide.tif"
    tifffile.imwrite(slide, np.zeros((FULLRES, FULLRES, 5), dtype=np.uint8), photometric="minisblack",
                     planarconfig="contig")
    expect_error(fx.folder, "has 5 channels", image=slide)


def test_expression_without_counts(fx):
    (fx.folder / "filtered_feature_bc_matrix.h5").unlink()
    write_h5(fx.folder / "filtered_feature_bc_matrix.h5", np.zeros_like(fx.counts), fx.barcodes, fx.genes)
    expect_error(fx.folder, "has no counts", "44 x 12 values")


def test_expression_with_no_genes(fx):
    path = fx.folder / "filtered_feature_bc_matrix.h5"
    path.unlink()
    write_h5(path, np.zeros((len(fx.barcodes), 0), dtype=np.int64), fx.barcodes, [])
    with h5py.File(path, "r") as f:
        assert tuple(f["matrix/shape"][()]) == (0, len(fx.barcodes))
    expect_error(fx.folder, "is empty (44 spots x 0 genes)")


def test_config_values_checked():
    with pytest.raises(ValueError, match="resolution"):
        SpatialData(path="x", resolution="medium")
    with pytest.raises(ValueError, match="tile_um"):
        SpatialData(path="x", tile_um=0)


def test_own_resolution_with_given_image_is_a_config_error(tmp_path, fx):
    with pytest.raises(ConfigError, match="resolution lowres"):
        load(fx.folder, image=fx.folder / "spatial" / "tissue_hires_image.png", resolution="lowres")


def test_held_out_spots_stay_lazy_and_cut_the_same_tiles(fx):
    """Pre-training's held-out split (``workflows.pretrain._subset``) takes some spots as another SpotTiles: the
    same tiles as indexing the whole set, nothing cut until indexed; a lazy matrix of lazy rows."""
    from biolatent.workflows.pretrain import _subset

    samples = load(fx.folder)
    rows = np.array([5, 0, 3, len(samples) - 1])
    part = _subset(samples, rows)
    assert isinstance(part.x, SpotTiles) and len(part.x) == 4 and part.ids == [samples.ids[i] for i in rows]
    torch.testing.assert_close(part.x[:], samples.x[torch.as_tensor(rows)])
    torch.testing.assert_close(part.x[torch.tensor([True, False, False, True])], samples.x[torch.tensor([5, -1])])
    np.testing.assert_array_equal(part.x.numpy(), samples.x[torch.as_tensor(rows)].numpy())
