"""A light, modality-agnostic default augmentation, used when a method that needs views gets none."""

from __future__ import annotations

import torch
from torch import nn

from biolatent.data.sequence import PAD_BASE


class DefaultPerturbation(nn.Module):
    """Float inputs (counts, images): zero a random ``drop`` fraction of entries (feature / pixel dropout).
    Integer inputs (DNA base codes): replace a random ``substitute`` fraction of non-PAD bases by a random
    A/C/G/T. Much weaker than the modality views of ``biolatent.data.views``; a fallback only."""

    def __init__(self, drop: float = 0.2, substitute: float = 0.05) -> None:
        super().__init__()
        self.drop, self.substitute = drop, substitute

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            keep = torch.rand_like(x) >= self.drop
            return x * keep
        change = (torch.rand(x.shape, device=x.device) < self.substitute) & (x != PAD_BASE)
        random_bases = torch.randint_like(x, 0, 4)
        return torch.where(change, random_bases, x)
