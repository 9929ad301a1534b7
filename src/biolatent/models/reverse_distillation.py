"""The trainable networks of reverse distillation (``spatial_dims`` 2 or 3): the one-class bottleneck and the
student decoder.

Deng & Li 2022, CVPR, "Anomaly detection via reverse distillation from one-class embedding" (arXiv:2201.10703).
The teacher is a frozen feature pyramid (``models.feature_pyramid``) whose levels k = 1..K have ``channels[k]``
channels, each level half the grid of the one before.

* ``OneClassBottleneck`` (OCBE): multi-scale feature fusion - each level is brought to the coarsest level's grid
  by a chain of 3x3 stride-2 convolutions (+ BatchNorm + ReLU; each step maps to the next level's channel
  count), the levels are concatenated, and one residual block at stride 2 (``BasicBlock``) compresses them into
  the compact embedding (``embed_dim`` channels, half the coarsest grid).
* ``StudentDecoder``: the mirror of the teacher, from the embedding back to each level: per level a 2x2 stride-2
  transposed convolution (+ BatchNorm + ReLU) and a residual block; its output at level k is the student's
  reconstruction S_k of the teacher's T_k.

The method (loss, anomaly map) is ``biolatent.anomaly.image.reverse_distillation``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from biolatent.models.conv_encoder import CONV, TRANSPOSED
from biolatent.models.feature_pyramid import INTERPOLATION
from biolatent.models.resnet import BasicBlock

NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _conv_bn_relu(conv: nn.Module, channels: int, spatial_dims: int = 2) -> nn.Sequential:
    return nn.Sequential(conv, NORM[spatial_dims](channels), nn.ReLU(inplace=True))


class OneClassBottleneck(nn.Module):
    """Multi-scale feature fusion of the teacher levels, then one stride-2 residual block -> the embedding."""

    def __init__(self, channels: tuple[int, ...], embed_dim: int, spatial_dims: int = 2) -> None:
        super().__init__()
        conv = CONV[spatial_dims]
        self.align = nn.ModuleList()
        for index in range(len(channels)):
            steps = [_conv_bn_relu(conv(channels[j], channels[j + 1], 3, stride=2, padding=1, bias=False),
                                   channels[j + 1], spatial_dims) for j in range(index, len(channels) - 1)]
            self.align.append(nn.Sequential(*steps))
        self.embed = BasicBlock(len(channels) * channels[-1], embed_dim, stride=2, spatial_dims=spatial_dims)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        aligned = [align(level) for align, level in zip(self.align, levels, strict=True)]
        return self.embed(torch.cat(aligned, dim=1))


class StudentDecoder(nn.Module):
    """Embedding -> the student's features at each teacher level (finest first)."""

    def __init__(self, channels: tuple[int, ...], embed_dim: int, spatial_dims: int = 2) -> None:
        super().__init__()
        inputs = (*channels[1:], embed_dim)
        self.spatial_dims = spatial_dims
        self.up = nn.ModuleList(_conv_bn_relu(TRANSPOSED[spatial_dims](i, c, 2, stride=2, bias=False), c, spatial_dims)
                                for i, c in zip(inputs, channels, strict=True))
        self.blocks = nn.ModuleList(BasicBlock(c, c, stride=1, spatial_dims=spatial_dims) for c in channels)

    def forward(self, embedding: torch.Tensor, sizes: list[torch.Size]) -> list[torch.Tensor]:
        h, out = embedding, []
        for index in reversed(range(len(self.blocks))):
            h = self.up[index](h)
            if h.shape[2:] != sizes[index]:  # odd grids: match the teacher's level
                h = F.interpolate(h, size=sizes[index], mode=INTERPOLATION[self.spatial_dims], align_corners=False)
            h = self.blocks[index](h)
            out.append(h)
        return out[::-1]
