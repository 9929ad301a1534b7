"""TS2Vec's dilated convolutional encoder for time series (Yue et al. 2022, AAAI, "TS2Vec: Towards Universal
Representation of Time Series", section 3.1 and the authors' ``models/encoder.py``).

A linear input projection of each time step (C -> ``hidden_dim``), then ``depth`` residual blocks of two
same-padded 1D convolutions (kernel ``kernel_size``, GELU before each) whose dilation doubles block by block
(1, 2, 4, ...), and a last block to ``out_dim`` channels. ``forward_dense`` gives one ``out_dim`` vector per time
step; ``time_mask`` (B, T) bool (True = kept) zeroes the projected input at the other time steps (TS2Vec's
timestamp masking, applied to the latent input, not to the raw values). ``forward`` max-pools the dense
representation over time (TS2Vec's instance-level representation) -> (B, out_dim).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class SamePadConv(nn.Module):
    """A dilated 1D convolution whose output has the input's length (an even receptive field drops its last
    output step, as TS2Vec's)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        receptive_field = (kernel_size - 1) * dilation + 1
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=receptive_field // 2,
                              dilation=dilation)
        self.remove = 1 if receptive_field % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out[:, :, : out.shape[2] - self.remove] if self.remove else out


class ConvBlock(nn.Module):
    """GELU, conv, GELU, conv, plus the input (projected by a 1x1 convolution when the widths differ)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, final: bool) -> None:
        super().__init__()
        self.conv1 = SamePadConv(in_channels, out_channels, kernel_size, dilation)
        self.conv2 = SamePadConv(out_channels, out_channels, kernel_size, dilation)
        self.projector = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels or final else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.projector is None else self.projector(x)
        return self.conv2(F.gelu(self.conv1(F.gelu(x)))) + residual


class DilatedConvEncoder(nn.Module):
    """(B, C, T) series -> (B, out_dim); dense (B, T, out_dim) per time step (module docstring)."""

    def __init__(self, in_channels: int, *, hidden_dim: int = 64, out_dim: int = 320, depth: int = 10,
                 kernel_size: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        self.input_fc = nn.Linear(in_channels, hidden_dim)
        widths = [hidden_dim] * depth + [out_dim]
        self.blocks = nn.Sequential(*[
            ConvBlock(widths[i - 1] if i > 0 else hidden_dim, widths[i], kernel_size, dilation=2**i,
                      final=i == len(widths) - 1)
            for i in range(len(widths))
        ])
        self.dropout = nn.Dropout(dropout)

    @classmethod
    def from_data(cls, info: Any, **kwargs: Any) -> DilatedConvEncoder:
        return cls(int(info.channels), **kwargs)

    def forward_dense(self, x: torch.Tensor, time_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T) -> (B, T, out_dim); ``time_mask`` (B, T) True = kept."""
        h = self.input_fc(x.transpose(1, 2))  # (B, T, hidden)
        if time_mask is not None:
            h = h * time_mask.unsqueeze(-1).to(h.dtype)
        return self.dropout(self.blocks(h.transpose(1, 2))).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_dense(x).amax(dim=1)
