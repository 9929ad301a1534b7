"""oct4-mafk: 200 bp ChIP-seq peak sequences of Oct4 and MafK (train + held-out test), shipped in janggu."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from biolatent.datasets.recipe import DatasetRecipe
from biolatent.errors import DataError
from biolatent.io.tables import write_table

ROOT = "janggu/resources/"
FILES = {  # member -> (tf, split)
    ROOT + "sample.fa": ("oct4", "train"),
    ROOT + "sample2.fa": ("mafk", "train"),
    ROOT + "sample_test.fa": ("oct4", "test"),
    ROOT + "sample2_test.fa": ("mafk", "test"),
}
_REGION = re.compile(r"^(?P<chrom>[^:]+):(?P<start>\d+)-(?P<end>\d+)$")


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """Write ``sequences.fa`` (ids ``<tf>_<chrom:start-end>``) and ``meta.tsv`` (id, tf, split, region)."""
    from biolatent.io.fasta import read_fasta, write_fasta

    records: list[tuple[str, str]] = []
    rows: list[dict[str, object]] = []
    for member, (tf, split) in FILES.items():
        for header, sequence in read_fasta(members[member]):
            record_id = f"{tf}_{header}"  # the same region can be a peak of both factors
            match = _REGION.match(header)
            rows.append({
                "id": record_id, "tf": tf, "split": split,
                "chrom": match["chrom"] if match else "",
                "start": int(match["start"]) if match else -1,
                "end": int(match["end"]) if match else -1,
            })
            records.append((record_id, sequence.upper()))
    meta = pd.DataFrame(rows)
    if meta["id"].duplicated().any():
        raise DataError(f"oct4-mafk: duplicate sequence id {meta['id'][meta['id'].duplicated()].iloc[0]!r}")
    write_fasta(out_dir / "sequences.fa", records)
    write_table(out_dir / "meta.tsv", meta.set_index("id"))


RECIPE = DatasetRecipe(
    name="oct4-mafk",
    description="7,997 ChIP-seq peaks of 200 bp: Oct4 vs MafK (column tf), train/test split",
    modality="dna",
    package="janggu",
    version="0.10.2",
    members=tuple(FILES),
    sha256={
        ROOT + "sample.fa": "effef1417ad2ca12514d5a4fe72741aaada7b29c16553655c4ed84ad83640e82",
        ROOT + "sample2.fa": "0228f9e016bd91c642526136270b4efef75dc2916f906d47785fbe11c0fb94f8",
        ROOT + "sample_test.fa": "8972da4ec4dd2de58f52da113eb2d5c79d1584fb2662aa3a43349e78b0b23724",
        ROOT + "sample2_test.fa": "014cdfc16a3b57fc98f4bf8a7885dbbdf8f9e4a6b03a381365a8ddb415f27f5f",
    },
    convert=convert,
    data_config={"modality": "dna", "path": "sequences.fa", "metadata": "meta.tsv"},
    labels=["tf"],
)
