"""The series encoders: TS2Vec's dilated CNN (same-length outputs, receptive field, timestamp masking) and the
patch transformer (patch outputs repeated over their time steps)."""

from __future__ import annotations

import pytest
import torch

from biolatent.models.series_cnn import DilatedConvEncoder
from biolatent.models.series_transformer import SeriesTransformerEncoder


@pytest.mark.parametrize("length", [1, 7, 16])
def test_cnn_dense_output_keeps_the_length(length):
    encoder = DilatedConvEncoder(3, hidden_dim=8, out_dim=5, depth=3, kernel_size=4).eval()
    x = torch.randn(2, 3, length)
    assert encoder.forward_dense(x).shape == (2, length, 5)
    torch.testing.assert_close(encoder(x), encoder.forward_dense(x).amax(dim=1))


def test_cnn_receptive_field_and_timestamp_mask():
    # depth 1: block dilations 1 and 2, two kernel-3 convolutions each: reach 2 * 1 + 2 * 2 = 6 steps either side
    encoder = DilatedConvEncoder(1, hidden_dim=4, out_dim=4, depth=1).eval()
    x = torch.randn(1, 1, 20)
    y = x.clone()
    y[0, 0, 0] += 10.0
    diff = (encoder.forward_dense(x) - encoder.forward_dense(y)).abs().sum(dim=2)[0]
    assert (diff[7:] == 0).all() and diff[6] > 0
    keep_none = torch.zeros(1, 20, dtype=torch.bool)
    torch.testing.assert_close(encoder.forward_dense(x, keep_none), encoder.forward_dense(y, keep_none))


def test_transformer_repeats_each_patch_over_its_steps():
    encoder = SeriesTransformerEncoder(2, 30, patch_size=4, dim=8, depth=1, heads=2).eval()
    x = torch.randn(3, 2, 30)
    dense = encoder.forward_dense(x)
    tokens = encoder.forward_tokens(x)
    assert dense.shape == (3, 30, 8) and tokens.shape == (3, 8, 8)
    torch.testing.assert_close(dense[:, 4:8], tokens[:, 1:2].expand(3, 4, 8))
    torch.testing.assert_close(encoder(x), tokens.mean(dim=1))
    assert encoder(x[:, :, :13]).shape == (3, 8)  # shorter crops are fine
    with pytest.raises(ValueError, match="max_length"):
        encoder(torch.randn(1, 2, 40))
