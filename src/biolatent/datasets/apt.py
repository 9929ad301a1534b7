"""The Debian route of the dataset registry: data shipped in a .deb, obtained with ``apt-get download``.

``AptRecipe`` is a ``DatasetRecipe`` whose ``package`` is a Debian package holding a tar archive
(``archive``, a path inside the package, pinned by ``archive_sha256``); ``members`` are file names inside that
archive, each pinned by ``sha256``; without an ``archive`` the members are files of the package itself (absolute
paths inside it). ``fetch_apt`` mirrors ``fetch.fetch``: download (the ordinary client,
``apt-get update`` once if the package lists lack the package and we are root), ``dpkg -x``, sha256 of the
archive, safe extraction of only the members, sha256 of each, ``convert``, atomic cache folder with
``manifest.json``. Network failures raise ``RegistryUnreachable`` (tests skip on it); anything else DataError.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from biolatent.datasets.cache import RegistryUnreachable, cache_dir, is_cached, sha256_file, verify_members
from biolatent.datasets.recipe import AptRecipe
from biolatent.errors import DataError
from biolatent.rundir import write_json

# fetch.py imports the registry, which imports the recipes that import this module: fetch is imported lazily
Progress = Callable[[str], Any]

_APT_UNREACHABLE = ("Temporary failure resolving", "Could not resolve", "Failed to fetch", "Unable to connect",
                    "Connection timed out", "Network is unreachable", "Connection refused", "No route to host",
                    "Could not connect")
_APT_UNKNOWN = ("Unable to locate package", "has no installation candidate", "No packages found",
                "Can't select candidate version", "not found")


def _unreachable(message: str) -> DataError:
    return RegistryUnreachable(message)


def _run(command: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    except FileNotFoundError:
        raise _unreachable(f"cannot {what}: {command[0]} is not installed (not a Debian system)") from None
    except subprocess.TimeoutExpired:
        raise _unreachable(f"cannot {what}: {command[0]} timed out") from None


def _last_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in f"{result.stdout}\n{result.stderr}".splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E:")]
    return (errors or lines or [f"exit status {result.returncode}"])[-1]


def download_deb(package: str, dest: Path) -> Path:
    """``apt-get download package`` into ``dest`` (``apt-get update`` first when the lists lack it and we are root)."""
    dest.mkdir(parents=True, exist_ok=True)
    what = f"obtain {package} from the Debian archive"
    result = _run(["apt-get", "download", package], dest, what)
    output = f"{result.stdout}\n{result.stderr}"
    if result.returncode != 0 and any(s in output for s in _APT_UNKNOWN) and not any(s in output for s in
                                                                                    _APT_UNREACHABLE):
        if os.geteuid() != 0:
            raise DataError(f"cannot {what}: the apt package lists lack it; run `sudo apt-get update` once")
        update = _run(["apt-get", "update"], dest, "update the apt package lists")
        if any(s in f"{update.stdout}\n{update.stderr}" for s in _APT_UNREACHABLE):
            raise _unreachable(f"cannot {what}: apt-get update: {_last_error(update)}")
        result = _run(["apt-get", "download", package], dest, what)
        output = f"{result.stdout}\n{result.stderr}"
    if result.returncode != 0:
        message = f"cannot {what}: {_last_error(result)}"
        raise _unreachable(message) if any(s in output for s in _APT_UNREACHABLE) else DataError(message)
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise DataError(f"cannot {what}: apt-get download left no .deb in {dest}")
    return debs[0]


def extract_deb_file(deb: Path, inner: str, dest: Path) -> Path:
    """``dpkg -x deb dest`` and the regular file ``inner`` (an absolute path inside the package) under it."""
    result = _run(["dpkg", "-x", str(deb), str(dest)], dest.parent, f"unpack {deb.name}")
    if result.returncode != 0:
        raise DataError(f"cannot unpack {deb.name}: {_last_error(result)}")
    return unpacked_file(deb, inner, dest)


def unpacked_file(deb: Path, inner: str, dest: Path) -> Path:
    """The regular file ``inner`` of ``deb`` already unpacked under ``dest``; DataError if absent or a link."""
    path = dest / safe_archive_path(inner.lstrip("/"))
    if path.is_symlink() or not path.is_file():
        raise DataError(f"{deb.name} has no regular file {inner}")
    return path


def safe_archive_path(name: str) -> PurePosixPath:
    """A tar member name as a relative path without a leading './'; DataError if absolute or with '..'."""
    path = PurePosixPath(name)
    if not name or name.startswith("/") or path.is_absolute() or ".." in path.parts:
        raise DataError(f"refusing unsafe archive member {name!r} (absolute or containing '..')")
    if not path.parts:
        raise DataError(f"refusing archive member {name!r} (not a file name)")
    return path


def safe_tar_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile extraction filter: only regular files at safe relative paths (no links, devices, '..', '/')."""
    safe_archive_path(member.name)
    if member.issym() or member.islnk():
        raise DataError(f"refusing archive member {member.name!r}: it is a link")
    if not member.isfile():
        raise DataError(f"refusing archive member {member.name!r}: not a regular file")
    return tarfile.data_filter(member, dest) if hasattr(tarfile, "data_filter") else member


def extract_tar_members(archive: Path, members: tuple[str, ...], dest: Path) -> dict[str, Path]:
    """Extract only ``members`` (names with or without './') of a tar archive under ``dest``, safely."""
    dest.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                name = str(PurePosixPath(info.name)) if info.name not in ("", ".") else ""
                if name not in members:
                    continue
                safe_tar_filter(info, str(dest))
                if hasattr(tarfile, "data_filter"):
                    tar.extract(info, path=dest, filter=safe_tar_filter)
                else:  # Python without extraction filters: copy the checked regular file ourselves
                    source = tar.extractfile(info)
                    assert source is not None
                    with source, (dest / name).open("wb") as out:
                        shutil.copyfileobj(source, out)
                found[name] = dest / name
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"cannot read archive {archive.name}: {exc}") from None
    absent = [m for m in members if m not in found]
    if absent:
        raise DataError(f"{archive.name} has no member(s) {', '.join(absent)}")
    return found


def obtain_members(recipe: AptRecipe, work: Path, progress: Progress = print) -> dict[str, Path]:
    """Download the package, check the archive's sha256, extract the members (sha256 checked by the caller)."""

    progress(f"{recipe.name}: downloading {recipe.package} (apt-get download, Debian archive)")
    deb = download_deb(recipe.package, work / "deb")
    if not recipe.archive:  # the members are files of the package itself: unpack it once
        first = extract_deb_file(deb, recipe.members[0], work / "root")
        return {recipe.members[0]: first, **{m: unpacked_file(deb, m, work / "root") for m in recipe.members[1:]}}
    archive = extract_deb_file(deb, recipe.archive, work / "root")
    actual = sha256_file(archive)
    if actual != recipe.archive_sha256:
        raise DataError(f"sha256 mismatch for {recipe.archive} in {deb.name}: expected {recipe.archive_sha256}, "
                        f"got {actual}")
    return extract_tar_members(archive, recipe.members, work / "members")


def fetch_apt(name: str, progress: Progress = print, required: dict[str, Path] | None = None) -> Path:
    """The prepared folder of the apt-route dataset ``name`` (as ``fetch.fetch``: verified, converted, cached);
    ``required``: the prepared folders of the datasets it is built from (``fetch.required_folders``)."""
    from biolatent.datasets.registry import get_recipe

    recipe = get_recipe(name)
    if not isinstance(recipe, AptRecipe):
        raise DataError(f"dataset {name!r} is not obtained through apt; use biolatent.datasets.fetch")
    missing = [name for name in recipe.requires if f"dataset:{name}" not in (required or {})]
    if missing:
        raise DataError(f"dataset {name!r} is built from {', '.join(missing)}: obtain it with "
                        "biolatent.datasets.fetch, which prepares those first")
    root = cache_dir()
    folder = root / recipe.name
    if is_cached(recipe, folder):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{recipe.name}.", dir=root) as work_name:
        work = Path(work_name)
        files = obtain_members(recipe, work, progress)
        verify_members(recipe, files)
        progress(f"{recipe.name}: sha256 verified; converting")
        out = work / "out"
        out.mkdir()
        recipe.convert({**files, **(required or {})}, out)
        write_json(out / "manifest.json", {
            "recipe": {**recipe.summary(), "source": "apt", "archive": recipe.archive,
                       "archive_sha256": recipe.archive_sha256},
            "sha256": recipe.sha256,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
        if folder.exists():
            if is_cached(recipe, folder):
                return folder
            shutil.rmtree(folder)
        os.replace(out, folder)
    progress(f"{recipe.name}: ready in {folder}")
    return folder
