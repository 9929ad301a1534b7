"""Views of DNA base codes (B, L): random shift, reverse complement, point mutations.

Recipes:

* Random shifts and reverse complements of the input sequence: Kelley et al. 2018, "Sequential regulatory
  activity prediction across chromosomes with convolutional neural networks" (Basenji), Genome Research 28;
  Avsec et al. 2021, "Effective gene expression prediction from sequence by integrating long-range
  interactions" (Enformer), Nature Methods 18.
* Random point mutations (with reverse complement and translocations) as evolution-inspired augmentations:
  Lee et al. 2023, "EvoAug: improving generalization and interpretability of genomic deep neural networks
  with evolution-inspired data augmentations", Genome Biology 24.

Codes: A=0 C=1 G=2 T=3 N=4 PAD=5, right padded (``biolatent.data.sequence``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from biolatent.data.sequence import N_BASE, PAD_BASE, reverse_complement
from biolatent.data.views.base import Params, ViewModule, as_device, check_probability, rand, randint


def shift_left(bases: Tensor, offsets: Tensor) -> Tensor:
    """Drop the first ``offsets[i]`` bases of row i (keeping at least one base), right-pad with PAD."""
    lengths = (bases != PAD_BASE).sum(dim=1, keepdim=True)
    offsets = torch.minimum(offsets.to(bases.device)[:, None], (lengths - 1).clamp(min=0))
    positions = torch.arange(bases.shape[1], device=bases.device).expand_as(bases)
    source = positions + offsets
    moved = torch.gather(bases, 1, source.clamp(max=bases.shape[1] - 1))
    return torch.where(source < lengths, moved, torch.full_like(bases, PAD_BASE))


class DnaViews(ViewModule):
    """Augmented views of (B, L) int64 base codes; output has the input's shape and dtype.

    In order, per sample: a shift (the window starting at offset ``U{0..max_shift}``, clipped to the
    sequence's own length so at least one base stays, moved to position 0 and right-padded with PAD);
    a reverse complement with probability ``reverse_complement_prob``; then each A/C/G/T mutated with
    probability ``mutation_rate`` to one of the three other bases, uniformly (N and PAD never change).
    """

    def __init__(
        self,
        *,
        reverse_complement_prob: float = 0.5,
        max_shift: int = 10,
        mutation_rate: float = 0.0,
        max_length: int | None = None,
    ) -> None:
        super().__init__()
        check_probability("reverse_complement_prob", reverse_complement_prob)
        check_probability("mutation_rate", mutation_rate)
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.reverse_complement_prob = float(reverse_complement_prob)
        self.max_shift = int(max_shift)
        self.mutation_rate = float(mutation_rate)
        self.max_length = max_length

    def extra_repr(self) -> str:
        return (
            f"reverse_complement_prob={self.reverse_complement_prob}, max_shift={self.max_shift}, "
            f"mutation_rate={self.mutation_rate}"
        )

    def sample_params(
        self,
        n: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
        *,
        sample_shape: Sequence[int] | None = None,
    ) -> Params:
        """``shift`` (n,), ``reverse`` (n,) bool; mutations: ``mutate`` (n, L) bool, ``delta`` (n, L)."""
        device = as_device(device)
        params: Params = {
            "shift": randint(0, self.max_shift + 1, (n,), device, generator),
            "reverse": rand((n,), device, generator) < self.reverse_complement_prob,
        }
        if self.mutation_rate > 0:
            length = int(sample_shape[0]) if sample_shape is not None else self.max_length
            if length is None:
                raise ValueError("DnaViews needs sample_shape=(L,) or a view built with max_length")
            params["mutate"] = rand((n, length), device, generator) < self.mutation_rate
            params["delta"] = randint(1, 4, (n, length), device, generator)
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        if x.ndim != 2:
            raise ValueError(f"DnaViews expects (B, L) base codes, got shape {tuple(x.shape)}")
        bases = x.long()
        if self.max_shift > 0:
            bases = shift_left(bases, params["shift"])
        reverse = params["reverse"].to(x.device)
        if bool(reverse.any()):
            bases = torch.where(reverse[:, None], reverse_complement(bases), bases)
        if "mutate" in params:
            mutate = params["mutate"].to(x.device)
            if mutate.shape != bases.shape:
                raise ValueError(f"params are for shape {tuple(mutate.shape)}, input is {tuple(x.shape)}")
            mutated = (bases + params["delta"].to(x.device)) % 4
            bases = torch.where(mutate & (bases < N_BASE), mutated, bases)
        return bases.to(x.dtype)
