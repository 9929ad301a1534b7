"""Every registered encoder: from_data, out_dim, forward shape, keyword-only typed hyper-parameters."""

import inspect

import pytest
import torch

from biolatent.config import validate_kwargs
from biolatent.data.samples import DataInfo
from biolatent.models.registry import ENCODER_MODALITIES, ENCODERS, build_encoder

INFOS = {
    "counts": DataInfo("counts", n_features=30, is_counts=True),
    "dna": DataInfo("dna", max_length=40),
    "image2d": DataInfo("image2d", channels=3, image_size=32, spatial_dims=2),
    "volume": DataInfo("volume", channels=1, image_size=16, spatial_dims=3),
    "cine": DataInfo("cine", channels=1, image_size=16, spatial_dims=3, frames=4),
    # tiles around spots (+ their expression, which encoders do not see)
    "spatial": DataInfo("spatial", channels=3, image_size=32, spatial_dims=2, n_features=30, is_counts=True),
    "records": DataInfo("records", max_length=12, vocab_size=20),
    "series": DataInfo("series", channels=2, max_length=24),
}
SMALL = {
    "mlp": {"hidden_dims": (16,), "out_dim": 8},
    "resnet": {"widths": (4, 8), "blocks": (1, 1)},
    "vit": {"patch_size": 8, "dim": 16, "depth": 1, "heads": 2},
    "bert": {"hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32},
    "nt": {"hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32},
    "cine": {"widths": (4, 8), "blocks": (1, 1), "temporal_heads": 2},
    "behrt": {"hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32},
    "series_cnn": {"hidden_dim": 8, "out_dim": 8, "depth": 2},
    "series_transformer": {"patch_size": 4, "dim": 8, "depth": 1, "heads": 2},
}
DATA_ARGS = {"in_dim", "in_channels", "image_size", "kmer", "max_length", "spatial_dims", "frames",
             "vocab_size"}


def make_input(modality: str, batch: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if modality == "counts":
        return torch.poisson(torch.full((batch, 30), 3.0), generator=gen)
    if modality == "dna":
        x = torch.randint(0, 4, (batch, 40), generator=gen)
        x[: batch // 2, 33:] = 5  # right padding on half the sequences
        return x
    if modality == "records":  # (B, 4, L): codes (right-padded), age, segment, visit position
        codes = torch.randint(5, 20, (batch, 12), generator=gen)
        codes[:, 0] = 3  # [CLS]
        codes[: batch // 2, 9:] = 0  # [PAD]
        visits = torch.arange(12).expand(batch, 12) // 3
        ages = 40 + visits
        return torch.stack([codes, ages, visits % 2, visits], dim=1) * (codes != 0).unsqueeze(1)
    if modality == "volume":
        return torch.rand(batch, 1, 16, 16, 16, generator=gen)
    if modality == "cine":
        return torch.rand(batch, 4, 16, 16, 16, generator=gen)
    if modality == "series":
        return torch.randn(batch, 2, 24, generator=gen)
    return torch.rand(batch, 3, 32, 32, generator=gen)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_contract(name: str) -> None:
    torch.manual_seed(0)
    for modality in ENCODER_MODALITIES[name]:
        encoder = build_encoder(name, INFOS[modality], **SMALL[name])
        assert isinstance(encoder.out_dim, int)
        out = encoder(make_input(modality))
        assert out.shape == (8, encoder.out_dim)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_signature(name: str) -> None:
    params = list(inspect.signature(ENCODERS[name].__init__).parameters.values())[1:]
    for param in params:
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            assert param.default is not inspect.Parameter.empty, param.name
            assert param.annotation is not inspect.Parameter.empty, param.name
        else:
            assert param.name in DATA_ARGS, param.name
    # the config system can validate and default-fill the keyword arguments
    defaults = validate_kwargs("model", name, ENCODERS[name], {}, ())
    assert defaults and set(defaults) == {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    validate_kwargs("model", name, ENCODERS[name], SMALL[name], ())
