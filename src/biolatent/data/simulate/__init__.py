"""Tiny seeded data generators with a known class structure, and writers that put them on disk."""

from biolatent.data.simulate.counts import simulate_counts, simulate_log_expression, write_counts_dataset
from biolatent.data.simulate.dna import MOTIFS, simulate_dna, write_dna_dataset
from biolatent.data.simulate.images import simulate_images, write_image_dataset

__all__ = [
    "MOTIFS",
    "simulate_counts",
    "simulate_dna",
    "simulate_images",
    "simulate_log_expression",
    "write_counts_dataset",
    "write_dna_dataset",
    "write_image_dataset",
]
