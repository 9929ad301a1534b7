"""A file's identity (size, modification time, inode), to refuse a file that changed while a run read it."""

from __future__ import annotations

import os
from pathlib import Path

from biolatent.errors import DataError


def file_stamp(path: Path) -> tuple[int, int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns, info.st_ino


def check_unchanged(path: Path, stamp: tuple[int, int, int]) -> None:
    """Raise a ``DataError`` when ``path``'s size, modification time or inode differ from ``stamp``."""
    try:
        now = file_stamp(path)
    except OSError:
        now = None
    if now != stamp:
        raise DataError(f"{path} was modified during the run (size or modification time changed since it was "
                        f"opened): nothing was written; rerun once the file is complete")
