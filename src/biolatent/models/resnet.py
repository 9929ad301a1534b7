"""ResNet with basic residual blocks (He et al. 2016, CVPR, "Deep residual learning for image recognition").

A 3x3 stem (no max-pool: inputs are small tiles), one stage per entry of ``widths`` (the first at stride 1,
the others at stride 2), BatchNorm, global average pooling. ``spatial_dims=3`` swaps in Conv3d/BatchNorm3d (it
comes from the data, not the config: 2 for image2d, 3 for volumes). ``stem_stride=2`` halves the resolution in the
stem, as the original ResNet's strided stem does: about 8x less compute on volumes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from biolatent.errors import ConfigError, DataError

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, spatial_dims: int) -> None:
        super().__init__()
        conv, norm = _CONV[spatial_dims], _NORM[spatial_dims]
        self.conv1 = conv(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(out_ch)
        self.conv2 = conv(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(conv(in_ch, out_ch, 1, stride=stride, bias=False), norm(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """(B, C, *spatial) images -> (B, widths[-1]) after global average pooling."""

    def __init__(
        self,
        in_channels: int,
        spatial_dims: int = 2,
        *,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if stem_stride not in (1, 2):
            raise ConfigError(f"model.stem_stride must be 1 or 2, got {stem_stride}")
        if spatial_dims not in _CONV:
            raise ConfigError(f"model.spatial_dims must be 2 or 3, got {spatial_dims}")
        if len(widths) != len(blocks) or not widths:
            raise ConfigError(
                f"model.widths and model.blocks need the same non-zero length, got {widths} {blocks}"
            )
        self.in_channels = int(in_channels)
        self.spatial_dims = spatial_dims
        self.out_dim = int(widths[-1])
        conv, norm = _CONV[spatial_dims], _NORM[spatial_dims]
        self.stem = nn.Sequential(
            conv(self.in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            norm(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        width = widths[0]
        for index, (out_ch, count) in enumerate(zip(widths, blocks, strict=True)):
            stride = 1 if index == 0 else 2
            layers = [
                BasicBlock(width if i == 0 else out_ch, out_ch, stride if i == 0 else 1, spatial_dims)
                for i in range(count)
            ]
            stages.append(nn.Sequential(*layers))
            width = out_ch
        self.stages = nn.Sequential(*stages)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @classmethod
    def from_data(cls, info: Any, **hparams: Any) -> ResNetEncoder:
        if not info.channels:
            raise DataError("encoder 'resnet' needs the number of image channels of the data")
        return cls(int(info.channels), int(info.spatial_dims or 2), **hparams)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The dense feature map (B, widths[-1], *spatial / (stem_stride * 2**(len(widths)-1)))."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).flatten(2).mean(dim=2)
