"""Masked series reconstruction: exact patch masks, the hidden values never reach the encoder, the loss is the MSE
on the masked part only."""

from __future__ import annotations

import pytest
import torch

from biolatent.data.samples import DataInfo
from biolatent.errors import ConfigError, DataError
from biolatent.methods.masked_series import MaskedSeriesModel, patch_time_mask
from biolatent.models.series_cnn import DilatedConvEncoder
from biolatent.models.series_transformer import SeriesTransformerEncoder


def test_patch_mask_hides_whole_patches_in_the_asked_number():
    torch.manual_seed(0)
    mask = patch_time_mask(50, 37, 4, 0.3)  # 10 patches, the last one 1 step long
    patches = mask[:, :36].reshape(50, 9, 4)
    assert (patches.all(dim=2) | ~patches.any(dim=2)).all()  # a patch is masked whole or not at all
    n_masked = patches.all(dim=2).sum(dim=1) + mask[:, 36].long()
    assert (n_masked == 3).all()  # round(0.3 * 10)
    assert patch_time_mask(5, 8, 4, 0.01).reshape(5, 2, 4).all(dim=2).sum(dim=1).eq(1).all()  # at least one


@pytest.mark.parametrize("encoder", [SeriesTransformerEncoder(2, 24, patch_size=4, dim=8, depth=1, heads=2),
                                     DilatedConvEncoder(2, hidden_dim=8, out_dim=8, depth=2)])
def test_loss_is_the_mse_on_the_masked_part_and_hidden_values_stay_hidden(encoder):
    method = MaskedSeriesModel(encoder, mask_ratio=0.5).eval()
    assert method.patch_size == (4 if isinstance(encoder, SeriesTransformerEncoder) else 8)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 24, generator=gen)
    mask = patch_time_mask(3, 24, method.patch_size, 0.5)
    loss, prediction = method.reconstruction_loss(x, mask)
    masked_pred = prediction.detach().transpose(1, 2)[mask]  # (n masked steps, C)
    masked_true = x.transpose(1, 2)[mask]
    assert float(loss.detach()) == pytest.approx(float(((masked_pred - masked_true) ** 2).mean()), rel=1e-6)
    # other values at the masked steps: the same prediction (the encoder never saw them), another loss
    changed = torch.where(mask.unsqueeze(1), torch.randn(3, 2, 24, generator=gen), x)
    loss2, prediction2 = method.reconstruction_loss(changed, mask)
    torch.testing.assert_close(prediction2, prediction)
    assert float(loss2.detach()) != pytest.approx(float(loss.detach()))


def test_training_lowers_the_reconstruction_error():
    torch.manual_seed(0)
    method = MaskedSeriesModel(SeriesTransformerEncoder(1, 32, patch_size=4, dim=16, depth=1, heads=2))
    t = torch.linspace(0, 6.28, 32)
    x = (torch.linspace(-2, 2, 16).view(16, 1) + 0.5 * torch.sin(t)).unsqueeze(1)  # level readable elsewhere
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)
    losses = []
    for step in range(60):
        torch.manual_seed(step)
        loss = method({"x": x}).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-10:]) / 10 < 0.3 * sum(losses[:10]) / 10


def test_checks():
    encoder = SeriesTransformerEncoder(1, 16, patch_size=4, dim=8, depth=1, heads=2)
    with pytest.raises(ConfigError, match="mask_ratio"):
        MaskedSeriesModel(encoder, mask_ratio=1.0)
    with pytest.raises(DataError, match="one sample per series"):
        MaskedSeriesModel(encoder).check_data(DataInfo("series", n_features=1))
    with pytest.raises(DataError, match="fewer than two patches"):
        MaskedSeriesModel(encoder, patch_size=8).check_data(DataInfo("series", channels=1, max_length=12))
