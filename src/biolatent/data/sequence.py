"""DNA as tensors: base codes, the DNABERT overlapping k-mer tokenizer and the Nucleotide Transformer's
non-overlapping one, batched on tensors.

Ji et al. 2021, "DNABERT: pre-trained Bidirectional Encoder Representations from Transformers model for
DNA-language in genome", Bioinformatics 37(15). A sequence of L bases becomes L-k+1 overlapping k-mers.
Dalla-Torre et al. 2023, "The Nucleotide Transformer: building and evaluating robust foundation models for human
genomics", bioRxiv 2023.01.11.523679 (Nature Methods 2024): about L/6 non-overlapping 6-mers.
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
        self.mask_span = k  # neighbours share k-1 bases: masked modelling masks spans of k tokens (DNABERT)
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

    def spans(self, bases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (token ids, start base, number of bases), each (B, L-k+1); padding has start -1 and 0 bases."""
        tokens, mask = self(bases)
        starts = torch.arange(tokens.shape[1], device=bases.device).expand_as(tokens)
        return tokens, torch.where(mask > 0, starts, torch.full_like(starts, -1)), mask * self.k

    def tokens(self) -> list[str]:
        """The vocabulary, in id order."""
        return [*SPECIAL_TOKENS, *(self.decode(i) for i in range(len(SPECIAL_TOKENS), self.vocab_size))]

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


class NonOverlappingKmerTokenizer(nn.Module):
    """Non-overlapping k-mer tokenizer of the Nucleotide Transformer (Dalla-Torre et al. 2023), on tensors:
    (B, L) base codes -> (B, T) token ids + attention mask, T the longest tokenisation of the batch.

    Each run of A/C/G/T bases (between N's) is read from its start as k-mers; the bases left at the end of a run
    (fewer than k) and every N are single-nucleotide tokens. This is the greedy longest-match split of the
    published tokenizer (transformers' ``EsmTokenizer`` over this vocabulary gives the same ids).

    Token ids: the five special tokens, the 4**k k-mers in lexicographic order, then the single nucleotides
    A, C, G, T, N. Padding tokens are [PAD] with attention mask 0.
    """

    mask_span = 1  # tokens share no bases: masked modelling masks single tokens

    def __init__(self, k: int = 6) -> None:
        super().__init__()
        if not 1 <= k <= 6:
            raise ValueError(f"k must be between 1 and 6, got {k}")
        self.k = k
        self.first_single = len(SPECIAL_TOKENS) + 4**k
        self.vocab_size = self.first_single + len(BASES)
        self.register_buffer("_weights", 4 ** torch.arange(k - 1, -1, -1), persistent=False)

    def spans(self, bases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (token ids, start base, number of bases), each (B, T); padding has start -1 and 0 bases."""
        batch, length = bases.shape
        k = self.k
        positions = torch.arange(length, device=bases.device).expand(batch, length)
        valid = bases != PAD_BASE
        is_n = bases == N_BASE
        breaks = is_n | ~valid
        # a run of A/C/G/T starts after the last break (or at 0) and ends at the next break (or L)
        after_break = torch.where(breaks, positions + 1, torch.zeros_like(positions))
        run_start = torch.cummax(after_break, dim=1).values
        next_break = torch.where(breaks, positions, torch.full_like(positions, length))
        run_end = torch.flip(torch.cummin(torch.flip(next_break, [1]), dim=1).values, [1])
        offset = positions - run_start
        full = (run_end - run_start) // k * k
        starts_kmer = valid & ~is_n & (offset % k == 0) & (offset < full)
        starts_single = valid & (is_n | (offset >= full))
        padded = torch.nn.functional.pad(bases, (0, k - 1), value=PAD_BASE)
        windows = padded.unfold(1, k, 1)  # (B, L, k)
        kmer_ids = (windows.clamp(max=3) * self._weights).sum(dim=-1) + len(SPECIAL_TOKENS)
        single_ids = self.first_single + bases.clamp(max=N_BASE)
        ids = torch.where(starts_kmer, kmer_ids, single_ids)
        sizes = torch.where(starts_kmer, torch.full_like(positions, k), torch.ones_like(positions))
        starts = starts_kmer | starts_single
        counts = starts.sum(dim=1)
        n_tokens = max(int(counts.max()) if batch else 0, 1)
        slot = torch.where(starts, starts.cumsum(dim=1) - 1, torch.full_like(positions, n_tokens))
        out_ids = torch.full((batch, n_tokens + 1), PAD_ID, dtype=torch.long, device=bases.device)
        out_start = torch.full_like(out_ids, -1)
        out_size = torch.zeros_like(out_ids)
        out_ids.scatter_(1, slot, torch.where(starts, ids, torch.full_like(ids, PAD_ID)))
        out_start.scatter_(1, slot, torch.where(starts, positions, torch.full_like(positions, -1)))
        out_size.scatter_(1, slot, torch.where(starts, sizes, torch.zeros_like(sizes)))
        return out_ids[:, :n_tokens], out_start[:, :n_tokens], out_size[:, :n_tokens]

    def forward(self, bases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, _, sizes = self.spans(bases)
        return tokens, (sizes > 0).long()

    def tokens(self) -> list[str]:
        """The vocabulary, in id order (special tokens as in ``SPECIAL_TOKENS``)."""
        return [*SPECIAL_TOKENS, *(self.decode(i) for i in range(len(SPECIAL_TOKENS), self.vocab_size))]

    def kmer_id(self, kmer: str) -> int:
        """The id of one token's bases: a k-mer of A/C/G/T, or a single nucleotide."""
        codes = encode_bases(kmer)
        if len(kmer) == 1:
            return self.first_single + int(codes[0])
        if len(kmer) != self.k or (codes == N_BASE).any():
            raise ValueError(f"expected a {self.k}-mer of A, C, G, T or a single base, got {kmer!r}")
        return int(sum(int(c) * 4 ** (self.k - 1 - i) for i, c in enumerate(codes)) + len(SPECIAL_TOKENS))

    def decode(self, token: int) -> str:
        if token < len(SPECIAL_TOKENS):
            return SPECIAL_TOKENS[token]
        if token >= self.first_single:
            return BASES[token - self.first_single]
        value = token - len(SPECIAL_TOKENS)
        return "".join(BASES[(value // 4 ** (self.k - 1 - i)) % 4] for i in range(self.k))
