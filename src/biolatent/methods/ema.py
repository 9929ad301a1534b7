"""Shared pieces of the teacher-student methods (MoCo, BYOL, DINO): frozen momentum copies, their
exponential-moving-average update, the cosine momentum schedule, projection/prediction MLPs (the collectives of
the distributed case are in ``methods.distributed``).

* Momentum (EMA) encoder: He, Fan, Wu, Xie & Girshick 2020, CVPR, "Momentum contrast for unsupervised visual
  representation learning" (MoCo), Eq. 2: ``theta_k <- m theta_k + (1 - m) theta_q``.
* Cosine increase of the momentum from its base value to 1 over training: Grill et al. 2020, NeurIPS,
  "Bootstrap your own latent: a new approach to self-supervised learning" (BYOL), Sec. 3.2:
  ``tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2``; also used by DINO (Caron et al. 2021) and MoCo v3
  (Chen, Xie & He 2021).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from biolatent.errors import ConfigError


def cosine_momentum(base: float, step: int, total_steps: int) -> float:
    """BYOL's schedule: ``1 - (1 - base) (cos(pi step / total_steps) + 1) / 2``; ``base`` at step 0, 1 at the end.

    ``step`` is clipped to ``[0, total_steps]``; ``total_steps <= 0`` (unknown length) keeps ``base``.
    """
    if total_steps <= 0:
        return float(base)
    progress = min(1.0, max(0.0, step / total_steps))
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy whose parameters do not require gradients (the optimiser never sees them).

    The copy is a registered submodule of the method, so it is in the state dict (a resumed run restores it).
    """
    teacher = copy.deepcopy(module)
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher <- momentum * teacher + (1 - momentum) * student`` for every parameter (buffers such as
    BatchNorm statistics are left to the teacher's own forward passes in train mode, as in MoCo's code)."""
    teacher_params = list(teacher.parameters())
    student_params = list(student.parameters())
    if len(teacher_params) != len(student_params):
        raise RuntimeError("teacher and student have different parameter lists")
    for t, s in zip(teacher_params, student_params, strict=True):
        t.mul_(momentum).add_(s.detach().to(t.dtype), alpha=1.0 - momentum)


def check_momentum(value: float, key: str = "momentum") -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"method.{key} must be between 0 and 1, got {value}")


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    *,
    layers: int = 2,
    batch_norm: bool = True,
    last_batch_norm: bool = False,
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """``layers`` linear maps ``in -> hidden -> ... -> out``, each hidden one followed by (BatchNorm1d) and the
    activation; ``last_batch_norm`` adds an affine-free BatchNorm1d after the output (MoCo v3's projector)."""
    if layers < 1:
        raise ConfigError(f"an MLP head needs at least one layer, got {layers}")
    modules: list[nn.Module] = []
    width = int(in_dim)
    for _ in range(layers - 1):
        modules.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
        if batch_norm:
            modules.append(nn.BatchNorm1d(hidden_dim))
        modules.append(activation())
        width = hidden_dim
    modules.append(nn.Linear(width, out_dim, bias=not last_batch_norm))
    if last_batch_norm:
        modules.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*modules)
