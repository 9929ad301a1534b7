import math

import numpy as np
import pytest
import torch

from biolatent.errors import ConfigError
from biolatent.methods.byol import BYOL, byol_loss
from biolatent.methods.perturb import DefaultPerturbation
from biolatent.models.mlp import MLPEncoder
from biolatent.models.resnet import ResNetEncoder
from method_views import ListViews


def _pair_loss(p: np.ndarray, z: np.ndarray) -> float:
    """Grill et al. 2020, Eq. 2: || p/||p|| - z/||z|| ||^2, written out."""
    pn = p / math.sqrt(float(np.dot(p, p)))
    zn = z / math.sqrt(float(np.dot(z, z)))
    return float(sum((a - b) ** 2 for a, b in zip(pn, zn, strict=True)))


def _mlp_byol(**kwargs) -> BYOL:
    encoder = MLPEncoder(10, hidden_dims=(8,), out_dim=6, dropout=0.0)
    return BYOL(encoder, **({"projection_dim": 4, "hidden_dim": 8} | kwargs))


def test_byol_loss_is_normalised_squared_distance() -> None:
    rng = np.random.default_rng(0)
    p, z = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    got = byol_loss(torch.tensor(p), torch.tensor(z)).numpy()
    np.testing.assert_allclose(got, [_pair_loss(p[i], z[i]) for i in range(5)], rtol=1e-5)
    same = byol_loss(torch.tensor(p), torch.tensor(3 * p))
    assert torch.allclose(same, torch.zeros(5), atol=1e-6)


def test_forward_matches_symmetrised_reference() -> None:
    torch.manual_seed(0)
    xa, xb = torch.rand(6, 10), torch.rand(6, 10)
    method = _mlp_byol()
    with torch.no_grad():
        for p in method.target_encoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
    method.views = ListViews(xa, xb)
    method.train()
    with torch.no_grad():
        q1 = method.predictor(method.projector(method.encoder(xa))).numpy()
        q2 = method.predictor(method.projector(method.encoder(xb))).numpy()
        z1 = method.target_projector(method.target_encoder(xa)).numpy()
        z2 = method.target_projector(method.target_encoder(xb)).numpy()
    out = method({"x": xa})
    expected = np.mean([_pair_loss(q1[i], z2[i]) + _pair_loss(q2[i], z1[i]) for i in range(6)])
    assert out.loss.item() == pytest.approx(float(expected), rel=1e-5)
    assert out.metrics["cosine"] == pytest.approx(1 - float(expected) / 4, rel=1e-5)
    out.loss.backward()
    assert all(p.grad is None for p in method.target_encoder.parameters())
    assert all(p.grad is None for p in method.target_projector.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.predictor.parameters())


def test_target_update_follows_cosine_schedule() -> None:
    torch.manual_seed(0)
    method = _mlp_byol()
    assert method.momentum == 0.996
    with torch.no_grad():
        for p in list(method.encoder.parameters()) + list(method.projector.parameters()):
            p.add_(torch.randn_like(p))
    online = [p.detach().clone() for p in list(method.encoder.parameters()) + list(method.projector.parameters())]

    def target() -> list[torch.Tensor]:
        return [p.detach().clone() for p in
                list(method.target_encoder.parameters()) + list(method.target_projector.parameters())]

    for step, tau in ((0, 0.996), (50, 0.998), (100, 1.0)):
        before = target()
        method.on_train_batch_end(step, 100)
        assert method.momentum == pytest.approx(tau)
        for t_old, s, t_new in zip(before, online, target(), strict=True):
            torch.testing.assert_close(t_new, tau * t_old + (1 - tau) * s)


def test_target_frozen_in_state_dict_and_restored() -> None:
    method = _mlp_byol()
    trainable = [p for p in method.parameters() if p.requires_grad]
    frozen = list(method.target_encoder.parameters()) + list(method.target_projector.parameters())
    assert frozen and all(not p.requires_grad for p in frozen)
    assert len(trainable) + len(frozen) == len(list(method.parameters()))
    assert any(k.startswith("target_encoder.") for k in method.state_dict())
    with torch.no_grad():
        method.encoder.net[0].weight.add_(1.0)
    method.on_train_batch_end(5, 10)
    restored = _mlp_byol()
    restored.load_state_dict(method.state_dict(), strict=True)
    torch.testing.assert_close(restored.target_encoder.net[0].weight, method.target_encoder.net[0].weight)
    assert isinstance(restored.views, DefaultPerturbation)


def test_seeding_and_volume_encoder() -> None:
    method = BYOL(ResNetEncoder(1, 3, widths=(4, 8), blocks=(1, 1)), projection_dim=4, hidden_dim=8).train()
    x = torch.rand(4, 1, 16, 16, 16)
    losses = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        losses.append(method({"x": x}).loss.item())
    assert losses[0] == losses[1] and losses[0] != losses[2]
    assert 0.0 <= losses[0] <= 8.0
    assert method.embed(x).shape == (4, 8)


def test_errors() -> None:
    with pytest.raises(ConfigError, match="momentum"):
        _mlp_byol(momentum=-0.1)
    with pytest.raises(ConfigError, match="projection_dim"):
        _mlp_byol(projection_dim=0)
    with pytest.raises(ConfigError, match="batch_size"):
        _mlp_byol()({"x": torch.rand(1, 10)})


@pytest.mark.slow
@pytest.mark.parametrize("method", ["byol", "moco"])
def test_resume_restores_teacher_and_queue(tiny_config, tmp_path, method: str) -> None:
    """Through the trainer: a run killed in epoch 2 and resumed ends with the weights, teacher (and MoCo
    queue) of an unbroken run, so the EMA state is checkpointed and reloaded."""
    import lightning as L
    from safetensors.torch import load_file

    from biolatent.build import load_config
    from biolatent.workflows.pretrain import pretrain

    class Crash(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 1:  # before epoch 2's checkpoint: resume from epoch 1
                raise RuntimeError("power cut")

    overrides = ["method.queue_size=16"] if method == "moco" else []  # shorter than the tiny data set
    config = load_config(tiny_config("counts", method, epochs=3), overrides)
    quiet = {"progress": False, "say": lambda _: None}
    pretrain(config, tmp_path / "unbroken", **quiet)
    with pytest.raises(RuntimeError, match="power cut"):
        pretrain(config, tmp_path / "crashed", callbacks=[Crash()], **quiet)
    pretrain(config, tmp_path / "crashed", resume=True, **quiet)
    a = load_file(str(tmp_path / "unbroken" / "model.safetensors"))
    b = load_file(str(tmp_path / "crashed" / "model.safetensors"))
    teacher = "target_encoder." if method == "byol" else "key_encoder."
    assert any(k.startswith(teacher) for k in a) and a.keys() == b.keys()
    if method == "moco":
        assert int(a["queue_filled"]) > 0
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
