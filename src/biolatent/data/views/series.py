"""Views of time series (B, C, T): jitter and scaling (Um et al. 2017, ICMI, "Data augmentation of wearable sensor
data for Parkinson's disease monitoring using convolutional neural networks"; the weak augmentation of TS-TCC,
Eldele et al. 2021, IJCAI). Each channel of each series is multiplied by a factor drawn from N(1, scale_sigma^2)
and gets Gaussian noise of ``noise_scale`` times the channel's own standard deviation. Used by the supervised
baseline of ``evaluate`` (ts2vec and masked_series make their own crops and masks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from biolatent.data.views.base import Params, ViewModule, as_device, randn


class SeriesViews(ViewModule):
    def __init__(self, *, noise_scale: float = 0.05, scale_sigma: float = 0.1, channels: int | None = None,
                 max_length: int | None = None) -> None:
        super().__init__()
        if noise_scale < 0 or scale_sigma < 0:
            raise ValueError(f"noise_scale and scale_sigma must be >= 0, got {noise_scale}, {scale_sigma}")
        self.noise_scale, self.scale_sigma = float(noise_scale), float(scale_sigma)
        self.channels, self.max_length = channels, max_length

    def sample_params(self, n: int, device: torch.device | str | None = None,
                      generator: torch.Generator | None = None, *, sample_shape: Sequence[int] | None = None) -> Params:
        channels, length = (sample_shape if sample_shape is not None
                            else (int(self.channels or 1), int(self.max_length or 1)))
        dev = as_device(device)
        return {"scale": 1.0 + self.scale_sigma * randn((n, int(channels), 1), dev, generator),
                "noise": randn((n, int(channels), int(length)), dev, generator)}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        std = x.std(dim=2, keepdim=True) if x.shape[2] > 1 else torch.ones_like(x[:, :, :1])
        return x * params["scale"].to(x) + self.noise_scale * std * params["noise"].to(x)
