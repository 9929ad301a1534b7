"""A compact time-conditioned U-Net, the denoiser of the diffusion anomaly detectors (``ddpm``, ``masked_diffusion``),
for images or volumes (``spatial_dims`` 2 or 3: every convolution is 2D or 3D).

The layout follows the DDPM network of Ho, Jain & Abbeel (2020, NeurIPS, arXiv:2006.11239, "Denoising diffusion
probabilistic models"), itself a PixelCNN++-style U-Net (Ronneberger et al. 2015), at a size for CPUs: a 3x3
stem, then per resolution level one residual block (GroupNorm, SiLU, 3x3 conv; the time embedding is added
after the first conv; a 1x1 skip when the width changes), a stride-2 3x3 convolution between levels, one
residual block at the bottom, and a mirrored decoder (nearest-neighbour upsampling + 3x3 conv, skip
concatenation, residual block), closed by GroupNorm, SiLU and a zero-initialised 3x3 convolution (so the
untrained network predicts zero). The step t enters as the Transformer sinusoidal embedding (Vaswani et al.
2017) passed through a two-layer MLP. No attention layers (32-64 px images; Ho et al. use one at 16x16).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from biolatent.errors import ConfigError
from biolatent.models.conv_encoder import CONV, check_spatial_dims


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) steps -> (B, dim): [sin(t * f_i), cos(t * f_i)] with f_i = 10000^(-i / (dim/2)), i < dim/2."""
    if dim < 2 or dim % 2:
        raise ConfigError(f"the time embedding size must be an even number >= 2, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _groups(channels: int) -> int:
    """The largest of 8, 4, 2, 1 that divides ``channels`` (GroupNorm groups)."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x))) + Linear(emb)))) with a 1x1 skip when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, spatial_dims: int = 2) -> None:
        super().__init__()
        conv = CONV[spatial_dims]
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = conv(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Identity() if in_channels == out_channels else conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.emb(emb).view(*emb.shape[:1], -1, *[1] * (x.ndim - 2))
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return self.skip(x) + h


def check_unet(in_channels: int, out_channels: int, image_size: int, widths: tuple[int, ...]) -> None:
    """ConfigError (one line) when a ``TimeUNet`` cannot be built for these settings."""
    if in_channels < 1 or out_channels < 1:
        raise ConfigError(f"in_channels and out_channels must be >= 1, got {in_channels} and {out_channels}")
    if not widths or len(widths) > 4 or any(w < 1 for w in widths):
        raise ConfigError(f"widths must list 1 to 4 positive channel counts (one per level), got {list(widths)}")
    factor = 2 ** (len(widths) - 1)
    if image_size < 2 * factor or image_size % factor:
        raise ConfigError(f"{len(widths)} resolution levels need an image side divisible by {factor} and >= "
                          f"{2 * factor}, got {image_size}")


class TimeUNet(nn.Module):
    """``forward(x (B, C_in, *spatial), t (B,)) -> (B, C_out, *spatial)``; ``len(widths)`` resolution levels."""

    def __init__(self, in_channels: int, out_channels: int, image_size: int, widths: tuple[int, ...],
                 spatial_dims: int = 2) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        check_unet(in_channels, out_channels, image_size, widths)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        conv = CONV[self.spatial_dims]
        self.in_channels, self.out_channels, self.widths = in_channels, out_channels, widths
        self.emb_dim = 4 * widths[0]
        self.time_mlp = nn.Sequential(nn.Linear(widths[0], self.emb_dim), nn.SiLU(),
                                      nn.Linear(self.emb_dim, self.emb_dim))
        self.stem = conv(in_channels, widths[0], 3, padding=1)
        levels = len(widths)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = widths[0]
        for i, width in enumerate(widths):
            self.down.append(ResBlock(previous, width, self.emb_dim, spatial_dims))
            if i < levels - 1:
                self.downsample.append(conv(width, width, 3, stride=2, padding=1))
            previous = width
        self.middle = ResBlock(previous, previous, self.emb_dim, spatial_dims)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(levels)):
            self.up.append(ResBlock(previous + widths[i], widths[i], self.emb_dim, spatial_dims))
            if i > 0:
                self.upsample.append(conv(widths[i], widths[i], 3, padding=1))
            previous = widths[i]
        self.out_norm = nn.GroupNorm(_groups(widths[0]), widths[0])
        self.out = conv(widths[0], out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def embed_time(self, t: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(sinusoidal_embedding(t, self.widths[0] + self.widths[0] % 2)[:, : self.widths[0]])

    def encode(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(bottleneck features, skip tensors, time embedding)."""
        emb = self.embed_time(t)
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        return self.middle(h, emb), skips, emb

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, skips, emb = self.encode(x, t)
        for j, block in enumerate(self.up):
            h = block(torch.cat([h, skips[len(skips) - 1 - j]], dim=1), emb)
            if j < len(self.upsample):
                h = self.upsample[j](nn.functional.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(nn.functional.silu(self.out_norm(h)))
