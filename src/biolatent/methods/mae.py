"""Masked autoencoder (He, Chen, Xie, Li, Dollár & Girshick 2022, CVPR, "Masked autoencoders are scalable
vision learners").

Per sample, a random ``mask_ratio`` of the patches is removed (argsort of uniform noise); the ViT encoder
sees only the kept patches; a light transformer decoder gets the encoded tokens plus a shared mask token at
every removed position (fixed sin-cos positions) and predicts the pixels of every patch. The loss is the mean
squared error on the removed patches only (per-patch normalised targets with ``norm_pix_loss``).
``views`` are used only with ``use_views=True`` (the paper uses nothing stronger than crop and flip).
``embed`` = the encoder on the full image.

Spatial-transcriptomics tiles (modality ``spatial``) are 2D images here. Volumes and cines use the 3D ViT (a
cine's frames are the channels of a patch: a space-time tube). Anatomy-aware
masking (``mask_strategy="anatomy"``): most of a brain or body volume is background, and a random mask spends
most of its budget on air. A patch is anatomy when at least ``anatomy_fraction`` of its voxels are foreground
(the batch's ``mask`` field from ``data.mask_column``, else voxels brighter than ``foreground_threshold``; for a
cine the mean over frames). The removed patches are drawn among the anatomy patches first (uniformly), background
patches are removed only when a sample has fewer anatomy patches than the mask budget, and the loss is the error
on the removed anatomy patches. A sample without any anatomy patch is a data error (checked before training).

Block-wise masking (``mask_strategy="block"``, for tiles of tissue where a neighbouring patch gives the answer
away): BEiT's block-wise masking (Bao, Dong, Piao & Wei 2022, ICLR, "BEiT: BERT pre-training of image
transformers", Algorithm 1) removes rectangles of patches until the budget is reached: each block has an area
drawn uniformly between ``block_min_patches`` and the patches still to remove and an aspect ratio in [0.3, 1/0.3]
(a cuboid with log-uniform side ratios in 3D), at a uniform position. Unlike BEiT, the ratio is exact: the blocks
are drawn until they cover at least the budget and the last block is trimmed in raster order (a prefix of a
rectangle stays connected), so every sample removes the same number of patches as random masking.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.models.vit import sincos_position_embedding, transformer_blocks
from biolatent.types import LossOutput

BEIT_MIN_ASPECT = 0.3  # BEiT's range of block aspect ratios: [0.3, 1 / 0.3]


def kept_count(num_patches: int, mask_ratio: float) -> int:
    """Patches every sample keeps (at least one)."""
    return max(1, int(num_patches * (1.0 - mask_ratio)))


def random_masking(
    batch_size: int, num_patches: int, mask_ratio: float, device: torch.device | None = None,
    priority: torch.Tensor | None = None, scores: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (keep_index (B, n_keep), restore_index (B, N), mask (B, N) float, 1 = removed).

    ``priority`` (B, N) bool: these patches are removed before any other (uniformly among themselves).
    ``scores`` (B, N): the removal order (highest first) instead of uniform noise, e.g. ``block_scores``.
    """
    n_keep = kept_count(num_patches, mask_ratio)
    noise = torch.rand(batch_size, num_patches, device=device) if scores is None else scores.to(device)
    if priority is not None:
        noise = noise + priority.to(noise.dtype)  # higher noise is removed first
    shuffle = torch.argsort(noise, dim=1)
    restore = torch.argsort(shuffle, dim=1)
    mask = torch.ones(batch_size, num_patches, device=device)
    mask[:, :n_keep] = 0.0
    return shuffle[:, :n_keep], restore, torch.gather(mask, 1, restore)


def block_scores(
    batch_size: int, grid_size: int, spatial_dims: int, n_mask: int, min_patches: int = 4
) -> torch.Tensor:
    """Removal scores (B, grid_size**spatial_dims) of BEiT-style block-wise masking (module docstring).

    The top ``n_mask`` scores of a row are the masked patches: patches of the k-th block score above those of
    any later block (earlier in the block's raster order higher), patches of no block score in [0, 1) (random).
    The random numbers come from torch's generator, so masks follow the trainer's seeding.
    """
    n = grid_size**spatial_dims
    attempts = 4 * n  # blocks drawn per sample at most; a block adds >= 1 new patch in practice
    draws = torch.rand(batch_size, attempts, 1 + 2 * spatial_dims, dtype=torch.float64).numpy()
    scores = torch.rand(batch_size, n, dtype=torch.float64).numpy().reshape(batch_size, *[grid_size] * spatial_dims)
    for b in range(batch_size):
        _cover_with_blocks(scores[b], draws[b], n_mask, min_patches)
    return torch.from_numpy(scores.reshape(batch_size, n))


def _cover_with_blocks(scores: np.ndarray, draws: np.ndarray, n_mask: int, min_patches: int) -> None:
    """Write block scores into one sample's grid ``scores`` until the blocks cover ``n_mask`` patches."""
    dims, grid = scores.ndim, scores.shape[0]
    covered = np.zeros(scores.shape, dtype=bool)
    count, spread = 0, math.log(1.0 / BEIT_MIN_ASPECT)
    for k, draw in enumerate(draws):
        if count >= n_mask:
            return
        remaining = n_mask - count
        low = min(min_patches, remaining)
        area = low + draw[0] * (remaining - low)
        log_sides = (draw[1 : 1 + dims] - 0.5) * spread
        sides = np.clip(np.rint(area ** (1.0 / dims) * np.exp(log_sides - log_sides.mean())), 1, grid).astype(int)
        starts = np.floor(draw[1 + dims :] * (grid - sides + 1)).astype(int)
        region = tuple(slice(int(s), int(s + side)) for s, side in zip(starts, sides, strict=True))
        raster = np.arange(int(np.prod(sides)), dtype=np.float64).reshape(sides) / np.prod(sides)
        new = ~covered[region]
        scores[region][new] = (len(draws) - k) + (1.0 - raster[new])
        covered[region] = True
        count += int(new.sum())


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over removed patches of the per-patch mean squared error."""
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1.0)


class MAE(SSLMethod):
    """ViT encoder + transformer decoder reconstructing the pixels of removed patches."""

    name: ClassVar[str] = "mae"
    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume", "cine", "spatial")

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
        mask_strategy: Literal["random", "anatomy", "block"] = "random",
        foreground_threshold: float = 0.05,
        anatomy_fraction: float = 0.25,
        block_min_patches: int = 4,
    ) -> None:
        super().__init__(encoder, views=views)
        if mask_strategy not in ("random", "anatomy", "block"):
            raise ConfigError(f"method.mask_strategy must be 'random', 'anatomy' or 'block', got {mask_strategy!r}")
        if block_min_patches < 1:
            raise ConfigError(f"method.block_min_patches must be >= 1, got {block_min_patches}")
        self.block_min_patches = block_min_patches
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
        scores = None
        if self.mask_strategy == "block":
            n_mask = self.num_patches - kept_count(self.num_patches, self.mask_ratio)
            scores = block_scores(x.shape[0], int(self.encoder.grid_size), int(self.encoder.spatial_dims), n_mask,
                                  self.block_min_patches)
        keep, restore, mask = random_masking(x.shape[0], self.num_patches, self.mask_ratio, x.device, anatomy, scores)
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
