"""Masked reconstruction of time series: hide contiguous patches of time steps, predict their values (Zerveas,
Jayaraman, Patel, Bhamidipaty & Eickhoff 2021, KDD, "A Transformer-based Framework for Multivariate Time Series
Representation Learning": masked values set to 0, MSE on the masked part only; patches as PatchTST, Nie et al.
2023, ICLR).

Each series is cut into patches of ``patch_size`` steps (default: the encoder's own patch size, else 8); exactly
``max(1, round(mask_ratio * n_patches))`` patches per series are drawn at random and their values (every channel)
set to 0; a linear head maps the encoder's per-time-step output back to the C channels, and the loss is the mean
squared error over the masked time steps and channels. ``embed`` is the encoder's pooled representation of the
unmasked series. ``views`` are not used.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.types import LossOutput

DEFAULT_PATCH = 8


def patch_time_mask(batch: int, length: int, patch_size: int, ratio: float,
                    device: torch.device | None = None) -> torch.Tensor:
    """(batch, length) bool, True = masked: ``max(1, round(ratio * n_patches))`` random patches per row."""
    n_patches = math.ceil(length / patch_size)
    n_masked = min(n_patches, max(1, round(ratio * n_patches)))
    order = torch.rand(batch, n_patches).argsort(dim=1)
    patches = torch.zeros(batch, n_patches, dtype=torch.bool)
    patches.scatter_(1, order[:, :n_masked], True)
    mask = patches.repeat_interleave(patch_size, dim=1)[:, :length]
    return mask.to(device) if device is not None else mask


class MaskedSeriesModel(SSLMethod):
    """Masked-patch reconstruction of series (module docstring)."""

    name: ClassVar[str] = "masked_series"
    modalities: ClassVar[tuple[str, ...]] = ("series",)
    uses_views: ClassVar[bool] = False

    def __init__(self, encoder: nn.Module, *, views: nn.Module | None = None, mask_ratio: float = 0.4,
                 patch_size: int | None = None) -> None:
        super().__init__(encoder, views=views)
        if not (hasattr(encoder, "forward_dense") and hasattr(encoder, "in_channels")):
            raise ConfigError("method masked_series needs a series encoder with per-time-step outputs (model.name: "
                              "series_cnn or series_transformer)")
        if not 0.0 < mask_ratio < 1.0:
            raise ConfigError(f"method.mask_ratio must be in (0, 1), got {mask_ratio}")
        if patch_size is not None and patch_size < 1:
            raise ConfigError(f"method.patch_size must be >= 1, got {patch_size}")
        self.mask_ratio = mask_ratio
        self.patch_size = int(patch_size or getattr(encoder, "patch_size", DEFAULT_PATCH))
        self.head = nn.Linear(int(encoder.out_dim), int(encoder.in_channels))

    def check_data(self, info: Any) -> None:
        super().check_data(info)
        if info.channels is None or info.max_length is None:
            raise DataError("method masked_series needs one sample per series (a .ts, .npy/.npz or long table: "
                            "data.layout samples), not the time points of one series")
        if info.max_length < 2 * self.patch_size:
            raise DataError(f"method masked_series: series of {info.max_length} steps hold fewer than two patches "
                            f"of {self.patch_size}")

    def reconstruction_loss(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, prediction (B, C, T)) for series ``x`` (B, C, T) with time steps ``mask`` (B, T) hidden."""
        hidden = x * (~mask).unsqueeze(1).to(x.dtype)
        prediction = self.head(self.encoder.forward_dense(hidden)).transpose(1, 2)  # (B, C, T)
        weights = mask.unsqueeze(1).expand_as(x).to(x.dtype)
        loss = ((prediction - x) ** 2 * weights).sum() / weights.sum().clamp(min=1.0)
        return loss, prediction

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"]
        mask = patch_time_mask(x.shape[0], x.shape[2], self.patch_size, self.mask_ratio, x.device)
        loss, _ = self.reconstruction_loss(x, mask)
        return LossOutput(loss, {"loss": float(loss.detach()), "masked_fraction": float(mask.float().mean())})
