"""A MICDIR-style multi-scale, inverse-consistent registration network (Chatterjee et al. 2022, "MICDIR:
Multi-scale inverse-consistent deformable image registration using UNetMSS with self-constructing graph latent",
arXiv:2203.04317; multi-scale supervision after Dou et al. 2017, MedIA 41; inverse consistency after Christensen
& Johnson 2001, IEEE TMI 20(7)).

The U-Net's last ``pyramid_levels`` decoder levels each predict a residual velocity; level ``k``'s velocity is the
previous level's, upsampled (vectors doubled), plus its residual, so the field is refined coarse to fine. Every
level's field (scaling and squaring) warps the images downsampled to its grid and adds a similarity term (weight
halved per coarser level). The network also registers fixed to moving, and ``inverse_consistency`` x the mean
squared residual of both compositions (forward o backward, backward o forward; zero for exact inverses) joins
the loss. The self-constructing graph latent of the paper is left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.methods.registration_base import RegistrationMethod, Similarity
from biolatent.models.registration_unet import field_head
from biolatent.models.spatial_transform import compose, integrate_velocity, resize_field, warp
from biolatent.types import LossOutput


def downsample(image: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Area-averaged ``image`` on a coarser grid (the pyramid's images)."""
    if tuple(image.shape[2:]) == tuple(shape):
        return image
    return F.adaptive_avg_pool3d(image, shape) if len(shape) == 3 else F.adaptive_avg_pool2d(image, shape)


class MICDIR(RegistrationMethod):
    """Pyramid of ``pyramid_levels`` fields (<= the U-Net's levels); loss in the module docstring."""

    name = "micdir"

    def __init__(self, *, spatial_dims: int = 3, widths: Sequence[int] = (16, 32, 32, 32),
                 similarity: Similarity = "ncc", ncc_window: int = 9, mi_bins: int = 32, mi_patch: int = 8,
                 smoothness: float = 1.0, dice_weight: float = 0.0, integration_steps: int = 7,
                 pyramid_levels: int = 3, inverse_consistency: float = 0.1) -> None:
        super().__init__(spatial_dims=spatial_dims, widths=widths, similarity=similarity, ncc_window=ncc_window,
                         mi_bins=mi_bins, mi_patch=mi_patch, smoothness=smoothness, dice_weight=dice_weight,
                         integration_steps=integration_steps)
        if not 1 <= pyramid_levels <= len(widths):
            raise ValueError(f"pyramid_levels must lie in 1..{len(widths)} (the U-Net's levels), got {pyramid_levels}")
        if inverse_consistency < 0:
            raise ValueError("inverse_consistency must be >= 0")
        self.pyramid_levels = pyramid_levels
        self.inverse_consistency = inverse_consistency
        channels = self.net.out_channels[-pyramid_levels:]
        self.heads = nn.ModuleList([field_head(spatial_dims, c) for c in channels])

    def pyramid(self, moving: torch.Tensor, fixed: torch.Tensor) -> list[torch.Tensor]:
        """Displacements coarse to fine (the last on the input's grid)."""
        features = self.net(torch.cat([moving, fixed], dim=1))[-self.pyramid_levels:]
        velocity: torch.Tensor | None = None
        fields = []
        for head, feature in zip(self.heads, features, strict=True):
            residual = head(feature)
            velocity = residual if velocity is None else resize_field(velocity, tuple(feature.shape[2:])) + residual
            fields.append(integrate_velocity(velocity, self.integration_steps))
        return fields

    def register(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return self.pyramid(moving, fixed)[-1]

    def _direction(self, moving: torch.Tensor, fixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                              torch.Tensor]:
        """(multi-scale similarity, smoothness, finest displacement) of one direction."""
        fields = self.pyramid(moving, fixed)
        similarity = smooth = moving.new_zeros(())
        total_weight = 0.0
        for level, displacement in enumerate(fields):
            weight = 0.5 ** (len(fields) - 1 - level)
            shape = tuple(displacement.shape[2:])
            warped = warp(downsample(moving, shape), displacement)
            similarity = similarity + weight * self.similarity_loss(warped, downsample(fixed, shape))
            smooth = smooth + weight * self.regularity(displacement)
            total_weight += weight
        return similarity / total_weight, smooth / total_weight, fields[-1]

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        moving, fixed, moving_labels, fixed_labels = self.pairs(batch)
        sim_f, smooth_f, forward = self._direction(moving, fixed)
        sim_b, smooth_b, backward = self._direction(fixed, moving)
        similarity, smooth = (sim_f + sim_b) / 2, (smooth_f + smooth_b) / 2
        inverse = (compose(forward, backward).pow(2).mean() + compose(backward, forward).pow(2).mean()) / 2
        loss = similarity + self.smoothness * smooth + self.inverse_consistency * inverse
        metrics = {"similarity": float(similarity.detach()), "smoothness": float(smooth.detach()),
                   "inverse_consistency": float(inverse.detach())}
        dice = self.dice_loss(forward, moving_labels, fixed_labels)
        if dice is not None:
            loss = loss + self.dice_weight * dice
            metrics["dice_loss"] = float(dice.detach())
        return LossOutput(loss, metrics)
