"""A convolutional decoder: a latent vector -> an image or volume (``spatial_dims`` 2 or 3).

A linear map to the coarsest feature grid (``image_size / 2**len(widths)`` per side), then one transposed
convolution (kernel 4, stride 2) per width doubling the grid, and a final 3x3(x3) convolution to the output
channels (linear output). The decoder of the image autoencoders (``anomaly``) and of the cross-modal autoencoder.
"""

from __future__ import annotations

import torch
from torch import nn

from biolatent.errors import ConfigError


class ConvDecoder(nn.Module):
    """(B, latent_dim) -> (B, out_channels, image_size, ... spatial_dims times)."""

    def __init__(self, out_channels: int, image_size: int, widths: tuple[int, ...], latent_dim: int,
                 spatial_dims: int = 2) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ConfigError(f"decoder spatial_dims must be 2 or 3, got {spatial_dims}")
        if not widths or image_size % (1 << len(widths)):
            raise ConfigError(f"decoder: image size {image_size} must be divisible by 2**{len(widths)} (one halving "
                              "per decoder width)")
        self.spatial_dims = spatial_dims
        self.grid, self.top = image_size >> len(widths), widths[-1]
        self.project = nn.Sequential(nn.Linear(latent_dim, self.top * self.grid**spatial_dims), nn.LeakyReLU(0.2))
        transpose = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        layers: list[nn.Module] = []
        reversed_widths = list(reversed(widths))
        for width, following in zip(reversed_widths, [*reversed_widths[1:], None], strict=True):
            out = following if following is not None else width
            layers += [transpose(width, out, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers += [conv(widths[0], out_channels, kernel_size=3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], self.top, *[self.grid] * self.spatial_dims)
        return self.body(h)
