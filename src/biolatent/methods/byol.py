"""BYOL (Grill, Strub, Altché, Tallec, Richemond, Buchatskaya, Doersch, Avila Pires, Guo, Gheshlaghi Azar, Piot,
Kavukcuoglu, Munos & Valko 2020, NeurIPS, "Bootstrap your own latent: a new approach to self-supervised
learning").

An online network (encoder -> projector -> predictor) predicts the projection of another view made by a
target network (encoder -> projector), an exponential moving average of the online one with no gradient.
Loss per pair: ``2 - 2 cos(q, z')`` (the squared distance of the L2-normalised vectors); symmetrised by
swapping the views and summed, as in the paper's ``L + L~`` (so it lies in [0, 8]). The target decay rises
from ``momentum`` (0.996 in the paper) to 1 along a cosine over training (Sec. 3.2).

Scaled down from the paper (ImageNet, 4096-wide heads, 256-d projections): ``hidden_dim`` 512,
``projection_dim`` 128 by default. ``embed`` is the online encoder's output.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.errors import ConfigError
from biolatent.methods.base import SSLMethod
from biolatent.methods.ema import check_momentum, cosine_momentum, ema_update, frozen_copy, mlp
from biolatent.methods.perturb import DefaultPerturbation
from biolatent.types import LossOutput


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(prediction, target)`` per row (B,); the target carries no gradient."""
    p = F.normalize(prediction.float(), dim=1)
    z = F.normalize(target.detach().float(), dim=1)
    return 2.0 - 2.0 * (p * z).sum(dim=1)


class BYOL(SSLMethod):
    """Online encoder + projector + predictor; EMA target encoder + projector (in the state dict, frozen)."""

    name: ClassVar[str] = "byol"
    modalities: ClassVar[tuple[str, ...]] = ("counts", "image2d", "volume", "cine")

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        projection_dim: int = 128,
        hidden_dim: int = 512,
        momentum: float = 0.996,
    ) -> None:
        super().__init__(encoder, views=views if views is not None else DefaultPerturbation())
        check_momentum(momentum)
        if projection_dim < 1 or hidden_dim < 1:
            raise ConfigError("method.projection_dim and method.hidden_dim must be >= 1")
        self.base_momentum = self.momentum = momentum
        self.projector = mlp(int(encoder.out_dim), hidden_dim, projection_dim, layers=2)
        self.predictor = mlp(projection_dim, hidden_dim, projection_dim, layers=2)
        self.target_encoder = frozen_copy(encoder)
        self.target_projector = frozen_copy(self.projector)

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_encoder(x))

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"]
        if x.shape[0] < 2:
            raise ConfigError("byol needs at least 2 samples per batch (train.batch_size: BatchNorm heads)")
        assert self.views is not None
        x1, x2 = self.views(x), self.views(x)
        q1 = self.predictor(self.projector(self.encoder(x1)))
        q2 = self.predictor(self.projector(self.encoder(x2)))
        z1, z2 = self._target(x1), self._target(x2)
        per_sample = byol_loss(q1, z2) + byol_loss(q2, z1)
        loss = per_sample.mean()
        cosine = 1.0 - float(per_sample.detach().mean()) / 4.0
        return LossOutput(loss, {"loss": float(loss.detach()), "cosine": cosine, "momentum": self.momentum})

    def on_train_batch_end(self, step: int, total_steps: int) -> None:
        """Target <- tau target + (1 - tau) online, tau on BYOL's cosine schedule from ``momentum`` to 1."""
        self.momentum = cosine_momentum(self.base_momentum, step, total_steps)
        ema_update(self.target_encoder, self.encoder, self.momentum)
        ema_update(self.target_projector, self.projector, self.momentum)

    def extra_repr(self) -> str:
        return f"momentum={self.base_momentum}"
