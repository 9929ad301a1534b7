"""TS2Vec: the hierarchical contrastive loss against a plain-loop computation of the paper's definition, the
overlapping crops, timestamp masking and the data checks."""

from __future__ import annotations

import math

import pytest
import torch

from biolatent.data.samples import DataInfo
from biolatent.errors import ConfigError, DataError
from biolatent.methods.ts2vec import TS2Vec, hierarchical_contrastive_loss, take_per_row
from biolatent.models.series_cnn import DilatedConvEncoder


def _anchor_loss(rows: list[torch.Tensor], anchor: int, positive: int) -> float:
    """-log( exp(s_ap) / sum_{j != a} exp(s_aj) ) with dot-product similarities."""
    sims = [float(rows[anchor] @ rows[j]) for j in range(len(rows)) if j != anchor]
    return -float(rows[anchor] @ rows[positive]) + math.log(sum(math.exp(s) for s in sims))


def _instance(z1: torch.Tensor, z2: torch.Tensor) -> float:
    b, t = z1.shape[:2]
    if b == 1:
        return 0.0
    total = 0.0
    for step in range(t):
        rows = [z1[i, step] for i in range(b)] + [z2[i, step] for i in range(b)]
        total += sum(_anchor_loss(rows, a, (a + b) % (2 * b)) for a in range(2 * b)) / (2 * b)
    return total / t


def _temporal(z1: torch.Tensor, z2: torch.Tensor) -> float:
    b, t = z1.shape[:2]
    if t == 1:
        return 0.0
    total = 0.0
    for i in range(b):
        rows = [z1[i, s] for s in range(t)] + [z2[i, s] for s in range(t)]
        total += sum(_anchor_loss(rows, a, (a + t) % (2 * t)) for a in range(2 * t)) / (2 * t)
    return total / b


def _pool(z: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.maximum(z[:, 2 * s], z[:, 2 * s + 1]) for s in range(z.shape[1] // 2)], dim=1)


def loop_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float, temporal_unit: int) -> float:
    """The paper's Algorithm 1, written with plain loops."""
    total, level = 0.0, 0
    while z1.shape[1] > 1:
        total += alpha * _instance(z1, z2)
        if level >= temporal_unit:
            total += (1 - alpha) * _temporal(z1, z2)
        level += 1
        z1, z2 = _pool(z1), _pool(z2)
    total += alpha * _instance(z1, z2)
    return total / (level + 1)


@pytest.mark.parametrize(("batch", "length", "alpha", "temporal_unit"),
                         [(3, 5, 0.5, 0), (2, 8, 0.3, 1), (1, 4, 0.5, 0), (4, 1, 0.5, 0), (2, 6, 1.0, 0)])
def test_hierarchical_loss_matches_a_plain_loop(batch, length, alpha, temporal_unit):
    gen = torch.Generator().manual_seed(batch * 10 + length)
    z1, z2 = torch.randn(batch, length, 3, generator=gen), torch.randn(batch, length, 3, generator=gen)
    expected = loop_loss(z1.double(), z2.double(), alpha, temporal_unit)
    got = hierarchical_contrastive_loss(z1.double(), z2.double(), alpha, temporal_unit)
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_identical_views_far_apart_give_a_lower_loss():
    z = torch.randn(4, 8, 16) * 5
    assert hierarchical_contrastive_loss(z, z) < hierarchical_contrastive_loss(z, torch.randn(4, 8, 16) * 5)


def test_crops_overlap_on_the_same_time_steps_of_each_series():
    method = TS2Vec(DilatedConvEncoder(1, hidden_dim=4, out_dim=4, depth=1))
    x = torch.arange(6 * 40, dtype=torch.float32).reshape(6, 1, 40)  # values encode (series, time)
    offsets = set()
    for seed in range(20):
        torch.manual_seed(seed)
        view1, view2, overlap = method.crops(x)
        assert 2 <= overlap <= 40
        torch.testing.assert_close(view1[:, :, -overlap:], view2[:, :, :overlap])
        rows = (view1[:, 0, 0] // 40).long()
        assert torch.equal(rows, torch.arange(6))  # each crop stays inside its own series
        offsets.add(tuple((view1[:, 0, 0] % 40).long().tolist()))
    assert len(offsets) > 10


def test_take_per_row():
    x = torch.arange(12.0).reshape(2, 1, 6)
    assert take_per_row(x, torch.tensor([1, 3]), 2).tolist() == [[[1.0, 2.0]], [[9.0, 10.0]]]


def test_masking_hides_time_steps_and_training_lowers_the_loss():
    torch.manual_seed(0)
    method = TS2Vec(DilatedConvEncoder(1, hidden_dim=8, out_dim=8, depth=2), mask_probability=0.5)
    mask = method._mask(100, 50, torch.device("cpu"))
    assert mask is not None and 0.4 < mask.float().mean() < 0.6
    assert TS2Vec(DilatedConvEncoder(1, hidden_dim=4, out_dim=4, depth=1), mask_probability=0.0)._mask(
        2, 5, torch.device("cpu")) is None
    t = torch.linspace(0, 6.28, 32)
    x = torch.stack([torch.sin(t * (1 + i % 4)) for i in range(16)]).unsqueeze(1)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)
    losses = []
    for step in range(30):
        torch.manual_seed(step)
        loss = method({"x": x}).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_checks():
    encoder = DilatedConvEncoder(1, hidden_dim=4, out_dim=4, depth=1)
    with pytest.raises(ConfigError, match="alpha"):
        TS2Vec(encoder, alpha=1.5)
    with pytest.raises(ConfigError, match="per-time-step"):
        TS2Vec(torch.nn.Linear(2, 2))
    with pytest.raises(DataError, match="one sample per series"):
        TS2Vec(encoder).check_data(DataInfo("series", n_features=1))
    with pytest.raises(DataError, match="shorter than the smallest crop"):
        TS2Vec(encoder, temporal_unit=3).check_data(DataInfo("series", channels=1, max_length=10))
