"""ResNet with basic or bottleneck residual blocks (He et al. 2016, CVPR, "Deep residual learning for image
recognition").

By default a 3x3 stem (no max-pool: inputs are small tiles), one stage of ``BasicBlock`` per entry of ``widths``
(the first at stride 1, the others at stride 2), BatchNorm, global average pooling. ``spatial_dims=3`` swaps in
Conv3d/BatchNorm3d (it comes from the data, not the config: 2 for image2d, 3 for volumes). ``stem_stride=2`` halves
the resolution in the stem, as the original ResNet's strided stem does: about 8x less compute on volumes.

``block="bottleneck"`` uses the paper's 1x1-3x3-1x1 bottleneck (output ``4 x width``, the stride on the 3x3
convolution as in torchvision's "ResNet v1.5"); ``stem_kernel=7, stem_stride=2, stem_pool=True`` is the paper's
ImageNet stem (7x7 stride-2 convolution, 3x3 stride-2 max-pool). ResNet-50 is therefore
``block="bottleneck", widths=(64, 128, 256, 512), blocks=(3, 4, 6, 3), stem_kernel=7, stem_stride=2,
stem_pool=True``: 23,508,032 parameters, the same as torchvision's ``resnet50`` without its ``fc`` layer
(``RESNET50_KWARGS``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from biolatent.errors import ConfigError, DataError

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}

# torchvision's resnet50 (He et al. 2016, Table 1, "50-layer") as ResNetEncoder keyword arguments
RESNET50_KWARGS: dict[str, Any] = {
    "block": "bottleneck", "widths": (64, 128, 256, 512), "blocks": (3, 4, 6, 3),
    "stem_kernel": 7, "stem_stride": 2, "stem_pool": True,
}
# the 18-layer ResNet of the same paper (basic blocks) with its ImageNet stem; in 3D at 96^3 it is the volume
# encoder of the GPU throughput benchmark
RESNET18_KWARGS: dict[str, Any] = {
    "block": "basic", "widths": (64, 128, 256, 512), "blocks": (2, 2, 2, 2),
    "stem_kernel": 7, "stem_stride": 2, "stem_pool": True,
}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and an identity (or 1x1 projection) shortcut (He et al. 2016)."""

    expansion = 1

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


class Bottleneck(nn.Module):
    """1x1 (reduce to ``width``) -> 3x3 (stride) -> 1x1 (expand to ``4 x width``) convolutions with BatchNorm and an
    identity (or strided 1x1 projection) shortcut: the bottleneck block of He et al. 2016 (Fig. 5), with the
    stride on the 3x3 convolution as torchvision places it."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, spatial_dims: int) -> None:
        super().__init__()
        conv, norm = _CONV[spatial_dims], _NORM[spatial_dims]
        out_ch = width * self.expansion
        self.conv1 = conv(in_ch, width, 1, bias=False)
        self.bn1 = norm(width)
        self.conv2 = conv(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(width)
        self.conv3 = conv(width, out_ch, 1, bias=False)
        self.bn3 = norm(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(conv(in_ch, out_ch, 1, stride=stride, bias=False), norm(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNetEncoder(nn.Module):
    """(B, C, *spatial) images -> (B, out_dim) after global average pooling; ``out_dim`` is ``widths[-1]`` for
    basic blocks and ``4 x widths[-1]`` for bottleneck blocks."""

    def __init__(
        self,
        in_channels: int,
        spatial_dims: int = 2,
        *,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        stem_stride: int = 1,
        block: Literal["basic", "bottleneck"] = "basic",
        stem_kernel: int = 3,
        stem_pool: bool = False,
    ) -> None:
        super().__init__()
        if stem_stride not in (1, 2):
            raise ConfigError(f"model.stem_stride must be 1 or 2, got {stem_stride}")
        if block not in _BLOCKS:
            raise ConfigError(f"model.block must be one of {', '.join(_BLOCKS)}, got {block!r}")
        if stem_kernel < 1 or stem_kernel % 2 == 0:
            raise ConfigError(f"model.stem_kernel must be a positive odd number, got {stem_kernel}")
        if spatial_dims not in _CONV:
            raise ConfigError(f"model.spatial_dims must be 2 or 3, got {spatial_dims}")
        if len(widths) != len(blocks) or not widths:
            raise ConfigError(
                f"model.widths and model.blocks need the same non-zero length, got {widths} {blocks}"
            )
        self.in_channels = int(in_channels)
        self.spatial_dims = spatial_dims
        self.block, self.stem_pool = block, bool(stem_pool)
        unit = _BLOCKS[block]
        self.out_dim = int(widths[-1]) * unit.expansion
        conv, norm = _CONV[spatial_dims], _NORM[spatial_dims]
        stem: list[nn.Module] = [
            conv(self.in_channels, widths[0], stem_kernel, stride=stem_stride, padding=stem_kernel // 2, bias=False),
            norm(widths[0]),
            nn.ReLU(inplace=True),
        ]
        if stem_pool:
            stem.append(_POOL[spatial_dims](kernel_size=3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        stages: list[nn.Module] = []
        channels = widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            stride = 1 if index == 0 else 2
            layers: list[nn.Module] = []
            for i in range(count):
                layers.append(unit(channels, width, stride if i == 0 else 1, spatial_dims))
                channels = width * unit.expansion
            stages.append(nn.Sequential(*layers))
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
        """The dense feature map (B, out_dim, *spatial / (stem_stride * (2 if stem_pool) * 2**(len(widths)-1)))."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).flatten(2).mean(dim=2)
