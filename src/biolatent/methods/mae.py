"""Masked autoencoder (He, Chen, Xie, Li, Dollár & Girshick 2022, CVPR, "Masked autoencoders are scalable
vision learners").

Per sample, a random ``mask_ratio`` of the patches is removed (argsort of uniform noise); the ViT encoder
sees only the kept patches; a light transformer decoder gets the encoded tokens plus a shared mask token at
every removed position (fixed sin-cos positions) and predicts the pixels of every patch. The loss is the mean
squared error on the removed patches only (per-patch normalised targets with ``norm_pix_loss``).
``views`` are used only with ``use_views=True`` (the paper uses nothing stronger than crop and flip).
``embed`` = the encoder on the full image.

Volumes and cines use the 3D ViT (a cine's frames are the channels of a patch: a space-time tube). Anatomy-aware
masking (``mask_strategy="anatomy"``): most of a brain or body volume is background, and a random mask spends
most of its budget on air. A patch is anatomy when at least ``anatomy_fraction`` of its voxels are foreground
(the batch's ``mask`` field from ``data.mask_column``, else voxels brighter than ``foreground_threshold``; for a
cine the mean over frames). The removed patches are drawn among the anatomy patches first (uniformly), background
patches are removed only when a sample has fewer anatomy patches than the mask budget, and the loss is the error
on the removed anatomy patches. A sample without any anatomy patch is a data error (checked before training).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.models.vit import sincos_position_embedding, transformer_blocks
from biolatent.types import LossOutput


def random_masking(
    batch_size: int, num_patches: int, mask_ratio: float, device: torch.device | None = None,
    priority: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (keep_index (B, n_keep), restore_index (B, N), mask (B, N) float, 1 = removed).

    ``priority`` (B, N) bool: these patches are removed before any other (uniformly among themselves).
    """
    n_keep = max(1, int(num_patches * (1.0 - mask_ratio)))
    noise = torch.rand(batch_size, num_patches, device=device)
    if priority is not None:
        noise = noise + priority.to(noise.dtype)  # higher noise is removed first
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
    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume", "cine")

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
        mask_strategy: Literal["random", "anatomy"] = "random",
        foreground_threshold: float = 0.05,
        anatomy_fraction: float = 0.25,
    ) -> None:
        super().__init__(encoder, views=views)
        if mask_strategy not in ("random", "anatomy"):
            raise ConfigError(f"method.mask_strategy must be 'random' or 'anatomy', got {mask_strategy!r}")
        if not 0.0 < anatomy_fraction <= 1.0:
            raise ConfigError(f"method.anatomy_fraction must be in (0, 1], got {anatomy_fraction}")
        self.mask_strategy, self.foreground_threshold = mask_strategy, foreground_threshold
        self.anatomy_fraction = anatomy_fraction
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

    def anatomy_patches(self, x: torch.Tensor, foreground: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) bool: patches with at least ``anatomy_fraction`` foreground voxels (module docstring)."""
        if foreground is None:
            foreground = x.float().mean(dim=1, keepdim=True) > self.foreground_threshold
        pool = F.avg_pool2d if self.encoder.spatial_dims == 2 else F.avg_pool3d
        size = int(self.encoder.patch_size)
        fraction = pool(foreground.float().reshape(x.shape[0], 1, *x.shape[2:]), size, size).flatten(1)
        return fraction >= self.anatomy_fraction

    def check_samples(self, samples: Any) -> None:
        if self.mask_strategy != "anatomy":
            return
        masks = samples.fields.get("mask")
        for start in range(0, len(samples), 256):
            part = samples.x[start : start + 256]
            given = None if masks is None else masks[start : start + 256]
            empty = ~self.anatomy_patches(part, given).any(dim=1)
            if bool(empty.any()):
                sid = samples.ids[start + int(torch.nonzero(empty)[0])]
                source = "its anatomy mask" if masks is not None else (
                    f"no voxel above method.foreground_threshold={self.foreground_threshold:g}")
                raise DataError(f"anatomy-aware masking: sample {sid!r} has an empty anatomy mask ({source} covers "
                                f"no patch to {self.anatomy_fraction:g}); lower the threshold or fix the mask")

    def reconstruct(
        self, x: torch.Tensor, anatomy: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (predicted patches (B, N, P), target patches (B, N, P), mask (B, N), 1 = removed).

        ``anatomy`` (B, N) bool: remove these patches first (anatomy-aware masking).
        """
        keep, restore, mask = random_masking(x.shape[0], self.num_patches, self.mask_ratio, x.device, anatomy)
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
        given = batch.get("mask")
        if self.use_views and self.views is not None and self.training:
            x = self.views(x)
            given = None  # the views moved the anatomy: find it again in the augmented input
        anatomy = None
        if self.mask_strategy == "anatomy":
            anatomy = self.anatomy_patches(x, given)
        pred, target, mask = self.reconstruct(x, anatomy)
        weight = mask if anatomy is None else mask * anatomy.to(mask.dtype)
        # a sample whose removed patches hold no anatomy (cannot pass check_samples) falls back to all removed
        weight = torch.where(weight.sum(dim=1, keepdim=True) > 0, weight, mask)
        loss = masked_mse(pred, target, weight)
        return LossOutput(loss, {"loss": float(loss.detach())})
