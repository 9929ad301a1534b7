"""BEHRT encoder (Li, Rao, Hassaine, Ramakrishnan, Canoy, Salimi-Khorshidi, Mamouei, Lukasiewicz & Rahimi 2020,
Sci Rep 10:7155, "BEHRT: Transformer for Electronic Health Records").

A BERT encoder (``transformers.BertModel`` from a ``BertConfig``: random initialisation, post-layer norm as
BERT and BEHRT) over the sum of four embeddings per token: the code, the age in years, the segment (visits
alternate A/B) and the position, which in BEHRT is the visit index (all tokens of one visit share it). Input is
``biolatent.data.records``'s int64 (B, 4, L) packing; the patient embedding is the [CLS] output
(``pooling="cls"``) or the mean over attended tokens (``pooling="mean"``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from biolatent.data.record_tokens import MAX_AGE, PAD_ID
from biolatent.errors import ConfigError, DataError


class BehrtEncoder(nn.Module):
    """(B, 4, L) records tokens -> (B, hidden_size)."""

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        *,
        hidden_size: int = 128,
        layers: int = 4,
        heads: int = 4,
        intermediate_size: int = 256,
        dropout: float = 0.1,
        pooling: Literal["cls", "mean"] = "cls",
    ) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        if hidden_size % heads != 0:
            raise ConfigError(f"model.hidden_size {hidden_size} must be a multiple of model.heads {heads}")
        self.vocab_size, self.max_length, self.pooling = int(vocab_size), int(max_length), pooling
        self.out_dim = int(hidden_size)
        config = BertConfig(
            vocab_size=self.vocab_size, hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=intermediate_size, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
            max_position_embeddings=self.max_length + 1, type_vocab_size=2, pad_token_id=PAD_ID,
        )
        self.bert = BertModel(config, add_pooling_layer=False)
        self.age_embeddings = nn.Embedding(MAX_AGE + 1, hidden_size)

    @classmethod
    def from_data(cls, info: Any, **hparams: Any) -> BehrtEncoder:
        if not info.vocab_size or not info.max_length:
            raise DataError("encoder 'behrt' needs the records vocabulary size and tokens per patient")
        return cls(int(info.vocab_size), int(info.max_length), **hparams)

    def forward_tokens(self, x: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 4, L) packed records (``tokens`` replaces row 0, e.g. masked codes) -> (B, L, hidden) states."""
        if x.ndim != 3 or x.shape[1] != 4:
            raise DataError(f"encoder 'behrt' expects (batch, 4, length) records tokens, got {tuple(x.shape)}")
        codes = x[:, 0] if tokens is None else tokens
        mask = (x[:, 0] != PAD_ID).long()
        embeds = self.bert.embeddings.word_embeddings(codes) + self.age_embeddings(x[:, 1].clamp(0, MAX_AGE))
        positions = x[:, 3].clamp(0, self.max_length)
        return self.bert(inputs_embeds=embeds, attention_mask=mask, token_type_ids=x[:, 2].clamp(0, 1),
                         position_ids=positions).last_hidden_state

    def pool(self, hidden: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = (x[:, 0] != PAD_ID).unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_tokens(x), x)
