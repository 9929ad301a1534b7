"""``evaluate --split-column``: a data set's own train / test split instead of random stratified ones."""

from __future__ import annotations

import json

import anndata
import numpy as np
import pandas as pd
import pytest
import yaml

from biolatent.errors import DataError
from biolatent.evaluate.splits import column_split


def test_column_split_reads_train_and_test_in_any_case():
    obs = pd.DataFrame({"split": ["train", " Train", "TEST", "test", "train"]})
    train, test = column_split(obs, "split")
    assert train.tolist() == [0, 1, 4] and test.tolist() == [2, 3]


@pytest.mark.parametrize(("values", "column", "message"), [
    (["train", "test"], "fold", "no such metadata column"),
    (["train", "validation", "test"], "split", "found validation"),
    (["train", None, "test"], "split", r"found \(missing\)$"),
    (["train", "train"], "split", "2 training and 0 test"),
])
def test_column_split_refuses_what_is_not_a_train_test_split(values, column, message):
    with pytest.raises(DataError, match=message):
        column_split(pd.DataFrame({"split": values}), column)


@pytest.mark.slow
def test_evaluate_uses_the_split_column_as_the_test_set(run_cli, tmp_path, counts_h5ad, monkeypatch):
    import biolatent.evaluate.efficiency as efficiency

    adata = anndata.read_h5ad(counts_h5ad)
    is_test = np.random.default_rng(0).random(adata.n_obs) < 0.25
    adata.obs["split"] = np.where(is_test, "test", "train")
    data = tmp_path / "counts.h5ad"
    adata.write_h5ad(data)
    config = tmp_path / "vae.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"modality": "counts", "path": str(data)}, "method": {"name": "vae", "latent_dim": 4},
        "model": {"name": "mlp", "hidden_dims": [32], "out_dim": 16},
        "train": {"epochs": 1, "batch_size": 32, "seed": 0}}))
    run = tmp_path / "run"
    assert run_cli("pretrain", config, "--out", run, "--quiet").code == 0
    seen = []
    original = efficiency.run_label_efficiency

    def recording(*args, **kwargs):
        seen.append(kwargs["split"])
        return original(*args, **kwargs)

    monkeypatch.setattr(efficiency, "run_label_efficiency", recording)
    run_cli("evaluate", run, "--label", "cell_type", "--split-column", "fold").expect_error("no such metadata column")
    run_cli("evaluate", run, "--label", "cell_type", "--split-column", "split", "--test-splits", "2").expect_error(
        "one fixed test split")
    assert not (run / "evaluate").exists() and not seen  # nothing written on bad input
    result = run_cli("evaluate", run, "--label", "cell_type", "--split-column", "split", "--seeds", "2",
                     "--fractions", "0.5,1.0", "--supervised-steps", "5")
    assert result.code == 0, result.err
    assert seen and all(np.array_equal(test, np.flatnonzero(is_test)) for _, test in seen)
    assert all(np.array_equal(train, np.flatnonzero(~is_test)) for train, _ in seen)
    settings = json.loads((run / "evaluate" / "cell_type" / "evaluate.json").read_text())
    assert settings["split_column"] == "split"
    assert settings["test_fraction"] == pytest.approx(is_test.mean())
    assert settings["labelled_per_fraction"]["1"] == int((~is_test).sum())  # all of the training part


def test_probe_uses_the_split_column_and_refuses_a_bad_one(run_cli, tmp_path, monkeypatch):
    import biolatent.evaluate.efficiency as efficiency

    rng = np.random.default_rng(1)
    labels = np.repeat(["a", "b"], 40)
    split = np.where(rng.random(80) < 0.3, "test", "train")
    x = rng.normal(size=(80, 4)) + 3.0 * (labels == "b")[:, None]
    adata = anndata.AnnData(np.zeros((80, 1), np.float32), obs=pd.DataFrame({"kind": labels, "fold": split},
                                                                           index=[f"s{i}" for i in range(80)]))
    adata.obsm["X_biolatent"] = x.astype(np.float32)
    path = tmp_path / "embeddings.h5ad"
    adata.write_h5ad(path)
    seen = []
    original = efficiency.run_label_efficiency
    monkeypatch.setattr(efficiency, "run_label_efficiency",
                        lambda *a, **k: seen.append(k["split"]) or original(*a, **k))
    out = tmp_path / "probe"
    run_cli("probe", path, "--label", "kind", "--split-column", "split", "--out", out).expect_error(
        "no such metadata column")
    assert not out.exists() and not seen
    result = run_cli("probe", path, "--label", "kind", "--split-column", "fold", "--seeds", "2", "--fractions",
                     "0.5,1.0", "--out", out)
    assert result.code == 0, result.err
    (train, test), = seen
    assert np.array_equal(test, np.flatnonzero(split == "test"))
    assert np.array_equal(train, np.flatnonzero(split == "train"))
    summary = pd.read_csv(out / "evaluate" / "kind" / "efficiency.tsv", sep="\t")
    assert (summary["mean"][summary.metric == "balanced_accuracy"] > 0.9).all()  # separable classes
