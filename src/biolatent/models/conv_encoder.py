"""A small convolutional encoder for images (C, H, W) or volumes (C, D, H, W) whose sides are one power of two
>= 32 (``spatial_dims`` 2 or 3; its mirrored decoder: ``models.conv_decoder``).

The layout follows the dense-bottleneck convolutional autoencoders compared by Baur, Denner, Wiestler, Navab
& Albarqouni (2021, Medical Image Analysis 69:101952, "Autoencoders for unsupervised anomaly segmentation in
brain MR images: a comparative study") and the encoder/generator of the ceVAE (Zimmerer et al. 2019,
arXiv:1812.05941): ``len(widths)`` stride-2 4x4(x4) convolutions (each halves every side) with LeakyReLU, a
flattened feature vector, and a mirrored decoder of 4x4 stride-2 transposed convolutions ending in a linear 3x3
convolution. No batch normalisation, so training and evaluation behave the same.

The decoder's output is linear, not a sigmoid: on axial slices of whole brains (mostly background at the top and
bottom of the head) a sigmoid output saturated within the first epoch to an all-zero reconstruction whose
gradient vanishes (measured: the MSE stuck at the mean squared intensity for every learning rate from 1e-4 to
1e-2), while the linear output trained on the same slices. Reconstructions are clipped to [0, 1], the range of
the images, where anomaly maps are computed.
"""

from __future__ import annotations

import torch
from torch import nn

from biolatent.errors import ConfigError

MIN_SIZE = 32
CONV = {2: nn.Conv2d, 3: nn.Conv3d}
TRANSPOSED = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_spatial_dims(spatial_dims: int) -> int:
    """``spatial_dims`` when it is 2 or 3; a one-line ConfigError otherwise."""
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 (images) or 3 (volumes), got {spatial_dims}")
    return int(spatial_dims)


def check_architecture(image_size: int, widths: tuple[int, ...], latent_dim: int, in_channels: int) -> None:
    """ConfigError (one line) when the networks cannot be built for these settings."""
    if not is_power_of_two(image_size) or image_size < MIN_SIZE:
        raise ConfigError(f"image_size must be a power of two >= {MIN_SIZE}, got {image_size}")
    if not widths or any(w < 1 for w in widths):
        raise ConfigError(f"widths must be a non-empty list of positive channel counts, got {list(widths)}")
    if image_size >> len(widths) < 2:
        raise ConfigError(f"{len(widths)} downsamplings leave less than 2x2 pixels of a {image_size}-pixel image")
    if latent_dim < 1 or in_channels < 1:
        raise ConfigError(f"latent_dim and in_channels must be >= 1, got {latent_dim} and {in_channels}")


class ConvEncoder(nn.Module):
    """(B, C, *[image_size] * spatial_dims) -> (B, out_dim) flattened features,
    ``out_dim = widths[-1] * (image_size / 2**len(widths))**spatial_dims``."""

    def __init__(self, in_channels: int, image_size: int, widths: tuple[int, ...], spatial_dims: int = 2) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        conv = CONV[self.spatial_dims]
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            layers += [conv(previous, width, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.in_channels, self.image_size = in_channels, image_size
        self.out_dim = widths[-1] * (image_size >> len(widths)) ** self.spatial_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)
