"""The supervised regressor, and `biolatent evaluate` / `biolatent probe` on a numeric column end to end."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from biolatent.config import TrainConfig
from biolatent.errors import DataError
from biolatent.evaluate.efficiency import SUMMARY_COLUMNS
from biolatent.evaluate.metrics import METRICS, REGRESSION_METRICS, regression_metrics
from biolatent.models.mlp import MLPEncoder
from biolatent.report.build import Section, _efficiency
from biolatent.train.supervised import SupervisedRegressor, supervised_baseline


def _tiny_linear_data(seed: int = 0, n: int = 96, d: int = 5):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = (x @ torch.tensor([1.5, -2.0, 0.5, 0.0, 1.0]) * 4.0 + 60.0).numpy().astype(np.float64)
    return x, y  # a target in its own units: mean 60, sd about 11


def test_regressor_loss_is_mse_on_standardised_targets_and_predict_undoes_it():
    torch.manual_seed(0)
    model = SupervisedRegressor(MLPEncoder(5, hidden_dims=(8,), out_dim=4, dropout=0.0), target_mean=60.0,
                                target_sd=10.0)
    x, y = _tiny_linear_data()
    batch = {"x": x[:16], "y": torch.as_tensor(y[:16], dtype=torch.float32)}
    out = model(batch)
    z = model.head(model.encoder(x[:16])).squeeze(1)
    expected = torch.mean((z - (batch["y"] - 60.0) / 10.0) ** 2)
    assert float(out.loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(0.5)
    assert model.predict(x[:3]).tolist() == pytest.approx([65.0] * 3)  # 0.5 sd above the mean
    assert model.predict(x[:3]).dtype == np.float64
    with pytest.raises(DataError, match="target_sd must be positive"):
        SupervisedRegressor(MLPEncoder(5, out_dim=4), target_sd=0.0)


@pytest.mark.slow
def test_supervised_baseline_regression_learns_a_simple_target_and_is_seeded():
    x, y = _tiny_linear_data()
    train = TrainConfig(batch_size=32, lr=1e-2, weight_decay=0.0, accelerator="cpu", devices=1)
    finetune = supervised_baseline(lambda: MLPEncoder(5, hidden_dims=(32,), out_dim=16, dropout=0.0),
                                   lambda: None, x, y, None, train, 150, task="regression")
    train_idx, test_idx = np.arange(64), np.arange(64, 96)
    pred = finetune(train_idx, test_idx, 0)
    assert pred.shape == (32,) and pred.dtype == np.float64
    m = regression_metrics(y[test_idx], pred)
    assert m["pearson_r"] > 0.9 and m["r2"] > 0.7
    assert np.array_equal(pred, finetune(train_idx, test_idx, 0))  # same seed, same predictions
    assert not np.allclose(pred, finetune(train_idx, test_idx, 1))
    with pytest.raises(DataError, match="task must be classification or regression"):
        supervised_baseline(lambda: MLPEncoder(5), lambda: None, x, y, None, train, 1, task="ordinal")


@pytest.mark.slow
def test_evaluate_and_probe_a_numeric_column_end_to_end(run_cli, tiny_config, tmp_path):
    run = tmp_path / "run"
    assert run_cli("pretrain", tiny_config("counts", "vae", epochs=1), "--out", run, "--quiet").code == 0
    args = ("--fractions", "0.25,1.0", "--seeds", "2", "--supervised-steps", "5")

    result = run_cli("evaluate", run, "--label", "library_size", *args)  # float column: regression
    assert result.code == 0, result.err
    table = pd.read_csv(run / "evaluate" / "library_size" / "efficiency.tsv", sep="\t")
    assert list(table.columns) == SUMMARY_COLUMNS
    assert set(table.metric) == set(REGRESSION_METRICS)
    assert set(table.representation) == {"ssl", "random_init", "pca", "supervised"}
    assert (table.n_seeds == table.fraction.map({0.25: 2, 1.0: 1})).all()  # 100%: the 2 subset seeds repeat one fit
    settings = json.loads((run / "metrics.json").read_text())["evaluate"]["library_size"]
    assert settings["task"] == "regression" and "classes" not in settings
    assert settings["headline"]["metric"] == "pearson_r"
    assert (run / "evaluate" / "library_size" / "efficiency.png").is_file()
    section = Section("efficiency", "Label efficiency", "evaluate/library_size/efficiency.tsv", "")
    _efficiency(run, section)  # the report's reader of efficiency.tsv copes with a regression table
    assert section.figures and section.tables[0].rows

    out = tmp_path / "probe"
    result = run_cli("probe", run / "embeddings.h5ad", "--label", "library_size", "--fractions", "0.5,1",
                     "--seeds", "2", "--out", out)
    assert result.code == 0, result.err
    table = pd.read_csv(out / "evaluate" / "library_size" / "efficiency.tsv", sep="\t")
    assert set(table.metric) == set(REGRESSION_METRICS) and set(table.probe) == {"linear", "knn"}
    assert json.loads((out / "metrics.json").read_text())["evaluate"]["library_size"]["task"] == "regression"

    result = run_cli("probe", run / "embeddings.h5ad", "--label", "cell_type", "--fractions", "0.5,1",
                     "--seeds", "2", "--out", out)  # categorical: still classification
    assert result.code == 0, result.err
    assert set(pd.read_csv(out / "evaluate" / "cell_type" / "efficiency.tsv", sep="\t").metric) == set(METRICS)
    settings = json.loads((out / "metrics.json").read_text())["evaluate"]
    assert settings["cell_type"]["task"] == "classification"
    assert settings["cell_type"]["classes"] == ["type0", "type1", "type2"]
    assert settings["library_size"]["task"] == "regression"  # the first label's results are kept

    bad = tmp_path / "bad"
    result = run_cli("probe", run / "embeddings.h5ad", "--label", "cell_type", "--task", "regression",
                     "--out", bad)
    result.expect_error("label column 'cell_type' is categorical")
    assert not bad.exists() or not any(bad.rglob("efficiency.tsv"))
