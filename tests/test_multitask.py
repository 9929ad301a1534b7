"""The supervised multi-task baseline of paired image + records data (train.multitask)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from biolatent.config import TrainConfig
from biolatent.train.multitask import UNKNOWN, MultiTaskPairedClassifier, balanced_weights, multitask_baseline
from biolatent.workflows.evaluate import validation_split


class _Flat(torch.nn.Module):
    def __init__(self, in_features: int, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.linear = torch.nn.Linear(in_features, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.float().flatten(1))


def test_balanced_weights_equal_sklearns_rule():
    from sklearn.utils.class_weight import compute_class_weight

    y = torch.tensor([0, 0, 0, 1, UNKNOWN, 2, 2, 0])
    known = y[y != UNKNOWN].numpy()
    expected = compute_class_weight("balanced", classes=np.arange(3), y=known)
    assert np.allclose(balanced_weights(y, 3).numpy(), expected)
    assert balanced_weights(torch.tensor([0, 0, UNKNOWN]), 2)[1] == 0  # an absent class weighs nothing


def test_loss_is_the_mean_of_the_tasks_weighted_cross_entropies_ignoring_unknown_labels():
    torch.manual_seed(0)
    model = MultiTaskPairedClassifier(_Flat(6, 3), _Flat(8, 2), [2, 3])
    x, records = torch.randn(5, 6), torch.randn(5, 8)
    y = torch.tensor([[0, 2], [1, UNKNOWN], [0, 0], [0, 1], [UNKNOWN, 2]])
    out = model({"x": x, "records": records, "y": y})
    features = torch.cat([model.image_encoder(x), model.records_encoder(records)], dim=1)
    expected = []
    for task, k in enumerate((2, 3)):
        labels = y[:, task]
        keep = labels != UNKNOWN
        counts = torch.bincount(labels[keep], minlength=k).float()
        weight = keep.sum() / (k * counts)
        logits = model.heads[task](features)[keep]
        nll = -torch.log_softmax(logits, dim=1)[torch.arange(int(keep.sum())), labels[keep]]
        w = weight[labels[keep]]
        expected.append((w * nll).sum() / w.sum())
    assert float(out.loss.detach()) == pytest.approx(float(torch.stack(expected).mean().detach()), rel=1e-5)
    assert F.softmax(model.heads[0](features), 1).shape == (5, 2)


@pytest.mark.slow  # about 40 s: two sweeps of the learning-rate grid (3 trainings each)
def test_multitask_baseline_learns_a_task_from_either_part_and_never_sees_the_test_rows():
    rng = np.random.default_rng(0)
    n = 120
    y0 = rng.integers(0, 2, n)
    y1 = rng.integers(0, 2, n)
    x = torch.as_tensor(rng.normal(size=(n, 4)) + 2.0 * y0[:, None], dtype=torch.float32)
    records = torch.as_tensor(rng.normal(size=(n, 3)) + 2.0 * y1[:, None], dtype=torch.float32)
    labels = np.stack([y0, y1], axis=1)
    train = TrainConfig(epochs=1, batch_size=16, lr=0.01, seed=0)
    runs: list[dict] = []

    def make():
        torch.manual_seed(0)
        return MultiTaskPairedClassifier(_Flat(4, 4), _Flat(3, 4), [2, 2])

    finetune = multitask_baseline(make, x, records, labels, train, 150,
                                  validation_split=validation_split(y0, stratify=True), on_trained=runs.append)
    train_idx, test_idx = np.arange(80), np.arange(80, n)
    proba = finetune(train_idx, test_idx, 0)
    assert proba.shape == (40, 2)
    assert (proba.argmax(1) == y0[test_idx]).mean() > 0.85
    assert runs[0]["n_fit"] + runs[0]["n_validation"] == 80
    scrambled = labels.copy()
    scrambled[test_idx] = 1 - scrambled[test_idx]  # the test labels cannot change what was learnt
    again = multitask_baseline(make, x, records, scrambled, train, 150,
                               validation_split=validation_split(y0, stratify=True))(train_idx, test_idx, 0)
    assert np.allclose(proba, again, atol=1e-6)
