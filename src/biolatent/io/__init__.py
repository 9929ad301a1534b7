"""One reader per file format; every reader raises ``biolatent.errors.DataError`` on bad input."""

from biolatent.io.fasta import read_fasta, write_fasta
from biolatent.io.h5ad import read_h5ad
from biolatent.io.images import read_image_folder, write_png
from biolatent.io.slide import otsu_threshold, read_slide_tiles
from biolatent.io.tables import read_table, write_table

__all__ = [
    "otsu_threshold",
    "read_fasta",
    "read_h5ad",
    "read_image_folder",
    "read_slide_tiles",
    "read_table",
    "write_fasta",
    "write_png",
    "write_table",
]
