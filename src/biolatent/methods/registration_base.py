"""What the learned registration methods share: training pairs from a batch, the similarity loss, the U-Net.

A registration method is an ``nn.Module`` with ``forward(batch) -> LossOutput`` (so that ``train.fit`` trains it as
any self-supervised method) and ``register(moving, fixed) -> displacement`` (B, D, *spatial) in voxels, which
``warp(moving, displacement)`` aligns to ``fixed``. ``batch["x"]`` (B, 1, *spatial) are volumes of a cohort in
[0, 1]; the training pairs are each volume to the atlas (``set_atlas``) or, without an atlas, each volume to
the next one of the batch (the loader shuffles every epoch: random pairs within the cohort). ``batch["labels"]``
(B, 1, *spatial) integer label maps, when present, give an optional Dice loss (``dice_weight`` > 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import nn

from biolatent.methods.registration_losses import (
    gradient_loss,
    mse_loss,
    mutual_information_loss,
    ncc_loss,
    one_hot,
    soft_dice_loss,
)
from biolatent.models.registration_unet import RegistrationUNet
from biolatent.models.spatial_transform import warp

Similarity = Literal["ncc", "mse", "mi", "local_mi"]


class RegistrationMethod(nn.Module):
    """Base class: subclasses set ``name`` and implement ``register`` and ``forward``."""

    name: ClassVar[str] = "registration"

    def __init__(self, *, spatial_dims: int = 3, widths: Sequence[int] = (16, 32, 32, 32),
                 similarity: Similarity = "ncc", ncc_window: int = 9, mi_bins: int = 32, mi_patch: int = 8,
                 smoothness: float = 1.0, dice_weight: float = 0.0, integration_steps: int = 7) -> None:
        super().__init__()
        if similarity not in ("ncc", "mse", "mi", "local_mi"):
            raise ValueError(f"similarity must be ncc, mse, mi or local_mi, got {similarity!r}")
        if integration_steps < 0 or smoothness < 0 or dice_weight < 0:
            raise ValueError("integration_steps, smoothness and dice_weight must be >= 0")
        self.spatial_dims = spatial_dims
        self.similarity = similarity
        self.ncc_window = ncc_window
        self.mi_bins = mi_bins
        self.mi_patch = mi_patch
        self.smoothness = smoothness
        self.dice_weight = dice_weight
        self.integration_steps = integration_steps
        self.net = RegistrationUNet(2, spatial_dims=spatial_dims, widths=tuple(widths))
        self.register_buffer("atlas", None, persistent=False)
        self.register_buffer("atlas_labels", None, persistent=False)

    @property
    def divisor(self) -> int:
        """The image sides must be multiples of this."""
        return self.net.divisor

    def set_atlas(self, image: torch.Tensor | None, labels: torch.Tensor | None = None) -> None:
        """Train subject-to-atlas: ``image`` (1, *spatial) or (1, 1, *spatial) is every pair's fixed image."""
        self.atlas = None if image is None else image.reshape(1, 1, *image.shape[-self.spatial_dims:]).float()
        self.atlas_labels = None if labels is None else labels.reshape(1, 1, *labels.shape[-self.spatial_dims:])

    def pairs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None,
                                                              torch.Tensor | None]:
        """(moving, fixed, moving labels, fixed labels) of a batch (module docstring)."""
        moving = batch["x"].float()
        labels = batch.get("labels")
        if self.atlas is not None:
            fixed = self.atlas.expand_as(moving)
            fixed_labels = None if self.atlas_labels is None else self.atlas_labels.expand(moving.shape[0], -1,
                                                                                         *moving.shape[2:])
            return moving, fixed, labels, fixed_labels if labels is not None else None
        fixed = torch.roll(moving, 1, dims=0)
        return moving, fixed, labels, None if labels is None else torch.roll(labels, 1, dims=0)

    def similarity_loss(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        if self.similarity == "ncc":
            return ncc_loss(warped, fixed, window=self.ncc_window)
        if self.similarity == "mse":
            return mse_loss(warped, fixed)
        patch = self.mi_patch if self.similarity == "local_mi" else None
        if patch is not None and any(n % patch for n in warped.shape[2:]):
            patch = None  # a grid the patch does not divide (a coarse pyramid level): global MI
        return mutual_information_loss(warped, fixed, bins=self.mi_bins, patch=patch)

    def dice_loss(self, displacement: torch.Tensor, moving_labels: torch.Tensor | None,
                  fixed_labels: torch.Tensor | None) -> torch.Tensor | None:
        if self.dice_weight == 0 or moving_labels is None or fixed_labels is None:
            return None
        n_labels = int(max(moving_labels.max(), fixed_labels.max())) + 1
        warped = warp(one_hot(moving_labels, n_labels), displacement)
        return soft_dice_loss(warped, one_hot(fixed_labels, n_labels))

    def regularity(self, displacement: torch.Tensor) -> torch.Tensor:
        return gradient_loss(displacement)

    def register(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
