"""An encoder of 3D+time cines: (B, T, S, S, S) one-channel frames -> (B, out_dim).

Two ways of fusing time (Karpathy et al. 2014, CVPR, "Large-scale video classification with convolutional neural
networks"):

* ``fusion="late"`` (default): one 3D ResNet (``biolatent.models.resnet``) shared by every frame, then a small
  pre-norm transformer over the T frame vectors with fixed sin-cos time positions (as in Neimark et al. 2021,
  ICCVW, "Video transformer network"), layer-normed and averaged over time. The positions make the encoder
  sensitive to frame order, which the temporal-order pretext needs.
* ``fusion="early"``: the frames are the input channels of a single 3D ResNet (T times cheaper; time is mixed
  by the first convolution only).

``forward_frames`` returns the per-frame vectors (B, T, D) of the late-fusion encoder.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from biolatent.errors import ConfigError, DataError
from biolatent.models.resnet import ResNetEncoder
from biolatent.models.vit import sincos_position_embedding, transformer_blocks


class CineEncoder(nn.Module):
    """(B, T, S, S, S) cines -> (B, widths[-1])."""

    def __init__(
        self,
        frames: int,
        *,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        stem_stride: int = 1,
        fusion: Literal["late", "early"] = "late",
        temporal_layers: int = 1,
        temporal_heads: int = 4,
    ) -> None:
        super().__init__()
        if frames < 2:
            raise ConfigError(f"a cine encoder needs at least 2 frames, got {frames}")
        if fusion not in ("late", "early"):
            raise ConfigError(f"model.fusion must be 'late' or 'early', got {fusion!r}")
        self.frames, self.fusion = int(frames), fusion
        self.out_dim = int(widths[-1])
        if fusion == "early":
            self.backbone = ResNetEncoder(self.frames, 3, widths=widths, blocks=blocks, stem_stride=stem_stride)
            return
        if temporal_layers < 1:
            raise ConfigError(f"model.temporal_layers must be >= 1, got {temporal_layers}")
        if self.out_dim % temporal_heads != 0:
            raise ConfigError(f"model.widths[-1] {self.out_dim} must be a multiple of model.temporal_heads "
                              f"{temporal_heads}")
        self.backbone = ResNetEncoder(1, 3, widths=widths, blocks=blocks, stem_stride=stem_stride)
        self.register_buffer("time_embed", sincos_position_embedding(self.frames, self.out_dim, 1)[None])
        self.temporal = transformer_blocks(self.out_dim, temporal_layers, temporal_heads, 2.0)
        self.norm = nn.LayerNorm(self.out_dim)

    @classmethod
    def from_data(cls, info: Any, **hparams: Any) -> CineEncoder:
        if not info.frames:
            raise DataError("encoder 'cine' needs the number of frames of the data (data.modality: cine)")
        if info.channels not in (None, 1):
            raise DataError(f"encoder 'cine' takes one-channel frames, the data has {info.channels} channels")
        return cls(int(info.frames), **hparams)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.frames:
            raise DataError(f"the cine encoder expects (B, {self.frames}, S, S, S) cines, got {tuple(x.shape)}")

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Late fusion: (B, T, S, S, S) -> (B, T, D) frame vectors after the temporal transformer."""
        self._check(x)
        if self.fusion != "late":
            raise ConfigError("forward_frames needs model.fusion: late")
        b, t = x.shape[:2]
        tokens = self.backbone(x.reshape(b * t, 1, *x.shape[2:])).reshape(b, t, -1) + self.time_embed
        for block in self.temporal:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fusion == "early":
            self._check(x)
            return self.backbone(x)
        return self.forward_frames(x).mean(dim=1)
