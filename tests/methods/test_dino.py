import math

import numpy as np
import pytest
import torch

from biolatent.errors import ConfigError
from biolatent.methods.dino import DINO, WeightNormLinear, dino_loss
from biolatent.models.cine import CineEncoder
from biolatent.models.resnet import ResNetEncoder
from biolatent.models.vit import ViTEncoder

SMALL = {"out_dim": 12, "hidden_dim": 16, "bottleneck_dim": 8}


class Corner(torch.nn.Module):
    """A deterministic 'local view': the top-left ``size`` crop (all spatial axes), shifted by the call count."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size, self.calls = size, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        crop = x[(..., *[slice(0, self.size)] * (x.ndim - 2))]
        return crop + 0.01 * self.calls


class MultiCropViews(torch.nn.Module):
    """Global views: x plus 0.1 x call count; ``local`` records its arguments and returns ``Corner``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls, self.local_args = 0, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x + 0.1 * self.calls

    def local(self, size: int, crop_scale: tuple[float, float]) -> torch.nn.Module:
        self.local_args.append((size, crop_scale))
        return Corner(size)


class NoLocalViews(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


def _dino_reference(student: list, teacher: list, center: np.ndarray, ts: float, tt: float) -> tuple[float, int]:
    """Caron et al. 2021, Algorithm 1 extended to multi-crop, as explicit loops -> (loss, number of pairs)."""
    total, pairs = 0.0, 0
    for i, t in enumerate(teacher):
        for v, s in enumerate(student):
            if v == i:
                continue
            per_sample = []
            for b in range(t.shape[0]):
                q = _softmax((t[b] - center) / tt)
                p = _softmax(s[b] / ts)
                per_sample.append(-sum(q[k] * math.log(p[k]) for k in range(len(q))))
            total += float(np.mean(per_sample))
            pairs += 1
    return total / pairs, pairs


@pytest.mark.parametrize("n_local", [0, 3])
def test_dino_loss_matches_loops_and_counts_pairs(n_local: int) -> None:
    rng = np.random.default_rng(0)
    student = [rng.normal(size=(4, 6)) for _ in range(2 + n_local)]
    teacher = [rng.normal(size=(4, 6)) for _ in range(2)]
    center = rng.normal(size=6) * 0.1
    got = dino_loss([torch.tensor(s) for s in student], [torch.tensor(t) for t in teacher],
                    torch.tensor(center).float(), 0.1, 0.04).item()
    expected, pairs = _dino_reference(student, teacher, center, 0.1, 0.04)
    assert pairs == 2 * (2 + n_local) - 2
    assert got == pytest.approx(expected, rel=1e-4)


def test_forward_multicrop_matches_reference_and_updates_center() -> None:
    torch.manual_seed(0)
    views = MultiCropViews()
    method = DINO(ResNetEncoder(3, 2, widths=(4, 8), blocks=(1, 1)), views=views, local_crops=3, **SMALL)
    with torch.no_grad():
        method.center.normal_(0, 0.1)
        for p in method.teacher_head.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(4, 3, 32, 32)
    method.train()
    encoder_inputs: list[tuple[int, ...]] = []
    handle = method.encoder.register_forward_pre_hook(lambda m, a: encoder_inputs.append(tuple(a[0].shape)))
    center = method.center.clone()
    globals_ = [x + 0.1, x + 0.2]
    locals_ = [x[..., :14, :14] + 0.01 * k for k in (1, 2, 3)]
    with torch.no_grad():  # batched as the paper's code does: global views together, local views together
        student = [*method.head(method.encoder(torch.cat(globals_))).split(4),
                   *method.head(method.encoder(torch.cat(locals_))).split(4)]
        teacher_t = list(method.teacher_head(method.teacher_encoder(torch.cat(globals_))).split(4))
    encoder_inputs.clear()
    out = method({"x": x})
    handle.remove()
    # local views: built once with 0.43 x 32 = 14 px and the paper's scale; the student sees them, batched
    assert views.local_args == [(14, (0.05, 0.4))]
    assert encoder_inputs == [(8, 3, 32, 32), (12, 3, 14, 14)]
    expected, pairs = _dino_reference([s.numpy() for s in student], [t.numpy() for t in teacher_t],
                                      center.numpy()[0], 0.1, 0.04)
    assert pairs == 8
    assert out.loss.item() == pytest.approx(expected, rel=1e-4)
    teacher_mean = torch.cat(teacher_t).mean(dim=0, keepdim=True)
    torch.testing.assert_close(method.center, 0.9 * center + 0.1 * teacher_mean, rtol=1e-4, atol=1e-6)


def test_exact_loss_with_batch_independent_encoder() -> None:
    """With BatchNorm in eval mode the forward equals the reference exactly (pairs 2 x 3 - 2 = 4 for one local)."""
    torch.manual_seed(1)
    views = MultiCropViews()
    method = DINO(ResNetEncoder(1, 3, widths=(4, 8), blocks=(1, 1)), views=views, local_crops=1, **SMALL)
    method.eval()
    x = torch.rand(3, 1, 16, 16, 16)
    globals_ = [x + 0.1, x + 0.2]
    local = [x[..., :7, :7, :7] + 0.01]
    with torch.no_grad():
        student = [method.head(method.encoder(v)).numpy() for v in globals_ + local]
        teacher = [method.teacher_head(method.teacher_encoder(v)).numpy() for v in globals_]
        center = method.center.clone()
        out = method({"x": x})
    expected, pairs = _dino_reference(student, teacher, center.numpy()[0], 0.1, 0.04)
    assert pairs == 4 and out.loss.item() == pytest.approx(expected, rel=1e-4)
    assert torch.equal(method.center, center)  # eval: no centre update
    assert views.local_args == [(7, (0.05, 0.4))]


def test_refuses_local_crops_without_local_views() -> None:
    encoder = ResNetEncoder(3, 2, widths=(4, 8), blocks=(1, 1))
    method = DINO(encoder, views=NoLocalViews(), local_crops=2, **SMALL)
    info = type("Info", (), {"modality": "image2d"})()
    with pytest.raises(ConfigError, match="local_crops: 0"):
        method.check_data(info)
    with pytest.raises(ConfigError, match="local crops"):
        method({"x": torch.rand(2, 3, 32, 32)})
    ok = DINO(encoder, views=NoLocalViews(), local_crops=0, **SMALL)
    ok.check_data(info)
    assert torch.isfinite(ok({"x": torch.rand(2, 3, 32, 32)}).loss)


def test_refuses_local_crops_with_fixed_size_vit() -> None:
    vit = ViTEncoder(32, 3, patch_size=8, dim=16, depth=1, heads=2)
    with pytest.raises(ConfigError, match="local_crops: 0"):
        DINO(vit, views=MultiCropViews(), local_crops=2, **SMALL)
    DINO(vit, views=MultiCropViews(), local_crops=0, **SMALL)


def test_teacher_ema_schedule_and_state() -> None:
    torch.manual_seed(0)
    method = DINO(ResNetEncoder(3, 2, widths=(4, 8), blocks=(1, 1)), local_crops=0, momentum=0.9, **SMALL)
    frozen = list(method.teacher_encoder.parameters()) + list(method.teacher_head.parameters())
    assert all(not p.requires_grad for p in frozen)
    assert {"center", "progress"} <= set(method.state_dict())
    assert any(k.startswith("teacher_head.") for k in method.state_dict())
    with torch.no_grad():
        for p in list(method.encoder.parameters()) + list(method.head.parameters()):
            p.add_(torch.randn_like(p))
    student = [p.detach().clone() for p in list(method.encoder.parameters()) + list(method.head.parameters())]
    for step, m in ((0, 0.9), (20, 1.0)):
        before = [p.detach().clone() for p in frozen]
        method.on_train_batch_end(step, 20)
        assert method.momentum == pytest.approx(m)
        for t_old, s, t_new in zip(before, student, frozen, strict=True):
            torch.testing.assert_close(t_new, m * t_old + (1 - m) * s)
    assert float(method.progress) == 1.0


def test_teacher_temperature_warmup() -> None:
    method = DINO(ResNetEncoder(3, 2, widths=(4, 8), blocks=(1, 1)), local_crops=0, teacher_temperature=0.07,
                  warmup_teacher_temperature=0.04, teacher_temperature_warmup=0.5, **SMALL)
    assert method.current_teacher_temperature() == pytest.approx(0.04)
    method.on_train_batch_end(25, 100)
    assert method.current_teacher_temperature() == pytest.approx(0.055)
    method.on_train_batch_end(60, 100)
    assert method.current_teacher_temperature() == pytest.approx(0.07)


def test_weight_norm_last_layer() -> None:
    layer = WeightNormLinear(5, 3)
    x = torch.randn(4, 5)
    expected = x @ (layer.weight / layer.weight.norm(dim=1, keepdim=True)).T
    torch.testing.assert_close(layer(x), expected)
    with torch.no_grad():
        layer.weight.mul_(7.0)
    torch.testing.assert_close(layer(x), expected)


def test_cine_seeding_and_errors() -> None:
    encoder = CineEncoder(4, widths=(4, 8), blocks=(1, 1), temporal_heads=2)
    method = DINO(encoder, local_crops=0, **SMALL).eval()  # eval: the centre stays, the views stay random
    x = torch.rand(2, 4, 8, 8, 8)
    losses = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        losses.append(method({"x": x}).loss.item())
    assert losses[0] == losses[1] and losses[0] != losses[2]
    for bad in ({"student_temperature": 0.0}, {"local_crops": -1}, {"local_crop_scale": (0.5, 0.2)},
                {"teacher_temperature_warmup": 2.0}, {"local_crop_size_fraction": 0.0}):
        with pytest.raises(ConfigError):
            DINO(encoder, **(SMALL | {"local_crops": 0} | bad))


@pytest.mark.parametrize("modality", ["image2d", "volume"])
def test_with_the_real_views_local_crops(modality: str) -> None:
    """The modality views make the local crops (``views.local``): smaller inputs reach the student only."""
    from biolatent.data.samples import DataInfo
    from biolatent.data.views import build_views

    if modality == "image2d":
        info = DataInfo("image2d", channels=3, image_size=32, spatial_dims=2)
        encoder, x = ResNetEncoder(3, 2, widths=(4, 8), blocks=(1, 1)), torch.rand(2, 3, 32, 32)
    else:
        info = DataInfo("volume", channels=1, image_size=16, spatial_dims=3)
        encoder, x = ResNetEncoder(1, 3, widths=(4, 8), blocks=(1, 1)), torch.rand(2, 1, 16, 16, 16)
    method = DINO(encoder, views=build_views(info), local_crops=2, **SMALL).train()
    method.check_data(info)
    sizes: list[tuple[int, ...]] = []
    method.encoder.register_forward_pre_hook(lambda m, a: sizes.append(tuple(a[0].shape[2:])))
    teacher_sizes: list[tuple[int, ...]] = []
    method.teacher_encoder.register_forward_pre_hook(lambda m, a: teacher_sizes.append(tuple(a[0].shape[2:])))
    out = method({"x": x})
    side, local = info.image_size, round(0.43 * info.image_size)
    dims = info.spatial_dims
    assert sizes == [(side,) * dims, (local,) * dims] and teacher_sizes == [(side,) * dims]
    assert torch.isfinite(out.loss)
    assert "_local" not in str(list(method.state_dict()))  # the lazily built local views are not state
