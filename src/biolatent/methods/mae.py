"""Masked autoencoder (He, Chen, Xie, Li, Dollár & Girshick 2022, CVPR, "Masked autoencoders are scalable
vision learners").

Per sample, a random ``mask_ratio`` of the patches is removed (argsort of uniform noise); the ViT encoder
sees only the kept patches; a light transformer decoder gets the encoded tokens plus a shared mask token at
every removed position (fixed sin-cos positions) and predicts the pixels of every patch. The loss is the mean
squared error on the removed patches only (per-patch normalised targets with ``norm_pix_loss``).
``views`` are used only with ``use_views=True`` (the paper uses nothing stronger than crop and flip).
``embed`` = the encoder on the full image.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from biolatent.errors import ConfigError
from biolatent.methods.base import SSLMethod
from biolatent.models.vit import sincos_position_embedding, transformer_blocks
from biolatent.types import LossOutput


def random_masking(
    batch_size: int, num_patches: int, mask_ratio: float, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (keep_index (B, n_keep), restore_index (B, N), mask (B, N) float, 1 = removed)."""
    n_keep = max(1, int(num_patches * (1.0 - mask_ratio)))
    noise = torch.rand(batch_size, num_patches, device=device)
    shuffle = torch.argsort(noise, dim=1)
    restore = torch.argsort(shuffle, dim=1)
    mask = torch.ones(batch_size, num_patches, device=device)
    mask[:, :n_keep] = 0.0
    return shuffle[:, :n_keep], restore, torch.gather(mask, 1, restore)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over removed patches of the per-patch mean squared error."""
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1.0)


class MAE(SSLMethod):
    """ViT encoder + transformer decoder reconstructing the pixels of removed patches."""

    name: ClassVar[str] = "mae"
    modalities: ClassVar[tuple[str, ...]] = ("image2d",)

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        mask_ratio: float = 0.75,
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        norm_pix_loss: bool = False,
        use_views: bool = False,
    ) -> None:
        super().__init__(encoder, views=views)
        if not all(hasattr(encoder, a) for a in ("patchify", "forward_tokens", "num_patches")):
            raise ConfigError("method mae needs a patch-based vision transformer encoder (model.name: vit)")
        if not 0.0 <= mask_ratio < 1.0:
            raise ConfigError(f"method.mask_ratio must be in [0, 1), got {mask_ratio}")
        if decoder_dim % decoder_heads != 0:
            raise ConfigError(f"method.decoder_dim {decoder_dim} must be a multiple of method.decoder_heads")
        self.mask_ratio, self.norm_pix_loss, self.use_views = mask_ratio, norm_pix_loss, use_views
        self.num_patches = int(encoder.num_patches)
        patch_dim = getattr(encoder, "patch_dim", None)
        if patch_dim is None:
            patch_dim = int(encoder.patchify(torch.zeros(1, *self._input_shape())).shape[-1])
        self.decoder_embed = nn.Linear(int(encoder.out_dim), decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        grid, dims = int(encoder.grid_size), int(encoder.spatial_dims)
        table = sincos_position_embedding(grid, decoder_dim, dims)
        self.register_buffer("decoder_pos", torch.cat([torch.zeros(1, decoder_dim), table])[None])
        self.decoder_blocks = transformer_blocks(decoder_dim, decoder_depth, decoder_heads, 4.0)
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, patch_dim)
        nn.init.normal_(self.mask_token, std=0.02)

    def _input_shape(self) -> tuple[int, ...]:
        enc = self.encoder
        return (int(enc.in_channels), *[int(enc.image_size)] * int(enc.spatial_dims))

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (predicted patches (B, N, P), target patches (B, N, P), mask (B, N), 1 = removed)."""
        keep, restore, mask = random_masking(x.shape[0], self.num_patches, self.mask_ratio, x.device)
        latent = self.decoder_embed(self.encoder.forward_tokens(x, keep))  # (B, 1 + n_keep, Dd)
        b, n_keep = x.shape[0], keep.shape[1]
        fill = self.mask_token.expand(b, self.num_patches - n_keep, -1)
        shuffled = torch.cat([latent[:, 1:], fill], dim=1)
        index = restore.unsqueeze(-1).expand(-1, -1, shuffled.shape[-1])
        tokens = torch.cat([latent[:, :1], torch.gather(shuffled, 1, index)], dim=1) + self.decoder_pos
        for block in self.decoder_blocks:
            tokens = block(tokens)
        pred = self.decoder_pred(self.decoder_norm(tokens))[:, 1:]
        target = self.encoder.patchify(x)
        if self.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return pred, target, mask

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"].float()
        if self.use_views and self.views is not None and self.training:
            x = self.views(x)
        pred, target, mask = self.reconstruct(x)
        loss = masked_mse(pred, target, mask)
        return LossOutput(loss, {"loss": float(loss.detach())})
