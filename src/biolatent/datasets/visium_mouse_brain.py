"""visium-mouse-brain: a real 10x Visium sample (mouse brain section, H&E), as a plain Space Ranger folder.

Source: the Debian package ``r-cran-seurat`` (Seurat's test data, Hao et al. 2021, Cell 184:3573), folder
``/usr/share/doc/r-cran-seurat/tests/testdata/visium/``: a 10x Genomics Visium mouse-brain section (Space Ranger
output) cut down by the Seurat authors to the first 100 genes (in genome order, chr1 first) of its filtered matrix.

Limits, stated in the registry description: only the low-resolution image (600 x 599 px; a 55 um spot is about
5 px across), so tiles show regional morphology only, not cells; 100 genes, mostly lowly expressed (about 50 UMIs
a spot), so per-gene prediction is noisy.

Conversion (``convert``) into ``spaceranger/``, the layout ``biolatent.io.visium`` reads:
``filtered_feature_bc_matrix.h5`` (gunzipped), ``spatial/tissue_positions_list.csv`` (gunzipped),
``spatial/scalefactors_json.json`` and ``spatial/tissue_lowres_image.png`` (copied).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from biolatent.datasets.recipe import AptRecipe

ROOT = "/usr/share/doc/r-cran-seurat/tests/testdata/visium/"
MATRIX = ROOT + "filtered_feature_bc_matrix.h5.gz"
POSITIONS = ROOT + "spatial/tissue_positions_list.csv.gz"
SCALEFACTORS = ROOT + "spatial/scalefactors_json.json"
LOWRES = ROOT + "spatial/tissue_lowres_image.png"
FOLDER = "spaceranger"


def _gunzip(source: Path, target: Path) -> None:
    with gzip.open(source, "rb") as packed, target.open("wb") as out:
        shutil.copyfileobj(packed, out)


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """A Space Ranger folder ``spaceranger/`` of the four files (module docstring)."""
    folder = out_dir / FOLDER
    (folder / "spatial").mkdir(parents=True)
    _gunzip(members[MATRIX], folder / "filtered_feature_bc_matrix.h5")
    _gunzip(members[POSITIONS], folder / "spatial" / "tissue_positions_list.csv")
    shutil.copyfile(members[SCALEFACTORS], folder / "spatial" / "scalefactors_json.json")
    shutil.copyfile(members[LOWRES], folder / "spatial" / "tissue_lowres_image.png")


RECIPE = AptRecipe(
    name="visium-mouse-brain",
    description="10x Visium mouse brain (Seurat test sample): 2,695 in-tissue spots x the first 100 genes in "
                "genome order (about 50 UMIs a spot) + H&E at low resolution only (600 x 599 px, a spot ~5 px: "
                "regional morphology, not cells)",
    modality="spatial",
    package="r-cran-seurat",
    version="4.3.0-1",
    members=(MATRIX, POSITIONS, SCALEFACTORS, LOWRES),
    sha256={
        MATRIX: "0d65013d0164e17482a53b86ab22bf32563d5aff67fecbef545a3aa730f57ba3",
        POSITIONS: "e49cfcb7f0c7b3b2ff347acf4e118b7fce4a93eaa07b07c496ab57589c000d00",
        SCALEFACTORS: "1c24e2de6abd169b9ee6115cfd218a3f6c870698984cb50a79fb44225ea0d430",
        LOWRES: "733bfba3b8622f2f4cbe5a43da79eac0b1ec3768825afa6ca38fd8f70d828efb",
    },
    convert=convert,
    data_config={"modality": "spatial", "path": FOLDER},
    labels=[],
)
