"""The cine encoder: frame order matters (late and early fusion), shapes, and bad input."""

from __future__ import annotations

import pytest
import torch

from biolatent.data.samples import DataInfo
from biolatent.errors import DataError
from biolatent.models.cine import CineEncoder
from biolatent.models.resnet import ResNetEncoder


@pytest.mark.parametrize("fusion", ["late", "early"])
def test_frame_order_changes_the_embedding(fusion: str):
    torch.manual_seed(0)
    encoder = CineEncoder(4, widths=(4, 8), blocks=(1, 1), temporal_heads=2, fusion=fusion).eval()
    x = torch.rand(2, 4, 12, 12, 12)
    with torch.no_grad():
        out = encoder(x)
        reversed_out = encoder(x.flip(1))
    assert out.shape == (2, 8)
    assert not torch.allclose(out, reversed_out, atol=1e-5)


def test_late_fusion_shares_one_3d_resnet_over_frames():
    torch.manual_seed(0)
    encoder = CineEncoder(3, widths=(4, 8), blocks=(1, 1), temporal_heads=2).eval()
    x = torch.rand(2, 3, 8, 8, 8)
    with torch.no_grad():
        frames = encoder.backbone(x.reshape(6, 1, 8, 8, 8)).reshape(2, 3, 8)
        tokens = frames + encoder.time_embed
        for block in encoder.temporal:
            tokens = block(tokens)
        expected = encoder.norm(tokens).mean(dim=1)
        assert torch.allclose(encoder(x), expected, atol=1e-6)
    assert isinstance(encoder.backbone, ResNetEncoder) and encoder.backbone.spatial_dims == 3


def test_cine_encoder_refuses_wrong_input():
    encoder = CineEncoder.from_data(DataInfo("cine", channels=1, image_size=8, spatial_dims=3, frames=4),
                                    widths=(4,), blocks=(1,), temporal_heads=2)
    with pytest.raises(DataError, match=r"expects \(B, 4, S, S, S\)"):
        encoder(torch.rand(2, 3, 8, 8, 8))
    with pytest.raises(DataError, match="number of frames"):
        CineEncoder.from_data(DataInfo("volume", channels=1, image_size=8, spatial_dims=3))


def test_strided_stem_halves_the_feature_map():
    plain = ResNetEncoder(1, 3, widths=(4, 8), blocks=(1, 1))
    strided = ResNetEncoder(1, 3, widths=(4, 8), blocks=(1, 1), stem_stride=2)
    x = torch.rand(1, 1, 16, 16, 16)
    assert plain.forward_features(x).shape[-3:] == (8, 8, 8)
    assert strided.forward_features(x).shape[-3:] == (4, 4, 4)
