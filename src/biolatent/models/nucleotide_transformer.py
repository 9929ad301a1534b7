"""A Nucleotide-Transformer-style encoder (Dalla-Torre et al. 2023, "The Nucleotide Transformer: building and
evaluating robust foundation models for human genomics", bioRxiv 2023.01.11.523679; Nature Methods 2024).

Non-overlapping 6-mer tokens (``NonOverlappingKmerTokenizer``: runs of A/C/G/T read as k-mers from their start,
the rest as single nucleotides) after a [CLS] token, into a pre-layer-norm transformer encoder with rotary
(``positions="rotary"``, the Nucleotide Transformer v2) or learned (``"learned"``, v1) position embeddings and a
final layer norm. The network is a ``transformers.EsmModel`` built from an ``EsmConfig`` (the architecture the
Nucleotide Transformer is published in; random initialisation, never a download), so the weights map one to one
onto ``EsmForMaskedLM`` (``biolatent export RUN --format hf``). ``pooling="mean"`` averages the sequence's
tokens ([CLS] excluded), ``"cls"`` takes [CLS].

Sizes from tiny to 100M+ parameters through the config, e.g. ``{hidden_size: 1024, layers: 8, heads: 16,
intermediate_size: 4096}`` holds about 105M parameters (``parameter_count``); the published models span 50M
(v2) to 2.5B.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from biolatent.data.sequence import CLS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID, NonOverlappingKmerTokenizer
from biolatent.errors import ConfigError, DataError


def esm_config(vocab_size: int, *, hidden_size: int, layers: int, heads: int, intermediate_size: int,
               dropout: float, positions: str, max_positions: int, layer_norm_eps: float) -> Any:
    """The ``transformers.EsmConfig`` of this encoder (pre-LN, no token dropout, untied MLM decoder)."""
    from transformers import EsmConfig

    return EsmConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate_size, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        max_position_embeddings=max_positions,
        position_embedding_type="rotary" if positions == "rotary" else "absolute",
        layer_norm_eps=layer_norm_eps, emb_layer_norm_before=False, token_dropout=False,
        pad_token_id=PAD_ID, mask_token_id=MASK_ID, cls_token_id=CLS_ID, eos_token_id=SEP_ID, unk_token_id=UNK_ID,
        tie_word_embeddings=False, is_folding_model=False,
    )


class NucleotideTransformerEncoder(nn.Module):
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
        positions: Literal["rotary", "learned"] = "rotary",
        pooling: Literal["mean", "cls"] = "mean",
        layer_norm_eps: float = 1e-12,
    ) -> None:
        super().__init__()
        from transformers import EsmModel

        if hidden_size % heads != 0:
            raise ConfigError(f"model.hidden_size {hidden_size} must be a multiple of model.heads {heads}")
        if positions == "rotary" and (hidden_size // heads) % 2:
            raise ConfigError(f"rotary positions need an even head size, got {hidden_size} / {heads}")
        self.tokenizer = NonOverlappingKmerTokenizer(kmer)
        self.kmer, self.max_length, self.pooling, self.positions = int(kmer), int(max_length), pooling, positions
        self.out_dim = int(hidden_size)
        self.layer_norm_eps = float(layer_norm_eps)
        # at most one token per base, plus [CLS]; ESM numbers learned positions from padding_idx + 1
        self.max_tokens = self.max_length + 1
        config = esm_config(self.tokenizer.vocab_size, hidden_size=hidden_size, layers=layers, heads=heads,
                            intermediate_size=intermediate_size, dropout=dropout, positions=positions,
                            max_positions=self.max_tokens + PAD_ID + 1, layer_norm_eps=layer_norm_eps)
        self.esm = EsmModel(config, add_pooling_layer=False)
        self.esm.contact_head = None  # protein contact maps: not part of a DNA language model

    @classmethod
    def from_data(cls, info: Any, **hparams: Any) -> NucleotideTransformerEncoder:
        """``kmer`` comes from the data (``data.kmer``, default 6 as the Nucleotide Transformer)."""
        if not info.max_length:
            raise DataError("encoder 'nt' needs the (padded) sequence length of the data")
        return cls(int(info.kmer or 6), int(info.max_length), **hparams)

    def token_spans(self, bases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (tokens, attention mask, start base, number of bases), each (B, T) with the leading [CLS]."""
        tokens, starts, sizes = self.tokenizer.spans(bases)
        cls = torch.full_like(tokens[:, :1], CLS_ID)
        tokens = torch.cat([cls, tokens], dim=1)
        starts = torch.cat([torch.full_like(cls, -1), starts], dim=1)
        sizes = torch.cat([torch.zeros_like(cls), sizes], dim=1)
        mask = torch.cat([torch.ones_like(cls), (sizes[:, 1:] > 0).long()], dim=1)
        return tokens, mask, starts, sizes

    def tokenize(self, bases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Base codes -> ([CLS] + tokens, attention_mask)."""
        tokens, mask, _, _ = self.token_spans(bases)
        return tokens, mask

    def forward_tokens(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids + mask -> (B, T, hidden_size) last hidden states (after the final layer norm)."""
        if self.positions == "learned" and tokens.shape[1] > self.max_tokens:
            raise DataError(f"{tokens.shape[1]} tokens exceed the encoder's {self.max_tokens} positions")
        return self.esm(input_ids=tokens, attention_mask=attention_mask).last_hidden_state

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = attention_mask[:, 1:].unsqueeze(-1).to(hidden.dtype)
        return (hidden[:, 1:] * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(self, bases: torch.Tensor) -> torch.Tensor:
        tokens, mask = self.tokenize(bases)
        return self.pool(self.forward_tokens(tokens, mask), mask)


def parameter_count(**sizes: Any) -> int:
    """Parameters of an ``nt`` encoder of these sizes (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        encoder = NucleotideTransformerEncoder(6, 1000, **sizes)
    return sum(p.numel() for p in encoder.parameters())
