"""TS2Vec (Yue, Wang, Duan, Yang, Huang, Tong & Xu 2022, AAAI, "TS2Vec: Towards Universal Representation of
Time Series"; the authors' ``ts2vec.py`` and ``models/losses.py``).

Two random overlapping crops of each series (one shared crop length and overlap per batch, a random offset per
series, as the authors' code), each through the encoder with random timestamp masking (each time step kept with
probability ``1 - mask_probability``, on the encoder's latent input); the dense outputs of the overlap are
contrasted hierarchically: at every level of max-pooling by 2 along time, an instance-wise loss (the same time
step of the other views in the batch are the negatives) and, from level ``temporal_unit`` on, a temporal loss (the
other time steps of the same series are the negatives), weighted ``alpha`` and ``1 - alpha``, averaged over the
levels. ``embed`` is the encoder's max-pooled representation of the whole series. ``views`` are not used.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.types import LossOutput


def _contrast(z: torch.Tensor, n: int) -> torch.Tensor:
    """z (G, 2n, D): for each group the mean over anchors of -log softmax of the positive (row i <-> i + n) among
    all other rows (the anchor itself excluded)."""
    sim = torch.matmul(z, z.transpose(1, 2))  # (G, 2n, 2n)
    logits = torch.tril(sim, diagonal=-1)[:, :, :-1] + torch.triu(sim, diagonal=1)[:, :, 1:]
    logits = -F.log_softmax(logits, dim=-1)
    i = torch.arange(n, device=z.device)
    return (logits[:, i, n + i - 1].mean() + logits[:, n + i, i].mean()) / 2


def instance_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """(B, T, D) views -> at each time step, each series' other view against every other series' views."""
    if z1.shape[0] == 1:
        return z1.new_tensor(0.0)
    return _contrast(torch.cat([z1, z2], dim=0).transpose(0, 1), z1.shape[0])


def temporal_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """(B, T, D) views -> for each series, each time step's other view against its other time steps."""
    if z1.shape[1] == 1:
        return z1.new_tensor(0.0)
    return _contrast(torch.cat([z1, z2], dim=1), z1.shape[1])


def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5,
                                  temporal_unit: int = 0) -> torch.Tensor:
    """TS2Vec's loss over (B, T, D) dense representations of the two crops' overlap (module docstring)."""
    loss, levels = z1.new_tensor(0.0), 0
    while z1.shape[1] > 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2)
        if levels >= temporal_unit and alpha != 1:
            loss = loss + (1 - alpha) * temporal_contrastive_loss(z1, z2)
        levels += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if z1.shape[1] == 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2)
        levels += 1
    return loss / levels


def take_per_row(x: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """(B, C, T) -> (B, C, length): series b from time ``starts[b]`` on."""
    index = starts.view(-1, 1) + torch.arange(length, device=x.device)  # (B, length)
    return torch.gather(x, 2, index.unsqueeze(1).expand(-1, x.shape[1], -1))


def _randint(low: int, high: int, size: tuple[int, ...] = ()) -> torch.Tensor:
    """Uniform integers in [low, high) from torch's RNG (reseeded by the trainer every step)."""
    return torch.randint(low, high, size) if size else torch.randint(low, high, (1,))[0]


class TS2Vec(SSLMethod):
    """Hierarchical contrastive learning over overlapping crops (module docstring)."""

    name: ClassVar[str] = "ts2vec"
    modalities: ClassVar[tuple[str, ...]] = ("series",)
    uses_views: ClassVar[bool] = False

    def __init__(self, encoder: nn.Module, *, views: nn.Module | None = None, alpha: float = 0.5,
                 temporal_unit: int = 0, mask_probability: float = 0.5) -> None:
        super().__init__(encoder, views=views)
        if not hasattr(encoder, "forward_dense"):
            raise ConfigError("method ts2vec needs a series encoder with per-time-step outputs (model.name: "
                              "series_cnn or series_transformer)")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"method.alpha must be in [0, 1], got {alpha}")
        if not 0.0 <= mask_probability < 1.0:
            raise ConfigError(f"method.mask_probability must be in [0, 1), got {mask_probability}")
        if temporal_unit < 0:
            raise ConfigError(f"method.temporal_unit must be >= 0, got {temporal_unit}")
        self.alpha, self.temporal_unit, self.mask_probability = alpha, temporal_unit, mask_probability

    def check_data(self, info: Any) -> None:
        super().check_data(info)
        if info.channels is None or info.max_length is None:
            raise DataError("method ts2vec needs one sample per series (a .ts, .npy/.npz or long table: "
                            "data.layout samples), not the time points of one series")
        if info.max_length < 2 ** (self.temporal_unit + 1):
            raise DataError(f"method ts2vec: series of {info.max_length} steps are shorter than the smallest crop "
                            f"2^(temporal_unit + 1) = {2 ** (self.temporal_unit + 1)}")

    def _mask(self, batch: int, length: int, device: torch.device) -> torch.Tensor | None:
        if self.mask_probability == 0:
            return None
        return torch.rand(batch, length).to(device) >= self.mask_probability

    def crops(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The two overlapping crops (B, C, *) and the overlap length; view 1's overlap is its end, view 2's its
        start."""
        b, t = x.shape[0], x.shape[2]
        crop_l = int(_randint(2 ** (self.temporal_unit + 1), t + 1))
        crop_left = int(_randint(0, t - crop_l + 1))
        crop_right = crop_left + crop_l
        crop_eleft = int(_randint(0, crop_left + 1))
        crop_eright = int(_randint(crop_right, t + 1))
        offset = _randint(-crop_eleft, t - crop_eright + 1, (b,)).to(x.device)
        view1 = take_per_row(x, offset + crop_eleft, crop_right - crop_eleft)
        view2 = take_per_row(x, offset + crop_left, crop_eright - crop_left)
        return view1, view2, crop_l

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"]
        view1, view2, overlap = self.crops(x)
        out1 = self.encoder.forward_dense(view1, self._mask(x.shape[0], view1.shape[2], x.device))[:, -overlap:]
        out2 = self.encoder.forward_dense(view2, self._mask(x.shape[0], view2.shape[2], x.device))[:, :overlap]
        loss = hierarchical_contrastive_loss(out1, out2, self.alpha, self.temporal_unit)
        return LossOutput(loss, {"loss": float(loss.detach()), "crop_length": float(overlap)})
