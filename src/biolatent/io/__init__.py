"""One reader per file format; every reader raises ``biolatent.errors.DataError`` on bad input.

The readers are imported on first use (PEP 562): ``from biolatent.io.images import ...`` or
``biolatent.io.read_table`` loads only that reader's dependencies (torch, anndata, Pillow are loaded by
the readers that need them), so that commands which read nothing heavy start quickly.
"""

from importlib import import_module
from typing import Any

_READERS = {
    "read_fasta": "fasta",
    "write_fasta": "fasta",
    "read_genotypes": "genotypes",
    "read_sample_ids": "genotypes",
    "write_plink": "genotypes",
    "read_h5ad": "h5ad",
    "read_image_folder": "images",
    "write_png": "images",
    "SlideReader": "slide",
    "find_slide_tiles": "slide",
    "otsu_threshold": "slide",
    "read_slide_tiles": "slide",
    "read_table": "tables",
    "write_table": "tables",
}

__all__ = sorted(_READERS)


def __getattr__(name: str) -> Any:
    if name not in _READERS:
        raise AttributeError(f"module 'biolatent.io' has no attribute {name!r}")
    return getattr(import_module(f"biolatent.io.{_READERS[name]}"), name)
