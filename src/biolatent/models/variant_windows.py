"""A genetic encoder over raw variant windows: a locally connected layer, then an MLP.

The raw-variant genetic modality of ContIG (Taleb et al. 2022, CVPR) feeds a subject's genotypes to the genetic
encoder directly. A dense first layer over tens of thousands of variants mixes every locus with every other and
holds ``variants x hidden`` weights; a locally connected first layer (one small dense map per window of
``window`` neighbouring variants, no weight sharing between windows: the layout of locally connected genotype
networks, e.g. Romagnoni et al. 2019, Sci Rep 9:10351) keeps linkage-disequilibrium blocks together and holds
``variants x window_features`` weights. Windows follow the variant axis as the data gives it (genome order for
PLINK/VCF input); the last window is zero-padded.

    h_w = ReLU(W_w x[w * window : (w + 1) * window] + b_w)   for every window w
    out = MLP(concat_w h_w)                                   (Linear, ReLU, Linear)
"""

from __future__ import annotations

import math

import torch
from torch import nn


class VariantWindowEncoder(nn.Module):
    """(subjects, variants) standardised genotypes -> (subjects, out_dim)."""

    def __init__(self, n_variants: int, out_dim: int, *, window: int = 100, window_features: int = 4,
                 hidden: int = 256) -> None:
        super().__init__()
        if n_variants < 1 or window < 1 or window_features < 1:
            raise ValueError("n_variants, window and window_features must be >= 1")
        self.n_variants, self.window = int(n_variants), int(window)
        self.n_windows = math.ceil(self.n_variants / self.window)
        bound = 1.0 / math.sqrt(self.window)  # nn.Linear's default initialisation, per window
        self.weight = nn.Parameter(torch.empty(self.n_windows, self.window, window_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(self.n_windows, window_features).uniform_(-bound, bound))
        self.head = nn.Sequential(nn.Linear(self.n_windows * window_features, hidden), nn.ReLU(),
                                  nn.Linear(hidden, out_dim))

    def window_features(self, genetics: torch.Tensor) -> torch.Tensor:
        """(subjects, windows, window_features): each window's own map of its variants, after the ReLU."""
        if genetics.ndim != 2 or genetics.shape[1] != self.n_variants:
            raise ValueError(f"expected (subjects, {self.n_variants}) genotypes, got {tuple(genetics.shape)}")
        padded = nn.functional.pad(genetics, (0, self.n_windows * self.window - self.n_variants))
        blocks = padded.view(genetics.shape[0], self.n_windows, self.window)
        return torch.relu(torch.einsum("bnw,nwf->bnf", blocks, self.weight) + self.bias)

    def forward(self, genetics: torch.Tensor) -> torch.Tensor:
        return self.head(self.window_features(genetics).flatten(1))
