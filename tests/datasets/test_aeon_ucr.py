"""The aeon-shipped UCR/UEA recipes: TRAIN and TEST joined into one .ts with the split in meta.tsv; loaded through
data.modality series, the values and labels are aeon's own (its loader is the oracle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biolatent.config import SeriesData
from biolatent.datasets import DATASETS
from biolatent.datasets.aeon_ucr import SHIPPED, VERSION, dataset_name, join_splits
from biolatent.errors import DataError

HEADER = "@problemName {name}\n@univariate true\n@classLabel true a b\n@data\n"


def test_join_splits_keeps_train_first_and_records_the_split(tmp_path):
    (tmp_path / "A_TRAIN.ts").write_text(HEADER.format(name="A") + "1,2,3:a\n4,5,6:b\n")
    (tmp_path / "A_TEST.ts").write_text(HEADER.format(name="A_test") + "7,8,9:b\n")
    out = tmp_path / "out"
    out.mkdir()
    join_splits(tmp_path / "A_TRAIN.ts", tmp_path / "A_TEST.ts", out)
    from biolatent.data.loaders import load_samples

    samples = load_samples(SeriesData(path=out / "series.ts", metadata=out / "meta.tsv"))
    assert samples.obs["split"].tolist() == ["train", "train", "test"]
    assert samples.obs["label"].tolist() == ["a", "b", "b"] and samples.x[2, 0].tolist() == [7, 8, 9]


def test_join_splits_refuses_different_headers(tmp_path):
    (tmp_path / "A_TRAIN.ts").write_text(HEADER.format(name="A") + "1,2,3:a\n")
    (tmp_path / "A_TEST.ts").write_text("@univariate false\n@classLabel true a b\n@data\n1,2,3:a\n")
    with pytest.raises(DataError, match="different headers"):
        join_splits(tmp_path / "A_TRAIN.ts", tmp_path / "A_TEST.ts", tmp_path)


def test_every_shipped_set_is_registered():
    assert {dataset_name(name) for name in SHIPPED} <= set(DATASETS)
    assert all(DATASETS[dataset_name(n)].modality == "series" for n in SHIPPED)
    assert dataset_name("Covid3Month_disc") == "aeon-covid3month-disc"


# aeon's equal-length copies of two shipped sets (JapaneseVowels, PickupGestureWiimoteZ)
EQUAL_LENGTH_COPIES = {"JapaneseVowels_eq", "PickupGestureWiimoteZ_eq"}


def test_every_classification_set_aeon_ships_is_a_recipe():
    """SHIPPED is every problem in aeon's data folder with a TRAIN and a TEST .ts saying @classLabel true (the
    regression sets say @targetLabel; UnitTestTimeStamps has no TEST file)."""
    aeon = pytest.importorskip("aeon", reason="aeon (extra 'series') is not installed")
    if aeon.__version__ != VERSION:
        pytest.skip(f"SHIPPED lists aeon {VERSION}'s data sets; aeon {aeon.__version__} is installed")
    from biolatent.datasets.aeon_ucr import _fields, split_ts

    data = Path(aeon.__file__).parent / "datasets" / "data"
    classification = set()
    for train in data.glob("*/*_TRAIN.ts"):
        name = train.name[: -len("_TRAIN.ts")]
        test = train.with_name(f"{name}_TEST.ts")
        labelled = _fields(split_ts(train)[0]).get("classlabel", "").startswith("true")
        if test.is_file() and labelled and name not in EQUAL_LENGTH_COPIES:
            classification.add(name)
    assert classification == set(SHIPPED)


def test_shipped_descriptions_state_the_sizes_of_the_files():
    """The description's 'n_train + n_test' is what the files hold (read here, not typed twice)."""
    aeon = pytest.importorskip("aeon", reason="aeon (extra 'series') is not installed")
    from biolatent.io.ts_format import read_ts

    data = Path(aeon.__file__).parent / "datasets" / "data"
    for name, (description, _, _) in SHIPPED.items():
        sizes = [len(read_ts(data / name / f"{name}_{part}.ts").series) for part in ("TRAIN", "TEST")]
        assert f"{sizes[0]} + {sizes[1]} " in description, name


@pytest.mark.parametrize("name", list(SHIPPED))
def test_registry_dataset_equals_aeons_own_loader(name, tmp_path, monkeypatch):
    pytest.importorskip("aeon", reason="aeon (extra 'series') is not installed")
    from aeon.datasets import load_classification

    from biolatent.data.loaders import load_samples

    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path))
    samples = load_samples(SeriesData(dataset=dataset_name(name)))
    split = samples.obs["split"].to_numpy()
    for part in ("train", "test"):
        x, y = load_classification(name, split=part)
        rows = np.flatnonzero(split == part)
        assert rows.size == len(y)
        # aeon lower-cases class labels; the file's own spelling is kept here
        assert [v.lower() for v in samples.obs["label"].iloc[rows]] == [str(v).lower() for v in y]
        if isinstance(x, np.ndarray):  # equal lengths: the very values
            np.testing.assert_allclose(samples.x[rows].numpy(), x, rtol=1e-6)
        else:  # unequal lengths (a list of (C, T_i)): resampled to the longest, own length kept
            assert samples.obs["length"].iloc[rows].tolist() == [s.shape[1] for s in x]
            assert samples.x.shape[2] == samples.obs["length"].max() > min(s.shape[1] for s in x)
            first = x[0]
            np.testing.assert_allclose(samples.x[rows[0], :, 0].numpy(), first[:, 0], rtol=1e-6)  # ends kept
            np.testing.assert_allclose(samples.x[rows[0], :, -1].numpy(), first[:, -1], rtol=1e-6)
    assert Path(tmp_path / dataset_name(name) / "manifest.json").is_file()
    assert not pd.isna(samples.obs["label"]).any()
