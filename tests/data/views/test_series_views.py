"""Series views: per-channel scaling and noise relative to each channel's spread, reproducible under a seed."""

from __future__ import annotations

import pytest
import torch

from biolatent.data.samples import DataInfo
from biolatent.data.views import build_views, view_families
from biolatent.data.views.series import SeriesViews


def test_scaling_and_jitter_follow_their_parameters():
    x = torch.randn(64, 2, 200) * torch.tensor([1.0, 10.0]).view(1, 2, 1)
    only_scale = SeriesViews(noise_scale=0.0, scale_sigma=0.2)
    out = only_scale(x, torch.Generator().manual_seed(0))
    factors = out / x  # one factor per series and channel
    assert torch.allclose(factors, factors[:, :, :1].expand_as(factors), atol=1e-4)
    assert 0.15 < float(factors[:, :, 0].std()) < 0.25
    only_noise = SeriesViews(noise_scale=0.1, scale_sigma=0.0)
    residual = only_noise(x, torch.Generator().manual_seed(0)) - x
    ratio = residual.std(dim=2) / x.std(dim=2)  # the noise follows each channel's own spread
    assert torch.allclose(ratio, torch.full_like(ratio, 0.1), rtol=0.2)
    a = SeriesViews()(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, SeriesViews()(x, torch.Generator().manual_seed(3)))


def test_built_from_the_data_and_families_switch_off():
    info = DataInfo("series", channels=3, max_length=16)
    views = build_views(info)
    assert isinstance(views, SeriesViews) and views.sample_params(2)["noise"].shape == (2, 3, 16)
    x = torch.randn(4, 3, 16)
    off = build_views(info, **view_families(info)["jitter"], **view_families(info)["scaling"])
    torch.testing.assert_close(off(x), x)
    with pytest.raises(ValueError, match=">= 0"):
        SeriesViews(noise_scale=-1.0)
