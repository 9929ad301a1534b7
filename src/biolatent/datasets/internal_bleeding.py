"""internal-bleeding16: a real physiological series with a labelled anomaly, from the UCR anomaly archive.

UCR Time Series Anomaly Archive (Wu & Keogh 2021, IEEE TKDE, "Current time series anomaly detection
benchmarks are flawed and are creating the illusion of progress"), series 135 "InternalBleeding16": a normal
training part (1,200 points) and a test part (7,501 points, 12 labelled anomalous), as shipped in aeon 1.6.0.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from biolatent.datasets.recipe import DatasetRecipe
from biolatent.errors import DataError

ROOT = "aeon/datasets/data/KDD-TSAD_135/"
TRAIN = ROOT + "135_UCR_Anomaly_InternalBleeding16_TRAIN.csv"
TEST = ROOT + "135_UCR_Anomaly_InternalBleeding16_TEST.csv"


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """``train.tsv`` (timestamp, value: healthy only) and ``test.tsv`` (timestamp, value, is_anomaly)."""
    for member, name in ((TRAIN, "train.tsv"), (TEST, "test.tsv")):
        table = pd.read_csv(members[member])
        if list(table.columns) != ["timestamp", "value", "is_anomaly"]:
            raise DataError(f"internal-bleeding16: unexpected columns {list(table.columns)} in {member}")
        if name == "train.tsv":
            if table["is_anomaly"].any():
                raise DataError("internal-bleeding16: the training part holds labelled anomalies")
            table = table.drop(columns="is_anomaly")
        table.to_csv(out_dir / name, sep="\t", index=False)


RECIPE = DatasetRecipe(
    name="internal-bleeding16",
    description="UCR anomaly archive InternalBleeding16: 1,200 normal training points, 7,501 test points "
    "(12 anomalous)",
    modality="series",
    package="aeon",
    version="1.6.0",
    members=(TRAIN, TEST),
    sha256={
        TRAIN: "a531b6f4f556b17c0321d144c3f6b4a7bdf5e8464b2218566181702e77962c2b",
        TEST: "fe26577b94896943e8205d04d56bf2511fe05c008df535a1ec3826adff3597e2",
    },
    convert=convert,
    data_config={"modality": "series", "path": "train.tsv", "test": "test.tsv", "value_column": "value",
                 "label_column": "is_anomaly"},
    labels=["is_anomaly"],
)
