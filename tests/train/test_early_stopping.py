"""Early stopping of the supervised baseline on a validation part of the labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolatent.config import TrainConfig
from biolatent.models.mlp import MLPEncoder
from biolatent.train.early_stopping import EarlyStopping
from biolatent.train.fit import fit
from biolatent.train.supervised import SupervisedClassifier, supervised_baseline


def _data(seed: int = 0, n: int = 60):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 8)) + np.eye(3, 8)[y] * 3.0
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)


def test_training_stops_once_the_validation_loss_stops_improving_and_keeps_the_best_weights():
    x, y = _data()
    torch.manual_seed(0)
    model = SupervisedClassifier(MLPEncoder(8, hidden_dims=(16,), out_dim=8, dropout=0.0), 3)
    stopper = EarlyStopping({"x": x[48:], "y": y[48:]}, every=5, patience=3)
    train = TrainConfig(batch_size=16, lr=1e-2, seed=0)
    fit(model, x, train, y=y, indices=torch.arange(48), max_steps=2000, progress=False, callbacks=[stopper])
    assert stopper.stopped_step is not None and stopper.stopped_step < 2000
    assert stopper.stopped_step - stopper.best_step >= 3 * 5  # patience checks without improvement
    stopper.restore(model)
    assert stopper.validation_loss(model) == stopper.best_loss  # the best weights, not the last ones


@pytest.mark.slow  # a real training run; see issue 16 part 8 (fast set under 3 minutes)
def test_supervised_baseline_uses_the_validation_split_and_reports_its_budget():
    x, y = _data(1)
    runs: list[dict] = []
    calls: list[tuple[int, int]] = []

    def split(train_idx: np.ndarray, seed: int):
        calls.append((train_idx.size, seed))
        return np.arange(train_idx.size - 9), np.arange(train_idx.size - 9, train_idx.size)

    finetune = supervised_baseline(
        lambda: MLPEncoder(8, hidden_dims=(16,), out_dim=8, dropout=0.0), lambda: None, x, y.numpy(), 3,
        TrainConfig(batch_size=16, lr=1e-2, seed=0), 1000, validation_split=split, check_every=5, patience=3,
        on_trained=runs.append,
    )
    proba = finetune(np.arange(45), np.arange(45, 60), 0)
    assert proba.shape == (15, 3) and (proba.argmax(1) == y[45:].numpy()).mean() > 0.9
    assert calls == [(45, 0)]
    assert runs[0]["n_fit"] == 36 and runs[0]["n_validation"] == 9
    assert runs[0]["steps"] < 1000 and runs[0]["best_step"] <= runs[0]["steps"]
    no_split = supervised_baseline(
        lambda: MLPEncoder(8, hidden_dims=(16,), out_dim=8, dropout=0.0), lambda: None, x, y.numpy(), 3,
        TrainConfig(batch_size=16, seed=0), 20, validation_split=lambda idx, seed: None, on_trained=runs.append,
    )
    no_split(np.arange(6), np.arange(45, 60), 0)
    assert runs[-1] == {"n_fit": 6, "n_validation": 0, "max_steps": 20, "steps": 20, "best_step": None,
                        "lr": 1e-3, "validation_loss": None,
                        "lr_grid": [{"lr": 1e-3, "steps": 20, "best_step": None, "validation_loss": None}]}
