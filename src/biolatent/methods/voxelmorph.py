"""VoxelMorph: a U-Net predicts the deformation from the moving and fixed images, trained on image similarity
alone (Balakrishnan et al. 2019, "VoxelMorph: a learning framework for deformable medical image registration",
IEEE TMI 38(8)); diffeomorphic variant: the U-Net predicts a stationary velocity field, integrated by scaling and
squaring (Dalca et al. 2019, "Unsupervised learning of probabilistic diffeomorphic registration for images and
surfaces", MedIA 57). Loss: similarity (NCC / MSE / MI) + ``smoothness`` x the gradient of the displacement
(+ ``dice_weight`` x soft Dice of warped label maps, when the batches carry them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from biolatent.methods.registration_base import RegistrationMethod, Similarity
from biolatent.models.registration_unet import field_head
from biolatent.models.spatial_transform import integrate_velocity, warp
from biolatent.types import LossOutput


class VoxelMorph(RegistrationMethod):
    """``integration_steps`` = 0: the plain VoxelMorph displacement; > 0 (default 7): the diffeomorphic one."""

    name = "voxelmorph"

    def __init__(self, *, spatial_dims: int = 3, widths: Sequence[int] = (16, 32, 32, 32),
                 similarity: Similarity = "ncc", ncc_window: int = 9, mi_bins: int = 32, mi_patch: int = 8,
                 smoothness: float = 1.0, dice_weight: float = 0.0, integration_steps: int = 7) -> None:
        super().__init__(spatial_dims=spatial_dims, widths=widths, similarity=similarity, ncc_window=ncc_window,
                         mi_bins=mi_bins, mi_patch=mi_patch, smoothness=smoothness, dice_weight=dice_weight,
                         integration_steps=integration_steps)
        self.head = field_head(self.spatial_dims, self.net.out_channels[-1])

    def register(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        velocity = self.head(self.net(torch.cat([moving, fixed], dim=1))[-1])
        return integrate_velocity(velocity, self.integration_steps)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        moving, fixed, moving_labels, fixed_labels = self.pairs(batch)
        displacement = self.register(moving, fixed)
        similarity = self.similarity_loss(warp(moving, displacement), fixed)
        smooth = self.regularity(displacement)
        loss = similarity + self.smoothness * smooth
        metrics = {"similarity": float(similarity.detach()), "smoothness": float(smooth.detach())}
        dice = self.dice_loss(displacement, moving_labels, fixed_labels)
        if dice is not None:
            loss = loss + self.dice_weight * dice
            metrics["dice_loss"] = float(dice.detach())
        return LossOutput(loss, metrics)
