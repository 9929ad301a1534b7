"""Masked k-mer language modelling (Ji, Zhou, Liu & Davuluri 2021, Bioinformatics, "DNABERT"; masking
recipe of Devlin et al. 2019, "BERT"; non-overlapping k-mers as the Nucleotide Transformer, Dalla-Torre et al.
2023).

Overlapping k-mers share k-1 bases with each neighbour, so a lone masked k-mer could be read off its
neighbours; DNABERT therefore masks contiguous spans of k tokens. Span centres are drawn independently per
maskable token with probability ``1 - (1 - mask_probability) ** (1 / k)``, so that the expected masked
fraction (away from sequence ends) is ``mask_probability``; each sequence gets at least one span. Masked
tokens become [MASK] (80%), a random k-mer (10%) or stay unchanged (10%). [PAD], [CLS], [SEP] are never
masked. Non-overlapping k-mers (encoder ``nt``) share no bases, so their tokens are masked one by one (spans of
1, the tokenizer's ``mask_span``). The loss is the cross-entropy on masked tokens. ``views`` are not used.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.data.sequence import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS
from biolatent.errors import ConfigError
from biolatent.methods.base import SSLMethod
from biolatent.types import LossOutput


def span_mask(
    tokens: torch.Tensor,
    attention_mask: torch.Tensor,
    k: int,
    probability: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Boolean (B, T) mask of contiguous k-token spans over maskable tokens (see module docstring)."""
    maskable = (attention_mask > 0) & (tokens != PAD_ID) & (tokens != CLS_ID) & (tokens != SEP_ID)
    p_centre = 1.0 - (1.0 - probability) ** (1.0 / k)
    noise = torch.rand(tokens.shape, generator=generator, device="cpu").to(tokens.device)
    centres = (noise < p_centre) & maskable
    # a sequence without any centre gets one at its maskable token of lowest noise
    empty = ~centres.any(dim=1) & maskable.any(dim=1)
    forced = torch.where(maskable, noise, torch.full_like(noise, 2.0)).argmin(dim=1)
    centres[empty, forced[empty]] = True
    # token j is masked when a centre lies in [j - (k - 1 - a), j + a] with a = (k - 1) // 2
    a = (k - 1) // 2
    padded = F.pad(centres.float(), (k - 1 - a, a))
    covered = padded.unfold(1, k, 1).amax(dim=-1) > 0
    return covered & maskable


def check_masking(mask_probability: float, mask_token_fraction: float, random_token_fraction: float) -> None:
    """ConfigError unless 0 < mask_probability < 1 and the [MASK] and random-token shares fit within [0, 1]."""
    if not 0.0 < mask_probability < 1.0:
        raise ConfigError(f"method.mask_probability must be in (0, 1), got {mask_probability}")
    if mask_token_fraction < 0 or random_token_fraction < 0 or mask_token_fraction + random_token_fraction > 1:
        raise ConfigError("method.mask_token_fraction + method.random_token_fraction must be within [0, 1]")


def corrupt_masked(tokens: torch.Tensor, mask: torch.Tensor, *, mask_id: int, first_regular_id: int,
                   vocab_size: int, mask_token_fraction: float, random_token_fraction: float) -> torch.Tensor:
    """BERT's corruption of the positions in ``mask``: [MASK] with probability ``mask_token_fraction``, a random
    regular token (ids ``first_regular_id``..vocab_size-1) with ``random_token_fraction``, unchanged otherwise."""
    u = torch.rand(tokens.shape, device=tokens.device)
    random_ids = torch.randint_like(tokens, min(first_regular_id, vocab_size - 1), vocab_size)
    corrupted = torch.where(mask & (u < mask_token_fraction), torch.full_like(tokens, mask_id), tokens)
    use_random = mask & (u >= mask_token_fraction) & (u < mask_token_fraction + random_token_fraction)
    return torch.where(use_random, random_ids, corrupted)


def masked_token_head(hidden: int, vocab_size: int, eps: float = 1e-5) -> nn.Sequential:
    """BERT's masked-LM prediction head: dense, GELU, LayerNorm, then a linear map to the vocabulary (ESM's
    ``EsmLMHead`` is the same)."""
    return nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=eps),
                         nn.Linear(hidden, vocab_size))


class MaskedKmerModel(SSLMethod):
    """BERT-style masked language model over k-mer tokens; ``embed`` is the encoder's pooled output."""

    name: ClassVar[str] = "mlm"
    modalities: ClassVar[tuple[str, ...]] = ("dna",)
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
        if not (hasattr(encoder, "tokenizer") and hasattr(encoder, "forward_tokens")):
            raise ConfigError("method mlm needs a k-mer token encoder (model.name: bert or nt)")
        check_masking(mask_probability, mask_token_fraction, random_token_fraction)
        self.mask_probability = mask_probability
        self.mask_token_fraction, self.random_token_fraction = mask_token_fraction, random_token_fraction
        # overlapping k-mers: spans of k tokens (DNABERT); non-overlapping ones: single tokens (BERT, NT)
        self.k = int(getattr(encoder.tokenizer, "mask_span", encoder.tokenizer.k))
        self.vocab_size = int(encoder.tokenizer.vocab_size)
        # the head's layer norm as the encoder's (BERT's and ESM's heads share the encoder's epsilon)
        self.head = masked_token_head(int(encoder.out_dim), self.vocab_size,
                                      eps=float(getattr(encoder, "layer_norm_eps", 1e-5)))

    def tokenize(self, bases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokenize = getattr(self.encoder, "tokenize", None)
        return tokenize(bases) if tokenize is not None else self.encoder.tokenizer(bases)

    def mask_tokens(
        self, tokens: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (corrupted tokens, boolean mask of the positions to predict)."""
        mask = span_mask(tokens, attention_mask, self.k, self.mask_probability)
        return corrupt_masked(tokens, mask, mask_id=MASK_ID, first_regular_id=len(SPECIAL_TOKENS),
                              vocab_size=self.vocab_size, mask_token_fraction=self.mask_token_fraction,
                              random_token_fraction=self.random_token_fraction), mask

    def logits(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens -> (B, T, vocab) prediction logits."""
        return self.head(self.encoder.forward_tokens(tokens, attention_mask))

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        tokens, attention_mask = self.tokenize(batch["x"])
        corrupted, mask = self.mask_tokens(tokens, attention_mask)
        logits = self.logits(corrupted, attention_mask)[mask]
        labels = tokens[mask]
        if labels.numel() == 0:  # nothing maskable (all padding): a zero loss that keeps the graph
            zero = self.logits(corrupted, attention_mask).sum() * 0.0
            return LossOutput(zero, {"loss": 0.0, "masked_accuracy": 0.0})
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(dim=-1) == labels).float().mean()
        return LossOutput(loss, {"loss": float(loss.detach()), "masked_accuracy": float(accuracy)})
