"""The frozen multi-scale feature pyramid of a ResNet (``spatial_dims`` 2 or 3): the network of the feature-based
image anomaly detectors.

Reverse distillation (Deng & Li 2022, CVPR, "Anomaly detection via reverse distillation from one-class
embedding") and PatchCore (Roth et al. 2022, CVPR, "Towards total recall in industrial anomaly detection") both
compare dense feature maps of a frozen, pre-trained CNN at several scales. Here that CNN is biolatent's ResNet
(``biolatent.models.resnet.ResNetEncoder``: He et al. 2016, CVPR, "Deep residual learning for image
recognition"); the pyramid is the output of its last ``N_LEVELS`` stages. Where its weights come from (a random
ResNet or a ``biolatent pretrain`` run) is ``biolatent.anomaly.image.feature_pyramid``.

The weights are parameters and buffers of the pyramid (part of a detector's state_dict), with
``requires_grad=False``; the pyramid always stays in evaluation mode (BatchNorm running statistics are never
updated), even when the trainer calls ``.train()``. A pyramid built empty (``ready=False``: its weights come with
a state_dict loaded later, the ``ready`` buffer) refuses to run until then (``check_ready``: a ``ConfigError``).
"""

from __future__ import annotations

import torch
from torch import nn

from biolatent.errors import ConfigError
from biolatent.models.resnet import ResNetEncoder

N_LEVELS = 3
INTERPOLATION = {2: "bilinear", 3: "trilinear"}  # upsampling of feature maps and distance maps to the input grid


def resnet_architecture(net: ResNetEncoder) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(widths, blocks) of a built ``ResNetEncoder`` (read from its modules)."""
    widths = tuple(int(stage[0].conv2.out_channels) for stage in net.stages)
    blocks = tuple(len(stage) for stage in net.stages)
    return widths, blocks


class FeaturePyramid(nn.Module):
    """Frozen ResNet -> the feature maps of its last ``N_LEVELS`` stages, finest first.

    ``channels`` and ``strides`` (relative to the input) describe the levels.
    """

    def __init__(self, net: ResNetEncoder, *, ready: bool = True, centre_input: bool = False) -> None:
        super().__init__()
        if net.spatial_dims not in (2, 3):
            raise ConfigError(f"the feature pyramid needs a 2D or 3D ResNet, got spatial_dims {net.spatial_dims}")
        if net.block != "basic" or net.stem_pool:
            raise ConfigError("the feature pyramid needs a ResNet of basic blocks without a stem max-pool (its level "
                              "channels and strides assume them)")
        widths, blocks = resnet_architecture(net)
        if len(widths) < N_LEVELS:
            raise ConfigError(f"the feature pyramid needs a ResNet with at least {N_LEVELS} stages, got widths "
                              f"{list(widths)}")
        self.net = net
        self.spatial_dims = int(net.spatial_dims)
        self.widths, self.blocks = widths, blocks
        self.in_channels = int(net.in_channels)
        self.first = len(widths) - N_LEVELS
        self.channels = widths[self.first:]
        self.strides = tuple(2**i for i in range(self.first, len(widths)))
        self.register_buffer("ready", torch.tensor(1.0 if ready else 0.0))
        # the random ResNet has no biases and identity BatchNorm: a zero input (the image background) would give
        # all-zero features, whose cosine similarity is undefined; it sees 2x - 1 instead (background -1)
        self.register_buffer("input_shift", torch.tensor(1.0 if centre_input else 0.0))
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FeaturePyramid:
        """Always evaluation mode: the frozen BatchNorm statistics never move."""
        return super().train(False)

    def check_ready(self) -> None:
        if float(self.ready) != 1.0:
            raise ConfigError("the feature pyramid has no weights: its pretrain run directory was not found and no "
                              "fitted detector was loaded")

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, *spatial) -> [(B, channels[k], *(spatial / strides[k])) for each level k]."""
        h = self.net.stem(x * (1.0 + self.input_shift) - self.input_shift)
        levels = []
        for index, stage in enumerate(self.net.stages):
            h = stage(h)
            if index >= self.first:
                levels.append(h)
        return levels
