"""DINO (Caron, Touvron, Misra, Jégou, Mairal, Bojanowski & Joulin 2021, ICCV, "Emerging properties in
self-supervised vision transformers"): self-distillation with no labels.

A student (encoder + head) matches the output distribution of a teacher, an exponential moving average of the
student (momentum ``momentum`` -> 1 on a cosine). Head: a 3-layer GELU MLP to a ``bottleneck_dim`` vector,
L2-normalised, then a weight-normalised linear layer (no bias, norm fixed to 1 as with the paper's
``norm_last_layer``) to ``out_dim`` prototypes. Teacher outputs are centred (``center``, an EMA of the batch
mean with ``center_momentum``) and sharpened (``teacher_temperature``, optionally warmed up linearly from
``warmup_teacher_temperature`` over the first ``teacher_temperature_warmup`` fraction of training); the student
uses ``student_temperature``. Multi-crop: two global views (``views``) go to both networks, ``local_crops``
smaller local views (``views.local(size, crop_scale)``) to the student only; the loss is the cross-entropy
``-sum p_teacher log p_student`` averaged over every (teacher view, student view) pair of different views
(Algorithm 1, extended to multi-crop as in Sec. 3.1).

Scaled down from the paper (ImageNet: 65536 prototypes, 2048 hidden, 256 bottleneck, 8 local crops of 96 px
for 224 px global crops): ``out_dim`` 1024, ``hidden_dim`` 512, ``bottleneck_dim`` 128, ``local_crops`` 2 of
side ``local_crop_size_fraction`` = 96/224 of the global side, local crop scale (0.05, 0.4) as in the paper.
Not implemented: freezing the last layer during the first epoch, the teacher-momentum restart.
``embed`` is the student encoder's output.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.errors import ConfigError
from biolatent.methods.base import SSLMethod
from biolatent.methods.distributed import mean_all
from biolatent.methods.ema import check_momentum, cosine_momentum, ema_update, frozen_copy, mlp
from biolatent.methods.perturb import DefaultPerturbation
from biolatent.types import LossOutput


class WeightNormLinear(nn.Module):
    """``x @ (v / ||v||).T`` per output row: weight normalisation (Salimans & Kingma 2016) with the gain fixed
    to 1, DINO's last layer. A plain parameter (no hooks) so that deep copies and safetensors just work."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, F.normalize(self.weight, dim=1))


class DINOHead(nn.Module):
    """3-layer GELU MLP -> L2 normalisation -> weight-normalised prototypes (Caron et al. 2021, Sec. 3.1)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, bottleneck_dim: int) -> None:
        super().__init__()
        self.mlp = mlp(in_dim, hidden_dim, bottleneck_dim, layers=3, batch_norm=False, activation=nn.GELU)
        for module in self.mlp.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


def dino_loss(
    student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor, student_temperature: float,
    teacher_temperature: float,
) -> torch.Tensor:
    """Mean over (teacher view i, student view v != i) of ``-sum softmax((t_i - c)/T_t) log_softmax(s_v/T_s)``.

    ``teacher`` holds the global views, which are also the first ``len(teacher)`` entries of ``student``.
    """
    total = student[0].new_zeros((), dtype=torch.float32)
    pairs = 0
    for i, t in enumerate(teacher):
        q = F.softmax((t.detach().float() - center) / teacher_temperature, dim=-1)
        for v, s in enumerate(student):
            if v == i:
                continue
            total = total + torch.sum(-q * F.log_softmax(s.float() / student_temperature, dim=-1), dim=-1).mean()
            pairs += 1
    return total / pairs


class DINO(SSLMethod):
    """Student encoder + head, EMA teacher encoder + head (frozen, in the state dict), centring buffer."""

    name: ClassVar[str] = "dino"
    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume", "cine")

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        out_dim: int = 1024,
        hidden_dim: int = 512,
        bottleneck_dim: int = 128,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.04,
        warmup_teacher_temperature: float = 0.04,
        teacher_temperature_warmup: float = 0.0,
        center_momentum: float = 0.9,
        momentum: float = 0.996,
        local_crops: int = 2,
        local_crop_size_fraction: float = 0.43,
        local_crop_scale: tuple[float, float] = (0.05, 0.4),
    ) -> None:
        super().__init__(encoder, views=views if views is not None else DefaultPerturbation())
        for key, value in (("student_temperature", student_temperature), ("teacher_temperature",
                           teacher_temperature), ("warmup_teacher_temperature", warmup_teacher_temperature)):
            if value <= 0:
                raise ConfigError(f"method.{key} must be > 0, got {value}")
        check_momentum(momentum)
        check_momentum(center_momentum, "center_momentum")
        if not 0.0 <= teacher_temperature_warmup <= 1.0:
            raise ConfigError("method.teacher_temperature_warmup is a fraction of training: between 0 and 1, "
                              f"got {teacher_temperature_warmup}")
        if local_crops < 0:
            raise ConfigError(f"method.local_crops must be >= 0, got {local_crops}")
        if not 0.0 < local_crop_size_fraction <= 1.0:
            raise ConfigError(f"method.local_crop_size_fraction must be in (0, 1], got {local_crop_size_fraction}")
        low, high = local_crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ConfigError(f"method.local_crop_scale must satisfy 0 < low <= high <= 1, got {local_crop_scale}")
        if local_crops > 0 and hasattr(encoder, "num_patches") and hasattr(encoder, "image_size"):
            raise ConfigError(
                f"method dino: local crops need an encoder that accepts smaller inputs, but this one takes only "
                f"{encoder.image_size}-pixel inputs (a vision transformer): set method.local_crops: 0 or use "
                "model.name: resnet"
            )
        self.student_temperature, self.teacher_temperature = student_temperature, teacher_temperature
        self.warmup_teacher_temperature = warmup_teacher_temperature
        self.teacher_temperature_warmup = teacher_temperature_warmup
        self.center_momentum, self.base_momentum, self.momentum = center_momentum, momentum, momentum
        self.local_crops, self.local_crop_size_fraction = int(local_crops), local_crop_size_fraction
        self.local_crop_scale = (float(low), float(high))
        self.head = DINOHead(int(encoder.out_dim), out_dim, hidden_dim, bottleneck_dim)
        self.teacher_encoder = frozen_copy(encoder)
        self.teacher_head = frozen_copy(self.head)
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("progress", torch.zeros(()))  # step / total_steps, for the temperature warm-up
        self._local: list[nn.Module] = []  # built lazily; a plain list keeps it out of the state dict

    # --- configuration checks ---
    def _check_local_views(self) -> None:
        if self.local_crops > 0 and not callable(getattr(self.views, "local", None)):
            raise ConfigError(
                f"method dino: local_crops={self.local_crops} needs views that can make local crops (a "
                f"'local(size, crop_scale)' method), which {type(self.views).__name__} lacks: set "
                "method.local_crops: 0"
            )

    def check_data(self, info: Any) -> None:
        super().check_data(info)
        self._check_local_views()

    def local_views(self, global_size: int) -> nn.Module:
        """``views.local(size, crop_scale)`` with size = ``local_crop_size_fraction`` x the global side (once)."""
        self._check_local_views()
        if not self._local:
            size = max(1, round(self.local_crop_size_fraction * global_size))
            self._local.append(self.views.local(size, self.local_crop_scale))  # type: ignore[union-attr]
        return self._local[0]

    # --- schedules ---
    def current_teacher_temperature(self) -> float:
        """Linear warm-up from ``warmup_teacher_temperature`` to ``teacher_temperature`` over the first
        ``teacher_temperature_warmup`` fraction of training, then constant."""
        warmup, progress = self.teacher_temperature_warmup, float(self.progress)
        if warmup <= 0 or progress >= warmup:
            return self.teacher_temperature
        start = self.warmup_teacher_temperature
        return start + (self.teacher_temperature - start) * progress / warmup

    @torch.no_grad()
    def update_center(self, teacher: list[torch.Tensor]) -> None:
        """``center <- m center + (1 - m) mean of the teacher outputs`` (all global views, all ranks)."""
        batch_center = mean_all(torch.cat(teacher).float().mean(dim=0, keepdim=True))
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1.0 - self.center_momentum)

    # --- forward ---
    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"]
        assert self.views is not None
        globals_ = [self.views(x), self.views(x)]
        locals_: list[torch.Tensor] = []
        if self.local_crops > 0:
            local = self.local_views(int(globals_[0].shape[-1]))
            locals_ = [local(x) for _ in range(self.local_crops)]
        n = x.shape[0]
        student = list(self.head(self.encoder(torch.cat(globals_))).split(n))
        if locals_:
            student += list(self.head(self.encoder(torch.cat(locals_))).split(n))
        with torch.no_grad():
            teacher = list(self.teacher_head(self.teacher_encoder(torch.cat(globals_))).split(n))
        temperature = self.current_teacher_temperature()
        loss = dino_loss(student, teacher, self.center, self.student_temperature, temperature)
        with torch.no_grad():
            probs = F.softmax((torch.cat(teacher).float() - self.center) / temperature, dim=-1)
            entropy = float(-(probs * torch.log(probs.clamp(min=1e-12))).sum(dim=-1).mean())
        if self.training:
            self.update_center(teacher)
        return LossOutput(loss, {"loss": float(loss.detach()), "teacher_entropy": entropy,
                                 "teacher_temperature": temperature})

    def on_train_batch_end(self, step: int, total_steps: int) -> None:
        """Teacher <- m teacher + (1 - m) student, m on the cosine schedule from ``momentum`` to 1."""
        self.momentum = cosine_momentum(self.base_momentum, step, total_steps)
        ema_update(self.teacher_encoder, self.encoder, self.momentum)
        ema_update(self.teacher_head, self.head, self.momentum)
        if total_steps > 0:
            self.progress.fill_(min(1.0, step / total_steps))

    def extra_repr(self) -> str:
        return f"local_crops={self.local_crops}, momentum={self.base_momentum}"
