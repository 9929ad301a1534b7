"""Simulated DNA: two classes of random sequences, each with its own planted motif."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.io.fasta import write_fasta
from biolatent.io.tables import write_table

MOTIFS = {"motif0": "ATGCAAAT", "motif1": "TGCTGAGTCA"}  # octamer-like and MARE-like


def simulate_dna(n: int = 200, length: int = 60, seed: int = 0) -> tuple[list[tuple[str, str]], pd.DataFrame]:
    """``n`` uniform-random sequences of ``length`` bases; half carry MOTIFS["motif0"], half "motif1".

    Each motif is planted once at a random position. Returns FASTA records (ids seq0000..) and a table
    with columns ``id`` and ``label`` (the planted motif's name).
    """
    longest = max(len(m) for m in MOTIFS.values())
    if length < longest:
        raise ValueError(f"length must be >= {longest} to hold a motif, got {length}")
    rng = np.random.default_rng(seed)
    names = list(MOTIFS)
    labels = np.arange(n) % len(names)
    rng.shuffle(labels)
    bases = np.array(list("ACGT"))
    records: list[tuple[str, str]] = []
    for i, label in enumerate(labels):
        seq = bases[rng.integers(0, 4, size=length)]
        motif = MOTIFS[names[label]]
        start = int(rng.integers(0, length - len(motif) + 1))
        seq[start : start + len(motif)] = list(motif)
        records.append((f"seq{i:04d}", "".join(seq)))
    meta = pd.DataFrame({"id": [r[0] for r in records], "label": [names[k] for k in labels]})
    return records, meta


def write_dna_dataset(folder: str | Path, **kwargs: object) -> tuple[Path, Path]:
    """Simulate (``simulate_dna(**kwargs)``) and write ``folder/sequences.fa`` + ``folder/meta.tsv``."""
    folder = Path(folder)
    records, meta = simulate_dna(**kwargs)  # type: ignore[arg-type]
    fasta = write_fasta(folder / "sequences.fa", records)
    table = write_table(folder / "meta.tsv", meta.set_index("id"))
    return fasta, table
