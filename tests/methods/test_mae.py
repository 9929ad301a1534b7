import numpy as np
import pytest
import torch

from biolatent.errors import ConfigError
from biolatent.methods.mae import MAE, random_masking
from biolatent.models.resnet import ResNetEncoder
from biolatent.models.vit import ViTEncoder


def _mae(**kw) -> MAE:
    torch.manual_seed(0)
    vit = ViTEncoder(16, 3, patch_size=4, dim=16, depth=1, heads=2)
    return MAE(vit, decoder_dim=8, decoder_depth=1, decoder_heads=2, **kw)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_kept_patches_exact(ratio: float) -> None:
    torch.manual_seed(0)
    keep, _restore, mask = random_masking(6, 16, ratio)
    n_keep = max(1, int(16 * (1 - ratio)))
    assert keep.shape == (6, n_keep)
    assert (mask.sum(dim=1) == 16 - n_keep).all()
    for b in range(6):
        assert len(set(keep[b].tolist())) == n_keep
        assert (mask[b, keep[b]] == 0).all()
    assert not torch.equal(keep[0], keep[1])  # per-sample masks


def _reference_loss(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    total, count = 0.0, 0
    for b in range(pred.shape[0]):
        for n in range(pred.shape[1]):
            if mask[b, n] == 1:
                total += float(np.mean((pred[b, n] - target[b, n]) ** 2))
                count += 1
    return total / count


@pytest.mark.parametrize("norm_pix", [False, True])
def test_loss_matches_numpy(norm_pix: bool) -> None:
    method = _mae(norm_pix_loss=norm_pix).eval()
    x = torch.rand(4, 3, 16, 16)
    torch.manual_seed(7)
    out = method({"x": x})
    torch.manual_seed(7)
    with torch.no_grad():
        pred, _, mask = method.reconstruct(x)
    target = method.encoder.patchify(x).numpy().astype(np.float64)
    if norm_pix:
        mean = target.mean(axis=-1, keepdims=True)
        var = target.var(axis=-1, ddof=1, keepdims=True)
        target = (target - mean) / np.sqrt(var + 1e-6)
    assert (mask.sum(dim=1) == 12).all()
    expected = _reference_loss(pred.double().numpy(), target, mask.numpy())
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert method.embed(x).shape == (4, 16)


def test_needs_vit() -> None:
    with pytest.raises(ConfigError, match=r"model\.name: vit"):
        MAE(ResNetEncoder(3, widths=(4,), blocks=(1,)))
