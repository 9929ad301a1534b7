"""SimCLR (Chen, Kornblith, Norouzi & Hinton 2020, ICML, "A simple framework for contrastive learning of
visual representations"): two random views per sample, a projection head, the NT-Xent loss.

Without injected ``views`` a light ``DefaultPerturbation`` is used (feature/pixel dropout, base
substitutions): it trains, but the modality views of ``biolatent.data.views`` are what SimCLR needs.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.errors import ConfigError
from biolatent.methods.base import SSLMethod
from biolatent.methods.distributed import gather_with_grad
from biolatent.methods.perturb import DefaultPerturbation
from biolatent.types import LossOutput


def nt_xent_logits(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, all1: torch.Tensor | None = None,
    all2: torch.Tensor | None = None, offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities / temperature of the 2N anchors against all 2M projections, self-pairs excluded ->
    (logits (2N, 2M), positives).

    Row i of the logits is anchor i (views 1 then views 2); its positive is column ``positives[i]``. ``all1`` /
    ``all2`` (M, d): the projections of every process (``methods.distributed.gather_with_grad``), this process's
    ``z1`` / ``z2`` at rows ``offset ... offset + N``; None: ``z1`` / ``z2`` themselves (one process).
    """
    n = z1.shape[0]
    anchors = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    if all1 is None or all2 is None:
        candidates, m = anchors, n
    else:
        candidates, m = F.normalize(torch.cat([all1, all2], dim=0), dim=1), all1.shape[0]
    logits = anchors @ candidates.T / temperature
    own = torch.arange(offset, offset + n, device=z1.device)
    self_columns = torch.cat([own, own + m])
    rows = torch.arange(2 * n, device=z1.device)
    self_pairs = torch.zeros(logits.shape, dtype=torch.bool, device=z1.device)
    self_pairs[rows, self_columns] = True
    logits = logits.masked_fill(self_pairs, float("-inf"))
    positives = torch.cat([own + m, own])
    return logits, positives


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Normalised temperature-scaled cross-entropy, averaged over the 2N anchors (paper's Eq. 1 and L)."""
    logits, positives = nt_xent_logits(z1, z2, temperature)
    return F.cross_entropy(logits, positives)


class SimCLR(SSLMethod):
    """Encoder -> projection head (Linear, ReLU, Linear) -> NT-Xent. ``embed`` is the encoder output."""

    name: ClassVar[str] = "simclr"
    modalities: ClassVar[tuple[str, ...]] = ("counts", "dna", "image2d", "volume", "cine")

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        projection_dim: int = 128,
        temperature: float = 0.1,
    ) -> None:
        super().__init__(encoder, views=views if views is not None else DefaultPerturbation())
        if temperature <= 0:
            raise ConfigError(f"method.temperature must be > 0, got {temperature}")
        hidden = int(encoder.out_dim)
        self.temperature = temperature
        self.projector = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, projection_dim)
        )

    def contrast(self, first: torch.Tensor, second: torch.Tensor) -> LossOutput:
        """NT-Xent between a random view of every row of ``first`` and one of the same row of ``second``."""
        if first.shape[0] < 2:
            raise ConfigError(f"{self.name} needs at least 2 samples per batch (train.batch_size)")
        assert self.views is not None
        z1 = self.projector(self.encoder(self.views(first)))
        z2 = self.projector(self.encoder(self.views(second)))
        # several processes: every process's projections are negatives (as in one process's global batch)
        all1, offset = gather_with_grad(z1)
        all2, _ = gather_with_grad(z2)
        logits, positives = nt_xent_logits(z1, z2, self.temperature, all1, all2, offset)
        loss = F.cross_entropy(logits, positives)
        accuracy = (logits.detach().argmax(dim=1) == positives).float().mean()
        return LossOutput(loss, {"loss": float(loss.detach()), "accuracy": float(accuracy)})

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        return self.contrast(batch["x"], batch["x"])

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
