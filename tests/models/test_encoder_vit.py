import numpy as np
import pytest
import torch

from biolatent.errors import ConfigError
from biolatent.models.vit import ViTEncoder, sincos_position_embedding


def _vit(**kw) -> ViTEncoder:
    torch.manual_seed(0)
    return ViTEncoder(16, 3, patch_size=4, dim=16, depth=1, heads=2, **kw).eval()


def test_patchify_order_and_roundtrip() -> None:
    vit = _vit()
    x = torch.rand(2, 3, 16, 16)
    patches = vit.patchify(x)
    assert patches.shape == (2, 16, 4 * 4 * 3) and vit.num_patches == 16
    xn = x.numpy()
    for b in range(2):
        for gi in range(4):
            for gj in range(4):
                block = xn[b, :, gi * 4 : gi * 4 + 4, gj * 4 : gj * 4 + 4]  # (C, p, p)
                expected = block.transpose(1, 2, 0).reshape(-1)  # pixels row-major, channels last
                np.testing.assert_array_equal(patches[b, gi * 4 + gj].numpy(), expected)
    assert torch.equal(vit.unpatchify(patches), x)


def test_patch_embedding_matches_patch_order() -> None:
    vit = _vit()
    x = torch.rand(2, 3, 16, 16)
    conv = vit.patch_embed(x).flatten(2).transpose(1, 2)
    weight = vit.patch_embed.weight.permute(0, 2, 3, 1).reshape(16, -1)
    torch.testing.assert_close(conv, vit.patchify(x) @ weight.T + vit.patch_embed.bias, atol=1e-5, rtol=1e-5)


def test_sincos_matches_formula() -> None:
    table = sincos_position_embedding(3, 8, 2).numpy()
    for i in range(3):
        for j in range(3):
            row = []
            for coord in (i, j):
                freqs = [1.0 / 10000 ** (f / 2) for f in range(2)]
                row += [np.sin(coord * w) for w in freqs] + [np.cos(coord * w) for w in freqs]
            np.testing.assert_allclose(table[i * 3 + j], row, rtol=1e-6, atol=1e-7)


def test_forward_tokens_keep_index() -> None:
    vit = _vit()
    x = torch.rand(2, 3, 16, 16)
    keep = torch.tensor([[0, 5, 7], [15, 1, 2]])
    assert vit.forward_tokens(x, keep).shape == (2, 4, 16)
    full = vit.forward_tokens(x, torch.arange(16).expand(2, -1))
    torch.testing.assert_close(full, vit.forward_tokens(x))
    assert vit(x).shape == (2, 16)
    cls_vit = _vit(pool="cls")
    torch.testing.assert_close(cls_vit(x), cls_vit.forward_tokens(x)[:, 0])


def test_learned_positions_and_3d() -> None:
    assert isinstance(_vit(pos_embedding="learned").pos_embed, torch.nn.Parameter)
    vit3 = ViTEncoder(8, 1, patch_size=4, dim=12, depth=1, heads=2, spatial_dims=3)
    x = torch.rand(2, 1, 8, 8, 8)
    assert vit3.patchify(x).shape == (2, 8, 64)
    assert torch.equal(vit3.unpatchify(vit3.patchify(x)), x)
    assert vit3(x).shape == (2, 12)


def test_patch_size_must_divide() -> None:
    with pytest.raises(ConfigError, match="patch_size"):
        ViTEncoder(30, 3, patch_size=8)


def test_vit_b16_parameter_count() -> None:
    """ViT-B/16 (Dosovitskiy et al. 2021, Table 1: 86M) as timm's ``vit_base_patch16_224`` without its head has
    85,798,656 parameters, 151,296 of them its learned positions of 196 patches + the CLS token; here the CLS token
    has no position (768 fewer) and the default sin-cos positions are a buffer."""
    vit = ViTEncoder(224, 3, patch_size=16, dim=768, depth=12, heads=12)
    count = sum(p.numel() for p in vit.parameters())
    assert count == 85_798_656 - 197 * 768 == 85_647_360
    learned = ViTEncoder(224, 3, patch_size=16, dim=768, depth=12, heads=12, pos_embedding="learned")
    assert sum(p.numel() for p in learned.parameters()) == 85_798_656 - 768
    assert vit.num_patches == 196 and vit.out_dim == 768
