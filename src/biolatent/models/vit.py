"""Vision Transformer (Dosovitskiy et al. 2021, ICLR, "An image is worth 16x16 words").

Patch embedding by a strided convolution, fixed sin-cos (default) or learned positional embedding, a CLS
token without position, pre-norm transformer blocks, a final LayerNorm. ``forward`` pools the layer-normed
tokens: ``pool="mean"`` (default) averages the patch tokens, ``pool="cls"`` takes the CLS token. The mean is
the default because masked-autoencoder pre-training (He et al. 2022) gives the CLS token no direct signal.
``forward_tokens(x, keep_index)`` encodes only a subset of patches (what MAE needs).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from biolatent.errors import ConfigError, DataError


def sincos_position_embedding(grid_size: int, dim: int, spatial_dims: int = 2) -> torch.Tensor:
    """Fixed (grid_size**spatial_dims, dim) embedding: per axis, sines and cosines of the patch coordinate
    at geometric frequencies (Vaswani et al. 2017); axes are concatenated, leftover channels are zero."""
    axes = torch.meshgrid(*[torch.arange(grid_size, dtype=torch.float64)] * spatial_dims, indexing="ij")
    coords = torch.stack([a.reshape(-1) for a in axes], dim=1)  # (N, d)
    half = max(1, dim // spatial_dims // 2)
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / half)
    parts = []
    for axis in range(spatial_dims):
        angles = coords[:, axis : axis + 1] * omega[None, :]
        parts += [torch.sin(angles), torch.cos(angles)]
    table = torch.cat(parts, dim=1)[:, :dim]
    out = torch.zeros(coords.shape[0], dim, dtype=torch.float64)
    out[:, : table.shape[1]] = table
    return out.float()


def transformer_blocks(dim: int, depth: int, heads: int, mlp_ratio: float) -> nn.ModuleList:
    """``depth`` pre-norm transformer blocks (LayerNorm -> attention, LayerNorm -> GELU MLP), no dropout."""
    return nn.ModuleList(
        nn.TransformerEncoderLayer(
            dim,
            heads,
            dim_feedforward=int(dim * mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        for _ in range(depth)
    )


class ViTEncoder(nn.Module):
    """(B, C, S, S[, S]) images with S = image_size -> (B, dim)."""

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        spatial_dims: int = 2,
        *,
        patch_size: int = 8,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        pos_embedding: Literal["sincos", "learned"] = "sincos",
        pool: Literal["mean", "cls"] = "mean",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ConfigError(f"model.spatial_dims must be 2 or 3, got {spatial_dims}")
        if image_size % patch_size != 0:
            raise ConfigError(f"model.patch_size {patch_size} must divide the image size {image_size}")
        if dim % heads != 0:
            raise ConfigError(f"model.dim {dim} must be a multiple of model.heads {heads}")
        self.image_size, self.in_channels, self.patch_size = (
            int(image_size),
            int(in_channels),
            int(patch_size),
        )
        self.spatial_dims, self.pool = spatial_dims, pool
        self.grid_size = self.image_size // self.patch_size
        self.num_patches = self.grid_size**spatial_dims
        self.patch_dim = self.patch_size**spatial_dims * self.in_channels
        self.out_dim = self.dim = int(dim)
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.patch_embed = conv(self.in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        table = sincos_position_embedding(self.grid_size, dim, spatial_dims)[None]
        if pos_embedding == "learned":
            self.pos_embed = nn.Parameter(table.clone())
        else:
            self.register_buffer("pos_embed", table)
        self.blocks = transformer_blocks(dim, depth, heads, mlp_ratio)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(dim, -1))

    @classmethod
    def from_data(cls, info: Any, **hparams: Any) -> ViTEncoder:
        if not info.image_size or not info.channels:
            raise DataError("encoder 'vit' needs the image size and channels of the data")
        # a cine's frames are the channels of its patches: a patch is a small space-time tube
        channels = int(info.channels) * int(info.frames or 1)
        return cls(int(info.image_size), channels, int(info.spatial_dims or 2), **hparams)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S[, S]) -> (B, N, patch_size**d * C), patches in row-major grid order, pixels then C."""
        b, c, d, g, p = x.shape[0], x.shape[1], self.spatial_dims, self.grid_size, self.patch_size
        x = x.reshape(b, c, *[n for _ in range(d) for n in (g, p)])
        perm = [0, *range(2, 2 + 2 * d, 2), *range(3, 3 + 2 * d, 2), 1]
        return x.permute(*perm).reshape(b, g**d, p**d * c)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """Inverse of ``patchify``: (B, N, patch_size**d * C) -> (B, C, S, S[, S])."""
        b, d, g, p, c = patches.shape[0], self.spatial_dims, self.grid_size, self.patch_size, self.in_channels
        x = patches.reshape(b, *[g] * d, *[p] * d, c)
        perm = [0, 2 * d + 1]
        for axis in range(d):
            perm += [1 + axis, 1 + d + axis]
        return x.permute(*perm).reshape(b, c, *[g * p] * d)

    def forward_tokens(self, x: torch.Tensor, keep_index: torch.Tensor | None = None) -> torch.Tensor:
        """Encode the patches at ``keep_index`` (B, n_keep) (all if None) -> (B, 1 + n_keep, dim), normed."""
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        if keep_index is not None:
            index = keep_index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            tokens = torch.gather(tokens, 1, index)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_tokens(x)
        return tokens[:, 0] if self.pool == "cls" else tokens[:, 1:].mean(dim=1)
