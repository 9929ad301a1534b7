"""The small U-Net of VoxelMorph (Balakrishnan et al. 2019, "VoxelMorph: a learning framework for deformable
medical image registration", IEEE TMI 38(8)): the moving and fixed images concatenated as channels, strided
convolutions down, convolutions + upsampling + skip connections up, LeakyReLU(0.2). ``forward`` returns the
decoder's feature maps from the coarsest to the finest (the input's grid), so that a method can predict a
field from the last one (VoxelMorph) or one per level (a MICDIR-style pyramid: Chatterjee et al. 2022,
"MICDIR: Multi-scale inverse-consistent deformable image registration using UNetMSS with self-constructing
graph latent", arXiv:2203.04317). 2D and 3D through ``spatial_dims``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv(spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
    cls = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    return nn.Sequential(cls(in_channels, out_channels, 3, stride=stride, padding=1), nn.LeakyReLU(0.2))


def field_head(spatial_dims: int, in_channels: int) -> nn.Module:
    """A 3x3(x3) convolution to ``spatial_dims`` channels, initialised near zero (VoxelMorph: N(0, 1e-5)), so
    that training starts from the identity transform."""
    cls = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    head = cls(in_channels, spatial_dims, 3, padding=1)
    nn.init.normal_(head.weight, std=1e-5)
    nn.init.zeros_(head.bias)
    return head


class RegistrationUNet(nn.Module):
    """``(B, 2 * C, *spatial)`` -> decoder features per level, coarsest first, finest on the input's grid.

    ``widths[k]`` are the channels of encoder level ``k`` (level 0 at full resolution); each further level halves
    the grid, so the input's sides must be divisible by ``2 ** (len(widths) - 1)``.
    """

    def __init__(self, in_channels: int = 2, *, spatial_dims: int = 3, widths: Sequence[int] = (16, 32, 32, 32)):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if len(widths) < 2:
            raise ValueError("widths needs at least two levels")
        self.spatial_dims = spatial_dims
        self.levels = len(widths)
        self.encoder = nn.ModuleList(
            [conv(spatial_dims, in_channels, widths[0])]
            + [conv(spatial_dims, widths[k - 1], widths[k], stride=2) for k in range(1, len(widths))])
        self.decoder = nn.ModuleList(
            [conv(spatial_dims, widths[k + 1] + widths[k], widths[k]) for k in reversed(range(len(widths) - 1))])
        self.out_channels = [widths[-1], *[widths[k] for k in reversed(range(len(widths) - 1))]]

    @property
    def divisor(self) -> int:
        return 2 ** (self.levels - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if any(n % self.divisor for n in x.shape[2:]):
            raise ValueError(f"input sides {tuple(x.shape[2:])} must be divisible by {self.divisor}")
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        features = [x]
        for block, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
            features.append(x)
        return features
