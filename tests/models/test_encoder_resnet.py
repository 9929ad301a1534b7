import pytest
import torch

from biolatent.build import build_method, load_config
from biolatent.data.samples import DataInfo
from biolatent.errors import ConfigError
from biolatent.models.feature_pyramid import FeaturePyramid
from biolatent.models.resnet import RESNET18_KWARGS, RESNET50_KWARGS, ResNetEncoder


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


# torchvision's resnet50 has 25,557,032 parameters and resnet18 11,689,512 (the ``num_params`` of
# ResNet50_Weights.IMAGENET1K_V1 / ResNet18_Weights.IMAGENET1K_V1,
# https://pytorch.org/vision/stable/models/generated/torchvision.models.resnet50.html); without the 1000-class fc
# layer (2048 x 1000 + 1000, resp. 512 x 1000 + 1000):
TORCHVISION_RESNET50_NO_FC = 25_557_032 - (2048 * 1000 + 1000)
TORCHVISION_RESNET18_NO_FC = 11_689_512 - (512 * 1000 + 1000)


def _bottleneck_resnet_parameters(widths: tuple[int, ...], blocks: tuple[int, ...], in_ch: int = 3) -> int:
    """Parameters of He et al. 2016's bottleneck ResNet counted from the architecture (convolutions without bias,
    2 per BatchNorm channel): 7x7 stem, per block 1x1 (c -> w), 3x3 (w -> w), 1x1 (w -> 4w), a 1x1 projection where
    the shape changes."""
    total = in_ch * widths[0] * 49 + 2 * widths[0]
    channels = widths[0]
    for width, count in zip(widths, blocks, strict=True):
        for i in range(count):
            total += channels * width + 2 * width + 9 * width * width + 2 * width + 4 * width * width + 8 * width
            if i == 0:  # every stage's first block changes the channels (and from the second stage the stride)
                total += channels * 4 * width + 8 * width
            channels = 4 * width
    return total


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet50_has_torchvisions_parameter_count() -> None:
    assert TORCHVISION_RESNET50_NO_FC == 23_508_032
    assert _bottleneck_resnet_parameters((64, 128, 256, 512), (3, 4, 6, 3)) == TORCHVISION_RESNET50_NO_FC
    enc = ResNetEncoder(3, **RESNET50_KWARGS)
    assert _count(enc) == TORCHVISION_RESNET50_NO_FC
    assert enc.out_dim == 2048
    x = torch.rand(1, 3, 64, 64)
    assert enc.forward_features(x).shape == (1, 2048, 2, 2)  # stride 32: stem 2, max-pool 2, three stages 2
    assert enc(x).shape == (1, 2048)


def test_resnet18_has_torchvisions_parameter_count() -> None:
    assert _count(ResNetEncoder(3, **RESNET18_KWARGS)) == TORCHVISION_RESNET18_NO_FC == 11_176_512


def test_bottleneck_resnet_3d_shapes() -> None:
    torch.manual_seed(0)
    enc = ResNetEncoder(1, 3, widths=(4, 8), blocks=(2, 1), block="bottleneck", stem_kernel=7, stem_stride=2,
                        stem_pool=True)
    x = torch.rand(2, 1, 16, 16, 16)
    assert enc.out_dim == 32
    assert enc.forward_features(x).shape == (2, 32, 2, 2, 2)  # 16 -> stem 8 -> pool 4 -> second stage 2
    assert enc(x).shape == (2, 32)
    assert any(isinstance(m, torch.nn.MaxPool3d) for m in enc.modules())


def test_defaults_unchanged() -> None:
    """The default ResNet keeps its basic blocks, 3x3 stem and parameter names (existing checkpoints load)."""
    enc = ResNetEncoder(3)
    assert enc.block == "basic" and not enc.stem_pool and enc.out_dim == 256
    assert enc.stem[0].kernel_size == (3, 3) and len(enc.stem) == 3
    assert "stages.0.0.conv2.weight" in enc.state_dict() and not any("conv3" in k for k in enc.state_dict())


def test_block_and_stem_through_the_config() -> None:
    info = DataInfo("image2d", channels=3, image_size=32, spatial_dims=2)
    model = {"name": "resnet", "block": "bottleneck", "widths": [4, 8], "blocks": [1, 1], "stem_kernel": 7,
             "stem_stride": 2, "stem_pool": True}
    config = load_config({"data": {"modality": "image2d", "path": "x", "image_size": 32},
                          "method": {"name": "simclr"}, "model": model})
    method = build_method(config, info)
    assert method.encoder.block == "bottleneck" and method.encoder.out_dim == 32
    for bad in ({"block": "wide"}, {"stem_kernel": 4}):
        with pytest.raises(ConfigError):
            cfg = load_config({"data": {"modality": "image2d", "path": "x", "image_size": 32},
                               "method": {"name": "simclr"}, "model": {**model, **bad}})
            build_method(cfg, info)


def test_feature_pyramid_refuses_a_bottleneck_resnet() -> None:
    with pytest.raises(ConfigError, match="basic blocks"):
        FeaturePyramid(ResNetEncoder(3, widths=(4, 8, 16), blocks=(1, 1, 1), block="bottleneck"))
