"""A small transformer encoder for time series over non-overlapping patches (patching as PatchTST, Nie et al.
2023, ICLR, "A Time Series is Worth 64 Words"; a pre-LN transformer encoder as in Zerveas et al. 2021, KDD, "A
Transformer-based Framework for Multivariate Time Series Representation Learning").

The series (B, C, T) is cut into patches of ``patch_size`` time steps (the last one zero-padded), each patch's
C x patch_size values linearly embedded, a learned position added, then ``depth`` pre-LN transformer layers.
``forward_dense`` repeats each patch's output over its time steps -> (B, T, dim) (time steps of one patch share
a vector); ``time_mask`` (B, T) bool (True = kept) zeroes the input values of the other time steps first.
``forward`` averages the patch outputs -> (B, dim).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class SeriesTransformerEncoder(nn.Module):
    """(B, C, T) series -> (B, dim) (module docstring)."""

    def __init__(self, in_channels: int, max_length: int, *, patch_size: int = 8, dim: int = 64, depth: int = 3,
                 heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels, self.patch_size, self.out_dim = in_channels, patch_size, dim
        self.max_patches = math.ceil(max_length / patch_size)
        self.patch_embed = nn.Linear(in_channels * patch_size, dim)
        self.position = nn.Parameter(torch.zeros(1, self.max_patches, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    @classmethod
    def from_data(cls, info: Any, **kwargs: Any) -> SeriesTransformerEncoder:
        return cls(int(info.channels), int(info.max_length), **kwargs)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, P, dim) patch outputs, P = ceil(T / patch_size) (at most the data's length)."""
        b, c, t = x.shape
        n_patches = math.ceil(t / self.patch_size)
        if n_patches > self.max_patches:
            raise ValueError(f"series of {t} steps exceed the encoder's max_length "
                             f"({self.max_patches * self.patch_size})")
        x = F.pad(x, (0, n_patches * self.patch_size - t))
        patches = x.reshape(b, c, n_patches, self.patch_size).permute(0, 2, 1, 3).reshape(b, n_patches, -1)
        tokens = self.patch_embed(patches) + self.position[:, :n_patches]
        return self.norm(self.layers(tokens))

    def forward_dense(self, x: torch.Tensor, time_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T) -> (B, T, dim); ``time_mask`` (B, T) True = kept."""
        if time_mask is not None:
            x = x * time_mask.unsqueeze(1).to(x.dtype)
        tokens = self.forward_tokens(x)
        return tokens.repeat_interleave(self.patch_size, dim=1)[:, : x.shape[2]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(x).mean(dim=1)
