"""The example config configs/records/heart_records_behrt.yaml on the simulated heart cohort's records
(`data simulate heart --records`): births and landmarks from meta.tsv (keyed by its id column), pretrain ->
embed -> evaluate through the CLI."""

from pathlib import Path

import pandas as pd
import pytest

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "records" / "heart_records_behrt.yaml"


@pytest.mark.slow  # a real training run; see issue 16 part 8 (fast set under 3 minutes)
def test_heart_records_behrt_config_end_to_end(run_cli, tmp_path):
    import scanpy as sc

    sim = tmp_path / "sim"
    result = run_cli("data", "simulate", "heart", "--n", "40", "--records", "--out", sim)
    assert result.code == 0, result.err
    meta = pd.read_csv(sim / "meta.tsv", sep="\t")
    run = tmp_path / "run"
    sets = []
    for key, value in {"data.path": sim / "records.tsv", "data.metadata": sim / "meta.tsv",
                       "data.births": sim / "meta.tsv", "model.hidden_size": 16, "model.intermediate_size": 32,
                       "model.heads": 2, "train.batch_size": 16}.items():
        sets += ["--set", f"{key}={value}"]
    result = run_cli("pretrain", CONFIG, *sets, "--out", run, "--quiet")
    assert result.code == 0, result.err
    assert run_cli("embed", run).code == 0
    adata = sc.read_h5ad(run / "embeddings.h5ad")
    assert adata.obsm["X_biolatent"].shape == (40, 16)
    assert list(adata.obs_names) == list(meta["id"].astype(str))
    result = run_cli("evaluate", run, "--label", "hypertension", "--fractions", "1.0", "--seeds", "2",
                     "--supervised-steps", "5")
    assert result.code == 0, result.err
    table = pd.read_csv(run / "evaluate" / "hypertension" / "efficiency.tsv", sep="\t")
    assert {"ssl", "random_init"} <= set(table.representation)
    assert (run / "records.json").is_file()  # the report's records section
