"""The records modality: long tables and OMOP folders -> BEHRT tokens; no event after the prediction time is seen."""

import pandas as pd
import pytest
import torch
import yaml

from biolatent.build import load_config
from biolatent.data.loaders import load_samples
from biolatent.data.record_tokens import CLS_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS
from biolatent.errors import DataError
from records_fixture import write_omop, write_records


def config(paths, **data):
    section = {"modality": "records", "path": str(paths["records"]), "births": str(paths["births"]),
               "metadata": str(paths["meta"]), "max_length": 64} | data
    return load_config({"data": section, "method": {"name": "behrt"}}).data


@pytest.fixture()
def paths(tmp_path):
    return write_records(tmp_path / "rec", n=20)


def test_long_table_tokens(paths):
    samples = load_samples(config(paths))
    vocab = samples.extra["vocab"]
    assert samples.ids == [f"p{i:03d}" for i in range(20)]
    assert samples.x.shape == (20, 4, 64) and samples.x.dtype == torch.int64
    assert list(vocab[: len(SPECIAL_TOKENS)]) == list(SPECIAL_TOKENS)
    codes = samples.x[:, 0]
    assert (codes[:, 0] == CLS_ID).all()
    # every patient's sequence: [CLS], then visits each closed by [SEP]; padding only at the end
    events = pd.read_csv(paths["records"], sep="\t")
    first = events[events.patient == "p000"]
    n_tokens = int((codes[0] != PAD_ID).sum())
    visible = first  # no prediction time: the future event is there too
    assert n_tokens == 1 + len(visible) + visible.time.nunique()
    assert int((codes[0] == SEP_ID).sum()) == visible.time.nunique()
    # ages: whole years from birth at each visit; segments alternate by visit; positions count visits from 1
    birth = pd.Timestamp(pd.read_csv(paths["births"], sep="\t").birth[0])
    first_day = pd.Timestamp(visible.time.min())
    assert int(samples.x[0, 1, 1]) == int((first_day - birth).days // 365.25)
    assert int(samples.x[0, 3, 1]) == 1 and int(samples.x[0, 2, 1]) == 0
    assert samples.obs["label"].tolist() == [i % 2 for i in range(20)]


def test_no_event_after_the_prediction_time_is_visible(paths):
    """Each patient has a ``future:*`` event a year after their landmark: with prediction_time_column it is gone
    from the vocabulary and the tokens; without it, it is there (the test could fail)."""
    hidden = load_samples(config(paths, prediction_time_column="landmark"))
    assert not any(code.startswith("future") for code in hidden.extra["vocab"])
    seen = load_samples(config(paths))
    future_ids = [i for i, code in enumerate(seen.extra["vocab"]) if code.startswith("future")]
    assert future_ids and torch.isin(seen.x[:, 0], torch.tensor(future_ids)).any(dim=1).all()
    # a fixed date before every landmark hides more
    early = load_samples(config(paths, prediction_time="2012-01-01"))
    assert (early.obs["n_events"] <= hidden.obs["n_events"]).all()
    assert early.obs["n_events"].sum() < hidden.obs["n_events"].sum()


def test_truncation_keeps_the_most_recent_events(paths):
    full = load_samples(config(paths, prediction_time_column="landmark"))
    short = load_samples(config(paths, prediction_time_column="landmark", max_length=8))
    for row in range(len(full)):
        tokens = full.x[row, 0][full.x[row, 0] != PAD_ID].tolist()
        kept = short.x[row, 0][short.x[row, 0] != PAD_ID].tolist()
        vocab_full, vocab_short = full.extra["vocab"], short.extra["vocab"]
        tail = [vocab_full[t] for t in tokens[1:]][-(len(kept) - 1):]
        assert [vocab_short[t] for t in kept[1:]] == tail and kept[0] == CLS_ID


def test_min_count_and_value_bins(paths):
    binned = load_samples(config(paths, value_bins=3))
    assert {"lab:hba1c:q1", "lab:hba1c:q3"} <= set(binned.extra["vocab"])
    assert "lab:hba1c" not in binned.extra["vocab"]
    rare = load_samples(config(paths, min_count=10_000))
    assert list(rare.extra["vocab"]) == list(SPECIAL_TOKENS)
    assert ((rare.x[:, 0] == 1) | (rare.x[:, 0] <= SEP_ID)).all()  # every code is [UNK]


def test_omop_folder_matches_the_long_table(tmp_path, paths):
    folder = write_omop(tmp_path / "omop", paths["records"], paths["births"])
    samples = load_samples(load_config({"data": {"modality": "records", "path": str(folder), "max_length": 64},
                                        "method": {"name": "behrt"}}).data)
    table = load_samples(config(paths))
    assert samples.ids == [str(i + 1) for i in range(20)]  # person ids
    assert samples.obs["n_events"].tolist() == table.obs["n_events"].tolist()
    assert torch.equal(samples.x[:, 1:], table.x[:, 1:])  # same ages, segments and visit positions


def test_bad_records(tmp_path, paths):
    events = pd.read_csv(paths["records"], sep="\t")
    events.loc[0, "time"] = "1900-01-01"
    events.to_csv(tmp_path / "early.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match="before the patient's birth"):
        load_samples(config(paths, path=str(tmp_path / "early.tsv")))
    with pytest.raises(DataError, match="after the data's end"):
        load_samples(config(paths, data_end="2015-06-01"))
    events.drop(columns="patient").to_csv(tmp_path / "nopatient.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match="no patient column 'patient'"):
        load_samples(config(paths, path=str(tmp_path / "nopatient.tsv")))
    folder = write_omop(tmp_path / "omop", paths["records"], paths["births"])
    (folder / "PERSON.csv").unlink()
    with pytest.raises(DataError, match="no PERSON table"):
        load_samples(load_config({"data": {"modality": "records", "path": str(folder)},
                                  "method": {"name": "behrt"}}).data)


def test_a_saved_run_config_resolves_the_dataset_as_pretrain_did(tmp_path, monkeypatch):
    """config.yaml states every key at its default (births: null, value_bins: 0, ...): embed and evaluate must still
    get the recipe's births, landmark and value bins, or they would see other tokens and future events."""
    import importlib

    from biolatent.config import dump_config

    fetch_module = importlib.import_module("biolatent.datasets.fetch")
    monkeypatch.setattr(fetch_module, "fetch", lambda name, progress=None: tmp_path)
    fresh = load_config({"data": {"modality": "records", "dataset": "nafld-records"}, "method": {"name": "behrt"}})
    saved = load_config(yaml.safe_load(dump_config(fresh)))
    a, b = fetch_module.resolve_data_config(fresh.data), fetch_module.resolve_data_config(saved.data)
    assert a == b
    assert b.births == tmp_path / "births.tsv" and b.value_bins == 5 and b.prediction_time_column == "landmark"
    explicit = load_config({"data": {"modality": "records", "dataset": "nafld-records", "value_bins": 3},
                            "method": {"name": "behrt"}})
    assert fetch_module.resolve_data_config(explicit.data).value_bins == 3  # a user's own value wins
