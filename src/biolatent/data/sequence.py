"""DNA as tensors: base codes and the DNABERT overlapping k-mer tokenizer, batched on tensors.

Ji et al. 2021, "DNABERT: pre-trained Bidirectional Encoder Representations from Transformers model for
DNA-language in genome", Bioinformatics 37(15). A sequence of L bases becomes L-k+1 overlapping k-mers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

BASES = "ACGTN"
A, C, G, T, N_BASE, PAD_BASE = 0, 1, 2, 3, 4, 5
COMPLEMENT = torch.tensor([T, G, C, A, N_BASE, PAD_BASE])  # indexed by base code

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))

_LOOKUP = np.full(256, -1, dtype=np.int64)
for _code, _base in enumerate(BASES):
    _LOOKUP[ord(_base)] = _code
    _LOOKUP[ord(_base.lower())] = _code


def encode_bases(sequence: str) -> np.ndarray:
    """'ACGTN' (any case) -> int64 codes; raises ValueError naming the first other character."""
    raw = np.frombuffer(sequence.encode("ascii", errors="replace"), dtype=np.uint8)
    codes = _LOOKUP[raw]
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        raise ValueError(f"character {sequence[bad[0]]!r} at position {bad[0] + 1} is not one of A, C, G, T, N")
    return codes


def pad_bases(encoded: list[np.ndarray], length: int) -> torch.Tensor:
    """Truncate / right-pad base codes to ``length`` with PAD_BASE -> (N, length) int64."""
    out = np.full((len(encoded), length), PAD_BASE, dtype=np.int64)
    for row, codes in enumerate(encoded):
        n = min(length, codes.size)
        out[row, :n] = codes[:n]
    return torch.from_numpy(out)


def reverse_complement(bases: torch.Tensor) -> torch.Tensor:
    """Reverse complement of (B, L) base codes, keeping right padding on the right."""
    comp = COMPLEMENT.to(bases.device)[bases]
    lengths = (bases != PAD_BASE).sum(dim=1, keepdim=True)
    positions = torch.arange(bases.shape[1], device=bases.device).expand_as(bases)
    source = (lengths - 1 - positions).clamp(min=0)
    flipped = torch.gather(comp, 1, source)
    return torch.where(positions < lengths, flipped, torch.full_like(bases, PAD_BASE))


class KmerTokenizer(nn.Module):
    """Overlapping k-mer tokenizer on tensors: (B, L) base codes -> (B, L-k+1) token ids + attention mask.

    Token ids: the five special tokens first, then the 4**k k-mers in lexicographic order (AAA..., AAC...).
    A k-mer that contains N is [UNK]; one that reaches into the padding is [PAD] (attention mask 0).
    """

    def __init__(self, k: int = 6) -> None:
        super().__init__()
        if not 3 <= k <= 6:
            raise ValueError(f"k must be between 3 and 6, got {k}")
        self.k = k
        self.vocab_size = len(SPECIAL_TOKENS) + 4**k
        self.register_buffer("_weights", 4 ** torch.arange(k - 1, -1, -1), persistent=False)

    def forward(self, bases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        windows = bases.unfold(1, self.k, 1)  # (B, T, k)
        is_pad = (windows == PAD_BASE).any(dim=-1)
        is_unk = (windows == N_BASE).any(dim=-1) & ~is_pad
        index = (windows.clamp(max=3) * self._weights).sum(dim=-1) + len(SPECIAL_TOKENS)
        tokens = torch.where(is_unk, torch.full_like(index, UNK_ID), index)
        tokens = torch.where(is_pad, torch.full_like(index, PAD_ID), tokens)
        return tokens, (~is_pad).long()

    def kmer_id(self, kmer: str) -> int:
        if len(kmer) != self.k:
            raise ValueError(f"expected a {self.k}-mer, got {kmer!r}")
        codes = encode_bases(kmer)
        if (codes == N_BASE).any():
            return UNK_ID
        return int(sum(int(c) * 4 ** (self.k - 1 - i) for i, c in enumerate(codes)) + len(SPECIAL_TOKENS))

    def decode(self, token: int) -> str:
        if token < len(SPECIAL_TOKENS):
            return SPECIAL_TOKENS[token]
        value = token - len(SPECIAL_TOKENS)
        return "".join(BASES[(value // 4 ** (self.k - 1 - i)) % 4] for i in range(self.k))
