"""The Visium-like spatial simulator: a Space Ranger folder that independent readers accept, with its truth."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biolatent.data.simulate import spatial
from biolatent.data.simulate.spatial import CELL_TYPES, simulate_tissue, write_spatial_dataset
from biolatent.errors import DataError

N_SPOTS, N_GENES, SEED = 200, 50, 3
POSITION_COLUMNS = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """pbmc68k (the signatures) is converted from scanpy's installed copy into a private cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BIOLATENT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_spatial_dataset(tmp_path_factory.mktemp("spatial") / "slide", N_SPOTS, N_GENES, seed=SEED)


def read_positions(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "spatial" / "tissue_positions_list.csv", header=None, names=POSITION_COLUMNS)


def read_hires(folder: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(folder / "spatial" / "tissue_hires_image.png").convert("RGB"))


def test_matrix_reads_back_with_scanpy(folder):
    import scanpy as sc

    adata = sc.read_10x_h5(folder / "filtered_feature_bc_matrix.h5")
    x = adata.X.toarray()
    assert adata.shape == (N_SPOTS, N_GENES)
    assert list(adata.obs_names) == list(read_positions(folder)["barcode"])
    assert (x >= 0).all() and np.array_equal(x, np.round(x)) and (x.sum(axis=1) > 0).all()
    genes = pd.read_csv(folder / "truth_genes.tsv", sep="\t")
    assert list(adata.var_names) == list(genes["gene"]) and adata.var_names.is_unique
    np.testing.assert_allclose(x.mean(axis=0), genes["mean_count"], atol=1e-3)
    assert (genes["kind"] == "independent").sum() == round(spatial.INDEPENDENT_FRACTION * N_GENES)


def test_folder_reads_with_scanpy_visium_reader(folder):
    """scanpy's own Space Ranger reader joins positions, scale factors and the hires image."""
    import scanpy as sc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = sc.read_visium(folder)
    library = next(iter(adata.uns["spatial"].values()))
    assert library["images"]["hires"].shape == read_hires(folder).shape
    positions = read_positions(folder).set_index("barcode").loc[adata.obs_names]
    np.testing.assert_array_equal(adata.obsm["spatial"], positions[["pxl_col_in_fullres", "pxl_row_in_fullres"]])


def test_visium_grid_and_positions_inside_the_image(folder):
    from scipy.spatial import cKDTree

    pos = read_positions(folder)
    assert pos["barcode"].is_unique and (pos["in_tissue"] == 1).all()
    assert ((pos["array_row"] % 2) == (pos["array_col"] % 2)).all()  # odd rows hold odd columns
    fullres = pos[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(float)
    distance, _ = cKDTree(fullres).query(fullres, k=2)
    assert np.abs(distance[:, 1] - spatial.SPOT_PITCH_UM / spatial.FULLRES_UM_PER_PX).max() <= 1.0
    # grid coordinates map linearly onto pixels: x = 50 um per column, y = 86.6 um per row
    np.testing.assert_allclose(np.diff(fullres[:, 0]) / 50.0, np.diff(pos["array_col"]), atol=0.05)
    factors = json.loads((folder / "spatial" / "scalefactors_json.json").read_text())
    assert factors["spot_diameter_fullres"] == spatial.SPOT_DIAMETER_UM
    image = read_hires(folder)
    assert max(image.shape[:2]) <= spatial.HIRES_MAX_PX
    tile = 2 * factors["spot_diameter_fullres"] * factors["tissue_hires_scalef"]
    assert 64 <= tile <= 128  # two spot diameters at hires
    hires = fullres * factors["tissue_hires_scalef"]
    radius = factors["spot_diameter_fullres"] * factors["tissue_hires_scalef"] / 2
    assert (hires - radius >= 0).all() and (hires[:, 0] + radius < image.shape[1]).all()
    assert (hires[:, 1] + radius < image.shape[0]).all()
    # every spot sits on stained tissue, the corner is glass
    under = image[hires[:, 1].astype(int), hires[:, 0].astype(int)].astype(float).mean(axis=1)
    assert image[:5, :5].mean() > 240 and np.median(under) < 220


def test_truth_fractions_and_domains(folder):
    truth = pd.read_csv(folder / "truth.tsv", sep="\t")
    fractions = truth[[f"frac_{t.name}" for t in CELL_TYPES]].to_numpy()
    assert list(truth["barcode"]) == list(read_positions(folder)["barcode"])
    assert (fractions >= 0).all() and np.allclose(fractions.sum(axis=1), 1.0, atol=1e-5)
    assert list(truth["domain"]) == [CELL_TYPES[k].name for k in fractions.argmax(axis=1)]
    assert truth["domain"].nunique() >= 3  # the fields make several domains, not one
    counted = truth[[f"cells_{t.name}" for t in CELL_TYPES]].to_numpy()
    assert (counted.sum(axis=1) == truth["n_cells"]).all() and truth["n_cells"].median() > 3
    # the cells drawn under a spot follow its composition
    dominant = counted.argmax(axis=1)[truth["n_cells"] >= 5]
    assert (dominant == fractions.argmax(axis=1)[truth["n_cells"] >= 5]).mean() > 0.5


def test_morphology_genes_follow_composition_and_independent_genes_do_not():
    """Without an image (cheap), on enough spots that chance correlations of unrelated genes are small."""
    tissue = simulate_tissue(3000, N_GENES, seed=SEED)
    counts = tissue.counts.astype(float)
    observed = counts / counts.sum(axis=1, keepdims=True)
    expected = tissue.expected / tissue.expected.sum(axis=1, keepdims=True)
    morphology = np.array(tissue.gene_kind) == "morphology"
    r_expected = np.array([np.corrcoef(observed[:, g], expected[:, g])[0, 1] for g in np.flatnonzero(morphology)])
    assert r_expected.min() > 0.5
    k = len(CELL_TYPES)
    r_fraction = np.abs(np.corrcoef(observed.T, tissue.fractions.T)[:N_GENES, N_GENES:N_GENES + k])
    assert r_fraction[~morphology].max() < 0.2
    assert np.median(r_fraction[morphology].max(axis=1)) > 0.5  # the same test separates the two kinds


def test_hematoxylin_differs_between_domains(folder):
    from skimage.color import rgb2hed

    truth = pd.read_csv(folder / "truth.tsv", sep="\t").set_index("barcode")
    factors = json.loads((folder / "spatial" / "scalefactors_json.json").read_text())
    hed = rgb2hed(read_hires(folder))
    pos = read_positions(folder).set_index("barcode")
    centres = pos[["pxl_row_in_fullres", "pxl_col_in_fullres"]].to_numpy() * factors["tissue_hires_scalef"]
    r = int(factors["spot_diameter_fullres"] * factors["tissue_hires_scalef"] / 2)
    truth["h"] = [hed[int(y) - r:int(y) + r, int(x) - r:int(x) + r, 0].mean() for y, x in centres]
    load = {t.name: t.density * np.pi * t.nucleus_um ** 2 * t.hematoxylin for t in CELL_TYPES}  # nuclear OD area
    present = truth.groupby("domain")["h"].agg(["mean", "std", "size"])
    present = present[present["size"] >= 10]
    names = sorted(present.index, key=load.get)
    assert len(names) >= 2
    low, high = present.loc[names[0]], present.loc[names[-1]]
    standard_error = np.sqrt(low["std"] ** 2 / low["size"] + high["std"] ** 2 / high["size"])
    assert high["mean"] - low["mean"] > 4 * standard_error


def test_same_seed_same_bytes(tmp_path):
    folders = [write_spatial_dataset(tmp_path / name, 30, 10, seed=seed) for name, seed in
               (("a", 1), ("b", 1), ("c", 2))]
    files = sorted(p.relative_to(folders[0]) for p in folders[0].rglob("*") if p.is_file())
    assert len(files) == 7
    for name in files:
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
    assert (folders[0] / "filtered_feature_bc_matrix.h5").read_bytes() != (
        folders[2] / "filtered_feature_bc_matrix.h5").read_bytes()


def test_failure_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(spatial, "write_10x_h5", broken)
    with pytest.raises(OSError, match="disk full"):
        write_spatial_dataset(tmp_path / "slide", 20, 10)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("spots", "genes", "message"), [(5, 10, "--spots must be >= 10"),
                                                         (20, 3, "--genes must lie in [5, 765]"),
                                                         (20, 900, "--genes must lie in [5, 765]")])
def test_bad_arguments(tmp_path, spots, genes, message):
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        write_spatial_dataset(tmp_path / "slide", spots, genes)
    assert not (tmp_path / "slide").exists()


def test_cli_writes_the_folder_and_refuses_a_non_empty_one(tmp_path, run_cli):
    out = tmp_path / "slide"
    result = run_cli("data", "simulate", "spatial", "--spots", "25", "--genes", "10", "--seed", "4", "--out", out)
    assert result.code == 0, result.err
    assert result.out.strip() == str(out)
    assert len(read_positions(out)) == 25 and (out / "truth_genes.tsv").is_file()
    before = sorted(p.name for p in out.rglob("*"))
    run_cli("data", "simulate", "spatial", "--spots", "25", "--out", out).expect_error("not empty")
    assert sorted(p.name for p in out.rglob("*")) == before
    run_cli("data", "simulate", "spatial", "--spots", "4", "--out", tmp_path / "other").expect_error("--spots")
    assert not (tmp_path / "other").exists()
