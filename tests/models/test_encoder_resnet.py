import torch

from biolatent.data.samples import DataInfo
from biolatent.models.resnet import ResNetEncoder


def test_resnet_2d_shapes() -> None:
    torch.manual_seed(0)
    enc = ResNetEncoder.from_data(
        DataInfo("image2d", channels=3, image_size=16), widths=(4, 8, 16), blocks=(1, 2, 1)
    )
    x = torch.rand(2, 3, 16, 16)
    assert enc.out_dim == 16
    assert enc.forward_features(x).shape == (2, 16, 4, 4)
    out = enc(x)
    assert out.shape == (2, 16)
    torch.testing.assert_close(out, enc.forward_features(x).mean(dim=(2, 3)))


def test_resnet_3d() -> None:
    torch.manual_seed(0)
    enc = ResNetEncoder(1, widths=(4, 8), blocks=(1, 1), spatial_dims=3)
    x = torch.rand(2, 1, 8, 8, 8)
    assert enc.forward_features(x).shape == (2, 8, 4, 4, 4)
    assert enc(x).shape == (2, 8)
    assert any(isinstance(m, torch.nn.Conv3d) for m in enc.modules())
