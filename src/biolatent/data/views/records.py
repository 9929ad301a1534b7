"""Views of records tokens (B, 4, L): each code token is replaced by [MASK] with probability ``mask_rate``
(code dropout, as the masking of BEHRT's pre-training; [PAD], [CLS], [SEP], ages, segments and positions stay).
Used by the supervised baseline of ``evaluate`` (and any view-based method given records)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from biolatent.data.record_tokens import CLS_ID, MASK_ID, PAD_ID, SEP_ID
from biolatent.data.views.base import Params, ViewModule, as_device, check_probability, rand


class RecordsViews(ViewModule):
    def __init__(self, *, mask_rate: float = 0.1, max_length: int | None = None) -> None:
        super().__init__()
        check_probability("mask_rate", mask_rate)
        self.mask_rate, self.max_length = float(mask_rate), max_length

    def sample_params(self, n: int, device: torch.device | str | None = None,
                      generator: torch.Generator | None = None, *, sample_shape: Sequence[int] | None = None) -> Params:
        length = int(sample_shape[-1]) if sample_shape is not None else int(self.max_length or 1)
        return {"drop": rand((n, length), as_device(device), generator) < self.mask_rate}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        codes = x[:, 0]
        maskable = (codes != PAD_ID) & (codes != CLS_ID) & (codes != SEP_ID)
        out = x.clone()
        out[:, 0] = torch.where(params["drop"].to(x.device) & maskable, torch.full_like(codes, MASK_ID), codes)
        return out
