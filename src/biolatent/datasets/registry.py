"""The explicit registry of real datasets (name -> recipe)."""

from __future__ import annotations

from biolatent.datasets import (
    aeon_ucr,
    cmu1_tiles,
    colin27_aal,
    eunomia_omop,
    geuvadis,
    grch37_chr20,
    internal_bleeding,
    mni152,
    nafld_records,
    oct4_mafk,
    pbmc68k,
    promoters_chr20,
    visium_mouse_brain,
)
from biolatent.datasets.recipe import DatasetRecipe
from biolatent.errors import DataError

DATASETS: dict[str, DatasetRecipe] = {
    recipe.name: recipe for recipe in (pbmc68k.RECIPE, oct4_mafk.RECIPE, cmu1_tiles.RECIPE, geuvadis.RECIPE,
                                          internal_bleeding.RECIPE, mni152.RECIPE, visium_mouse_brain.RECIPE,
                                          nafld_records.RECIPE, eunomia_omop.RECIPE,
                                          colin27_aal.RECIPE, grch37_chr20.RECIPE, promoters_chr20.RECIPE,
                                          *aeon_ucr.RECIPES)
}


def list_datasets() -> list[DatasetRecipe]:
    """Every registered recipe, in registry order."""
    return list(DATASETS.values())


def get_recipe(name: str) -> DatasetRecipe:
    """The recipe called ``name``; DataError listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})") from None
