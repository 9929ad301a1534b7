"""A tiny Space Ranger output folder for tests (until the simulator writes one): a few dozen spots on a
Visium-like hexagonal grid, both positions formats, the matrix as 10x HDF5 (plain or gzipped) or Matrix Market
folder, and images whose colour encodes position (red = x, green = y of the full-resolution image), so a test can
tell where a tile was cut from.
"""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from PIL import Image

FULLRES = 800  # side of the (virtual) full-resolution image, px
SPOT_DIAMETER_FULLRES = 40.0
SCALEF = {"hires": 0.5, "lowres": 0.25}
COLUMNS = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]


@dataclass
class Fixture:
    folder: Path
    positions: pd.DataFrame  # every spot (in and out of tissue), index barcode
    barcodes: list[str]  # the matrix's spots, in matrix order
    counts: np.ndarray  # (len(barcodes), genes) int
    genes: list[str]

    @property
    def in_tissue(self) -> list[str]:
        """The matrix's in-tissue barcodes in matrix order: the samples a loader must give."""
        tissue = set(self.positions.index[self.positions["in_tissue"] == 1])
        return [b for b in self.barcodes if b in tissue]


def gradient(side: int, scale: float) -> np.ndarray:
    """uint8 (side, side, 3): red = full-res x / FULLRES, green = full-res y / FULLRES, blue 128."""
    full = (np.arange(side) + 0.5) / scale / FULLRES * 255.0
    red = np.broadcast_to(full[None, :], (side, side))
    green = np.broadcast_to(full[:, None], (side, side))
    blue = np.full((side, side), 128.0)
    return np.clip(np.stack([red, green, blue], axis=-1) + 0.5, 0, 255).astype(np.uint8)


def grid_positions(rows: int, cols: int, out_of_tissue: int) -> pd.DataFrame:
    records = []
    for r in range(rows):
        for k in range(cols):
            c = 2 * k + r % 2  # Visium's hexagonal grid: odd rows shifted by one column
            records.append((f"AC{len(records):04d}-1", 1, r, c, 150 + 90 * r, 150 + 35 * c))
    table = pd.DataFrame(records, columns=COLUMNS).set_index("barcode")
    table.iloc[len(table) - out_of_tissue:, 0] = 0
    return table


def write_positions(table: pd.DataFrame, spatial: Path, header: bool) -> Path:
    path = spatial / ("tissue_positions.csv" if header else "tissue_positions_list.csv")
    table.reset_index()[COLUMNS].to_csv(path, header=header, index=False)
    return path


def write_h5(path: Path, counts: np.ndarray, barcodes: list[str], genes: list[str]) -> None:
    """10x HDF5 v3: group ``matrix`` (CSC genes x spots = CSR spots x genes) with ``features``."""
    import h5py

    csr = sp.csr_matrix(counts)
    with h5py.File(path, "w") as f:
        group = f.create_group("matrix")
        group["barcodes"] = np.array(barcodes, dtype="S")
        group["data"] = csr.data.astype(np.int32)
        group["indices"] = csr.indices.astype(np.int64)
        group["indptr"] = csr.indptr.astype(np.int64)
        group["shape"] = np.array([counts.shape[1], counts.shape[0]], dtype=np.int32)
        features = group.create_group("features")
        features["id"] = np.array([f"ENSMUSG{i:011d}" for i in range(len(genes))], dtype="S")
        features["name"] = np.array(genes, dtype="S")
        features["feature_type"] = np.array(["Gene Expression"] * len(genes), dtype="S")
        features["genome"] = np.array(["mm10"] * len(genes), dtype="S")


def write_mtx(folder: Path, counts: np.ndarray, barcodes: list[str], genes: list[str]) -> None:
    """Space Ranger's Matrix Market folder: matrix.mtx.gz (genes x spots), barcodes.tsv.gz, features.tsv.gz."""
    from scipy.io import mmwrite

    folder.mkdir()
    plain = folder / "matrix.mtx"
    mmwrite(plain, sp.coo_matrix(counts.T.astype(np.int64)), field="integer")
    with plain.open("rb") as source, gzip.open(folder / "matrix.mtx.gz", "wb") as out:
        shutil.copyfileobj(source, out)
    plain.unlink()
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as out:
        out.write("".join(f"{b}\n" for b in barcodes))
    with gzip.open(folder / "features.tsv.gz", "wt") as out:
        out.write("".join(f"ENSMUSG{i:011d}\t{g}\tGene Expression\n" for i, g in enumerate(genes)))


def write_space_ranger(folder: Path, *, rows: int = 6, cols: int = 8, genes: int = 12, header: bool = False,
                       matrix: str = "h5", out_of_tissue: int = 4, seed: int = 0) -> Fixture:
    """Write a Space Ranger folder; ``matrix`` is ``h5``, ``h5.gz`` or ``mtx``; ``header`` picks
    ``tissue_positions.csv`` (Space Ranger >= 2.0) over ``tissue_positions_list.csv``. The matrix holds the
    in-tissue spots in an order other than the positions'."""
    rng = np.random.default_rng(seed)
    spatial = folder / "spatial"
    spatial.mkdir(parents=True)
    table = grid_positions(rows, cols, out_of_tissue)
    write_positions(table, spatial, header)
    barcodes = list(rng.permutation(table.index[table["in_tissue"] == 1]))
    names = [f"Gene{i}" for i in range(genes)]
    counts = rng.poisson(2.0, size=(len(barcodes), genes)).astype(np.int64)
    if matrix == "mtx":
        write_mtx(folder / "filtered_feature_bc_matrix", counts, barcodes, names)
    else:
        h5 = folder / "filtered_feature_bc_matrix.h5"
        write_h5(h5, counts, barcodes, names)
        if matrix == "h5.gz":
            with h5.open("rb") as source, gzip.open(f"{h5}.gz", "wb") as out:
                shutil.copyfileobj(source, out)
            h5.unlink()
    factors = {"spot_diameter_fullres": SPOT_DIAMETER_FULLRES, "fiducial_diameter_fullres": 60.0,
               **{f"tissue_{res}_scalef": scale for res, scale in SCALEF.items()}}
    (spatial / "scalefactors_json.json").write_text(json.dumps(factors))
    for res, scale in SCALEF.items():
        Image.fromarray(gradient(int(FULLRES * scale), scale)).save(spatial / f"tissue_{res}_image.png")
    return Fixture(folder, table, barcodes, counts, names)


def write_spatial_h5ad(path: Path, fixture: Fixture, library: str = "slice1") -> Path:
    """The fixture as scanpy/squidpy store Visium: obsm['spatial'] (x, y full-res px), images in uns['spatial']."""
    import anndata

    spatial = fixture.folder / "spatial"
    rows = fixture.positions.loc[fixture.barcodes]
    obs = rows[["in_tissue", "array_row", "array_col"]].copy()
    adata = anndata.AnnData(X=fixture.counts.astype(np.float32), obs=obs,
                            var=pd.DataFrame(index=fixture.genes))
    adata.obsm["spatial"] = rows[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy()
    images = {res: np.asarray(Image.open(spatial / f"tissue_{res}_image.png"), dtype=np.float32) / 255.0
              for res in SCALEF}
    factors = json.loads((spatial / "scalefactors_json.json").read_text())
    adata.uns["spatial"] = {library: {"images": images, "scalefactors": factors}}
    adata.write_h5ad(path)
    return path
