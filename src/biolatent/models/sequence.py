"""BERT over overlapping k-mers of DNA (Ji et al. 2021, Bioinformatics, "DNABERT"), built from a config.

The model is a ``transformers.BertModel`` created from a ``BertConfig`` (random initialisation, never a
download). ``forward`` tokenises base codes with ``KmerTokenizer`` and pools the last hidden states:
``pooling="mean"`` averages the attended k-mer tokens, ``pooling="cls"`` prepends a [CLS] token and takes it.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from biolatent.data.sequence import CLS_ID, PAD_ID, KmerTokenizer
from biolatent.errors import ConfigError, DataError


class BertSequenceEncoder(nn.Module):
    """(B, L) int64 base codes -> (B, hidden_size)."""

    def __init__(
        self,
        kmer: int,
        max_length: int,
        *,
        hidden_size: int = 128,
        layers: int = 4,
        heads: int = 4,
        intermediate_size: int = 512,
        dropout: float = 0.1,
        pooling: Literal["mean", "cls"] = "mean",
    ) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        if hidden_size % heads != 0:
            raise ConfigError(f"model.hidden_size {hidden_size} must be a multiple of model.heads {heads}")
        if max_length < kmer:
            raise DataError(f"sequences of {max_length} bases are shorter than one {kmer}-mer")
        self.tokenizer = KmerTokenizer(kmer)
        self.kmer, self.max_length, self.pooling = int(kmer), int(max_length), pooling
        self.out_dim = int(hidden_size)
        # L - k + 1 k-mers, plus room for [CLS] and [SEP]
        self.max_tokens = self.max_length - self.kmer + 1 + 2
        config = BertConfig(
            vocab_size=self.tokenizer.vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate_size,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            max_position_embeddings=self.max_tokens,
            type_vocab_size=1,
            pad_token_id=PAD_ID,
        )
        self.bert = BertModel(config, add_pooling_layer=False)
        self.layer_norm_eps = float(config.layer_norm_eps)  # BERT's MLM head shares it

    @classmethod
    def from_data(cls, info: Any, **hparams: Any) -> BertSequenceEncoder:
        """``kmer`` comes from the data (``data.kmer`` of the config, recorded in ``info.kmer``)."""
        kmer = info.kmer or 6
        if not info.max_length:
            raise DataError("encoder 'bert' needs the (padded) sequence length of the data")
        return cls(int(kmer), int(info.max_length), **hparams)

    def tokenize(self, bases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Base codes -> (tokens, attention_mask), with a leading [CLS] when ``pooling="cls"``."""
        tokens, mask = self.tokenizer(bases)
        if self.pooling == "cls":
            cls = torch.full_like(tokens[:, :1], CLS_ID)
            tokens = torch.cat([cls, tokens], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return tokens, mask

    def token_spans(self, bases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (tokens, attention mask, start base, number of bases), each (B, T), aligned with ``tokenize``."""
        tokens, starts, sizes = self.tokenizer.spans(bases)
        mask = (sizes > 0).long()
        if self.pooling == "cls":
            tokens = torch.cat([torch.full_like(tokens[:, :1], CLS_ID), tokens], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
            starts = torch.cat([torch.full_like(starts[:, :1], -1), starts], dim=1)
            sizes = torch.cat([torch.zeros_like(sizes[:, :1]), sizes], dim=1)
        return tokens, mask, starts, sizes

    def forward_tokens(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids + mask -> (B, T, hidden_size) last hidden states."""
        if tokens.shape[1] > self.max_tokens:
            raise DataError(f"{tokens.shape[1]} tokens exceed the encoder's {self.max_tokens} positions")
        return self.bert(input_ids=tokens, attention_mask=attention_mask).last_hidden_state

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(self, bases: torch.Tensor) -> torch.Tensor:
        tokens, mask = self.tokenize(bases)
        return self.pool(self.forward_tokens(tokens, mask), mask)
