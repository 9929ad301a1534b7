import math

import numpy as np
import pytest
import torch

from biolatent.errors import ConfigError
from biolatent.methods.ema import cosine_momentum
from biolatent.methods.moco import MoCo, contrastive_logits
from biolatent.models.mlp import MLPEncoder
from biolatent.models.resnet import ResNetEncoder
from method_views import ListViews


def _unit(v: np.ndarray) -> np.ndarray:
    return v / math.sqrt(float(np.dot(v, v)))


def _infonce_reference(q: np.ndarray, k: np.ndarray, queue: np.ndarray, tau: float) -> float:
    """He et al. 2020, Eq. 1 with the other in-batch keys as extra negatives, written as loops."""
    total = 0.0
    for i in range(q.shape[0]):
        qi = _unit(q[i])
        positive = math.exp(float(np.dot(qi, _unit(k[i]))) / tau)
        denominator = sum(math.exp(float(np.dot(qi, _unit(k[j]))) / tau) for j in range(k.shape[0]))
        denominator += sum(math.exp(float(np.dot(qi, _unit(queue[m]))) / tau) for m in range(queue.shape[0]))
        total += -math.log(positive / denominator)
    return total / q.shape[0]


def _mlp_moco(**kwargs) -> MoCo:
    encoder = MLPEncoder(10, hidden_dims=(8,), out_dim=6, dropout=0.0)
    defaults = {"projection_dim": 4, "hidden_dim": 8, "queue_size": 5}
    return MoCo(encoder, **(defaults | kwargs))


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_contrastive_logits_match_loops(tau: float) -> None:
    rng = np.random.default_rng(0)
    q, k, queue = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(6, 3))
    queue_unit = np.stack([_unit(v) for v in queue])
    logits, labels = contrastive_logits(torch.tensor(q), torch.tensor(k), torch.tensor(queue_unit), tau)
    got = torch.nn.functional.cross_entropy(logits, labels).item()
    assert logits.shape == (4, 10)
    assert got == pytest.approx(_infonce_reference(q, k, queue, tau), rel=1e-5)


def test_v2_forward_matches_reference_and_fills_queue() -> None:
    torch.manual_seed(0)
    xa, xb = torch.rand(4, 10), torch.rand(4, 10)
    method = _mlp_moco(queue_size=100)
    method.views = ListViews(xa, xb)
    # the key encoder differs from the query encoder: perturb it
    with torch.no_grad():
        for p in method.key_encoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
    method.train()
    with torch.no_grad():
        q = method.projector(method.encoder(xa)).numpy().astype(np.float64)
        k = method.key_projector(method.key_encoder(xb)).numpy().astype(np.float64)
    out = method({"x": xa})
    # the queue was empty: only the in-batch keys are negatives (the 96 unfilled zero rows are not used)
    assert out.loss.item() == pytest.approx(_infonce_reference(q, k, np.zeros((0, 3)), 0.2), rel=1e-5)
    assert int(method.queue_filled) == 4 and int(method.queue_ptr) == 4
    assert out.metrics["queue_fill"] == pytest.approx(0.04)
    queue = method.queued().numpy().astype(np.float64)
    np.testing.assert_allclose(queue, np.stack([_unit(v) for v in k]), rtol=1e-5, atol=1e-6)
    # second step: the 4 queued keys are negatives too
    out2 = method({"x": xa})
    assert out2.loss.item() == pytest.approx(_infonce_reference(q, k, queue, 0.2), rel=1e-5)
    assert int(method.queue_filled) == 8


def test_queue_pointer_wraps_and_only_filled_rows_are_used() -> None:
    method = _mlp_moco(queue_size=5)
    keys = torch.eye(4)[[0, 1, 2]]
    method.enqueue(keys)
    assert int(method.queue_ptr) == 3 and int(method.queue_filled) == 3
    assert torch.equal(method.queued(), keys)
    more = torch.tensor([[0.0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]])
    method.enqueue(more)  # rows 3, 4, then wraps to row 0
    assert int(method.queue_ptr) == 1 and int(method.queue_filled) == 5
    assert torch.equal(method.queue, torch.stack([more[2], keys[1], keys[2], more[0], more[1]]))
    big = torch.eye(4)[[0, 1, 2, 3, 0, 1, 2]] * 3.0  # more keys than slots: keep the last 5, normalised
    method.enqueue(big)
    assert int(method.queue_ptr) == 0 and int(method.queue_filled) == 5
    assert torch.equal(method.queue, big[-5:] / 3.0)


def test_eval_forward_leaves_queue_alone() -> None:
    method = _mlp_moco().eval()
    method({"x": torch.rand(4, 10)})
    assert int(method.queue_filled) == 0 and int(method.queue_ptr) == 0


def test_v3_symmetric_loss_matches_reference() -> None:
    torch.manual_seed(1)
    xa, xb = torch.rand(6, 10), torch.rand(6, 10)
    method = _mlp_moco(version=3, temperature=0.5)
    assert not hasattr(method, "queue")
    method.views = ListViews(xa, xb)
    method.train()
    with torch.no_grad():
        q1 = method.predictor(method.projector(method.encoder(xa))).numpy().astype(np.float64)
        q2 = method.predictor(method.projector(method.encoder(xb))).numpy().astype(np.float64)
        k1 = method.key_projector(method.key_encoder(xa)).numpy().astype(np.float64)
        k2 = method.key_projector(method.key_encoder(xb)).numpy().astype(np.float64)
    out = method({"x": xa})
    empty = np.zeros((0, 4))
    expected = (_infonce_reference(q1, k2, empty, 0.5) + _infonce_reference(q2, k1, empty, 0.5)) * 2 * 0.5
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("version", [2, 3])
def test_momentum_update_and_schedule(version: int) -> None:
    torch.manual_seed(0)
    method = _mlp_moco(version=version, momentum=0.9)
    with torch.no_grad():
        for p in method.encoder.parameters():
            p.add_(torch.randn_like(p))
    student = [p.detach().clone() for p in method.encoder.parameters()]
    teacher = [p.detach().clone() for p in method.key_encoder.parameters()]
    method.on_train_batch_end(0, 10)
    m = 0.9  # v2: fixed; v3: cosine at step 0 = base
    for t_old, s, t_new in zip(teacher, student, method.key_encoder.parameters(), strict=True):
        torch.testing.assert_close(t_new, m * t_old + (1 - m) * s)
    teacher = [p.detach().clone() for p in method.key_encoder.parameters()]
    method.on_train_batch_end(10, 10)
    m = 0.9 if version == 2 else 1.0  # v3: the cosine schedule reaches 1 at the last step
    for t_old, s, t_new in zip(teacher, student, method.key_encoder.parameters(), strict=True):
        torch.testing.assert_close(t_new, m * t_old + (1 - m) * s)


def test_cosine_momentum_schedule() -> None:
    assert cosine_momentum(0.99, 0, 100) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 50, 100) == pytest.approx(0.995)
    assert cosine_momentum(0.99, 100, 100) == pytest.approx(1.0)
    assert cosine_momentum(0.99, 150, 100) == pytest.approx(1.0)
    assert cosine_momentum(0.99, 3, 0) == pytest.approx(0.99)


def test_key_encoder_frozen_and_in_state_dict() -> None:
    method = _mlp_moco()
    assert all(not p.requires_grad for p in method.key_encoder.parameters())
    assert all(not p.requires_grad for p in method.key_projector.parameters())
    trainable = {id(p) for p in method.parameters() if p.requires_grad}
    assert trainable.isdisjoint({id(p) for p in method.key_encoder.parameters()})
    state = method.state_dict()
    assert {"queue", "queue_ptr", "queue_filled"} <= set(state)
    assert any(k.startswith("key_encoder.") for k in state) and any(k.startswith("key_projector.") for k in state)
    method.train()
    method({"x": torch.rand(4, 10)})
    method.on_train_batch_end(1, 10)
    restored = _mlp_moco()
    restored.load_state_dict(method.state_dict(), strict=True)
    assert torch.equal(restored.queue, method.queue) and int(restored.queue_filled) == 4
    assert all(torch.equal(a, b) for a, b in zip(restored.key_encoder.parameters(),
                                                 method.key_encoder.parameters(), strict=True))


def test_seeding_and_volume_encoder() -> None:
    encoder = ResNetEncoder(1, 3, widths=(4, 8), blocks=(1, 1))
    method = MoCo(encoder, projection_dim=4, hidden_dim=8, version=3).train()
    x = torch.rand(4, 1, 16, 16, 16)
    losses = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        losses.append(method({"x": x}).loss.item())
    assert losses[0] == losses[1] and losses[0] != losses[2]
    assert method.embed(x).shape == (4, 8)


def test_errors() -> None:
    with pytest.raises(ConfigError, match="version"):
        _mlp_moco(version=1)
    with pytest.raises(ConfigError, match="temperature"):
        _mlp_moco(temperature=0.0)
    with pytest.raises(ConfigError, match="queue_size"):
        _mlp_moco(queue_size=0)
    with pytest.raises(ConfigError, match="momentum"):
        _mlp_moco(momentum=1.5)
    with pytest.raises(ConfigError, match="batch_size"):
        _mlp_moco()({"x": torch.rand(1, 10)})


def test_queue_longer_than_the_data_is_refused_before_training() -> None:
    from biolatent.errors import DataError

    method = _mlp_moco(queue_size=10)
    method.check_samples([0] * 11)
    with pytest.raises(DataError, match="queue_size 10 must be smaller than the number of samples"):
        method.check_samples([0] * 10)
    _mlp_moco(queue_size=10, version=3).check_samples([0] * 3)  # v3 has no queue
