"""Masked code modelling for health records (Li et al. 2020, Sci Rep 10:7155, "BEHRT: Transformer for Electronic
Health Records"; masking recipe of Devlin et al. 2019, "BERT").

Each code token ([PAD], [CLS], [SEP] never) is chosen with probability ``mask_probability`` (15%); a chosen token
becomes [MASK] (80%), a random code (10%) or stays (10%); age, segment and position stay visible. The loss is the
cross-entropy of the chosen tokens' codes. ``views`` are not used.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.data.record_tokens import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS
from biolatent.errors import ConfigError
from biolatent.methods.base import SSLMethod
from biolatent.methods.mlm import check_masking, corrupt_masked, masked_token_head
from biolatent.types import LossOutput


class MaskedCodeModel(SSLMethod):
    """BEHRT pre-training; ``embed`` is the encoder's pooled output ([CLS] by default)."""

    name: ClassVar[str] = "behrt"
    modalities: ClassVar[tuple[str, ...]] = ("records",)
    uses_views: ClassVar[bool] = False

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        mask_probability: float = 0.15,
        mask_token_fraction: float = 0.8,
        random_token_fraction: float = 0.1,
    ) -> None:
        super().__init__(encoder, views=views)
        if not (hasattr(encoder, "forward_tokens") and hasattr(encoder, "vocab_size")):
            raise ConfigError("method behrt needs a records token encoder (model.name: behrt)")
        check_masking(mask_probability, mask_token_fraction, random_token_fraction)
        self.mask_probability = mask_probability
        self.mask_token_fraction, self.random_token_fraction = mask_token_fraction, random_token_fraction
        self.vocab_size = int(encoder.vocab_size)
        self.head = masked_token_head(int(encoder.out_dim), self.vocab_size)

    def mask_tokens(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) codes -> (corrupted codes, boolean mask of the positions to predict); at least one per sequence
        that has a code."""
        maskable = (codes != PAD_ID) & (codes != CLS_ID) & (codes != SEP_ID)
        noise = torch.rand(codes.shape, device=codes.device)
        mask = (noise < self.mask_probability) & maskable
        empty = ~mask.any(dim=1) & maskable.any(dim=1)
        forced = torch.where(maskable, noise, torch.full_like(noise, 2.0)).argmin(dim=1)
        mask[empty, forced[empty]] = True
        return corrupt_masked(codes, mask, mask_id=MASK_ID, first_regular_id=len(SPECIAL_TOKENS),
                              vocab_size=self.vocab_size, mask_token_fraction=self.mask_token_fraction,
                              random_token_fraction=self.random_token_fraction), mask

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"]
        codes = x[:, 0]
        corrupted, mask = self.mask_tokens(codes)
        hidden = self.encoder.forward_tokens(x, corrupted)
        if not mask.any():  # no codes at all: a zero loss that keeps the graph
            zero = self.head(hidden).sum() * 0.0
            return LossOutput(zero, {"loss": 0.0, "masked_accuracy": 0.0})
        logits = self.head(hidden[mask])
        labels = codes[mask]
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(dim=-1) == labels).float().mean()
        return LossOutput(loss, {"loss": float(loss.detach()), "masked_accuracy": float(accuracy)})
