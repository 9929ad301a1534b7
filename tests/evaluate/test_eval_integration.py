"""Batch integration: the scib metrics against independent computations and known cases, and ``evaluate
--batch`` on a batch-aware VAE run (outputs, bad input, embedding an unseen batch)."""

from __future__ import annotations

import json

import anndata
import numpy as np
import pandas as pd
import pytest
import yaml

from biolatent.errors import DataError
from biolatent.evaluate.integration import check_integration_inputs, integration_metrics


def _blobs(shift: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels, batches = rng.integers(0, 4, 400), rng.integers(0, 2, 400)
    x = rng.normal(size=(400, 6)) + 4.0 * labels[:, None] + shift * batches[:, None]
    return x, batches.astype(str), labels.astype(str)


@pytest.mark.slow
def test_metrics_against_sklearn_and_known_mixing():
    from sklearn.metrics import silhouette_score

    x, batches, labels = _blobs(shift=0.0)
    mixed = integration_metrics(x, batches, labels)
    # scib's label ASW is the silhouette of the cell types rescaled to [0, 1]
    assert mixed["label_asw"] == pytest.approx((silhouette_score(x, labels) + 1) / 2, abs=1e-4)
    assert mixed["nmi"] == pytest.approx(1.0) and mixed["ari"] == pytest.approx(1.0)  # four well-separated types
    assert mixed["total"] == pytest.approx(0.4 * mixed["batch_correction"] + 0.6 * mixed["bio_conservation"])
    separated = integration_metrics(*_blobs(shift=3.0))  # the batches split every type in two
    for metric in ("ilisi", "kbet", "batch_asw", "batch_correction"):
        assert mixed[metric] > separated[metric] + 0.1, metric
    assert mixed["kbet"] > 0.9  # well mixed: the local batch proportions match the global ones


def test_inputs_the_metrics_cannot_use():
    with pytest.raises(DataError, match="one batch"):
        check_integration_inputs(np.array(["a"] * 20), np.array(["t1", "t2"] * 10))
    with pytest.raises(DataError, match="one label"):
        check_integration_inputs(np.array(["a", "b"] * 10), np.array(["t1"] * 20))


@pytest.mark.slow
def test_evaluate_batch_on_a_batch_aware_vae(run_cli, tmp_path, counts_h5ad):
    config = tmp_path / "vae.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"modality": "counts", "path": str(counts_h5ad), "batch_column": "batch"},
        "method": {"name": "vae", "latent_dim": 4}, "model": {"name": "mlp", "hidden_dims": [32], "out_dim": 16},
        "train": {"epochs": 2, "batch_size": 32, "seed": 0}}))
    run = tmp_path / "run"
    assert run_cli("pretrain", config, "--out", run, "--quiet").code == 0
    assert json.loads((run / "data_info.json").read_text())["batch_categories"] == ["batch0", "batch1"]
    run_cli("evaluate", run, "--batch", "lab", "--label", "cell_type").expect_error("--batch 'lab'")
    run_cli("evaluate", run, "--batch", "batch").expect_error("--batch needs --label")
    assert not (run / "evaluate").exists()  # nothing written on bad input
    result = run_cli("evaluate", run, "--batch", "batch", "--label", "cell_type", "--fractions", "0.5",
                     "--seeds", "1")
    assert result.code == 0, result.err
    table = pd.read_csv(run / "evaluate" / "integration" / "integration.tsv", sep="\t")
    assert set(table.representation) == {"ssl", "random_init", "pca"}
    assert set(table.metric) >= {"ilisi", "kbet", "batch_asw", "label_asw", "nmi", "ari", "batch_correction"}
    assert table["mean"].between(0, 1).all()
    assert (run / "evaluate" / "integration" / "integration.png").stat().st_size > 0
    assert json.loads((run / "metrics.json").read_text())["integration"]["batch"] == "batch"
    assert (run / "evaluate" / "cell_type" / "efficiency.tsv").is_file()  # label efficiency as well
    # cells of a batch the model never saw cannot be embedded by a batch-conditioned decoder's codes
    other = anndata.read_h5ad(counts_h5ad)
    other.obs["batch"] = "batch7"
    other.write_h5ad(tmp_path / "other.h5ad")
    run_cli("embed", run, "--data", tmp_path / "other.h5ad", "--out", tmp_path / "e.h5ad").expect_error(
        "batch 'batch7' was not seen at training")
    assert not (tmp_path / "e.h5ad").exists()
