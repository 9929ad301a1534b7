"""grch37-chr20: the whole of human chromosome 20 (GRCh37 / hg19), 63,025,520 bases, for genome-scale DNA
pre-training (``data: {modality: dna, dataset: grch37-chr20, window: ...}``).

Source: the Debian package ``vt-examples`` (the test data of vt, Tan et al. 2015, Bioinformatics 31:2202), which
ships the chromosome as BGZF ``ref/20.fa.gz`` with samtools' index ``20.fa.gz.fai``. Conversion: the FASTA is
decompressed to ``chr20.fa`` (soft-masked repeats kept in lower case, sequence named ``20`` as in GRCh37) and
indexed; the index biolatent builds must equal the shipped samtools index, an independent check of both.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from biolatent.datasets.recipe import AptRecipe
from biolatent.errors import DataError

ROOT = "/usr/share/doc/vt/examples/ref/"
FASTA = ROOT + "20.fa.gz"
FAI = ROOT + "20.fa.gz.fai"
LENGTH = 63_025_520


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """``chr20.fa`` + ``chr20.fa.fai`` (checked against the shipped samtools index)."""
    from biolatent.io.faidx import FastaIndex

    fasta = out_dir / "chr20.fa"
    try:
        with gzip.open(members[FASTA], "rb") as source, fasta.open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 22)
    except (OSError, EOFError) as exc:
        raise DataError(f"grch37-chr20: cannot decompress {Path(FASTA).name}: {exc}") from None
    index = FastaIndex.build(fasta)
    shipped = members[FAI].read_text().split()
    built = [field for record in index.records for field in record.fai_line().split()]
    if built != shipped or index.records[0].length != LENGTH:
        raise DataError(f"grch37-chr20: the index of the decompressed FASTA ({built}) differs from the shipped "
                        f"samtools index ({shipped})")
    index.write()


RECIPE = AptRecipe(
    name="grch37-chr20",
    description="human chromosome 20 (GRCh37), 63,025,520 bases, indexed FASTA: genome-scale DNA pre-training in "
                "windows",
    modality="dna",
    package="vt-examples",
    version="0.57721+ds-3",
    members=(FASTA, FAI),
    sha256={
        FASTA: "83c80b3fb23822ff0a66f26306e46f5db3c83d48fcff68bcddc353a3d8ef581b",
        FAI: "9d25ad9f68b9deeff4a681d2315930ed3ac8a788d873e6fcf9e91c1c1755cabd",
    },
    convert=convert,
    data_config={"modality": "dna", "path": "chr20.fa", "window": 200},
    labels=[],
)
