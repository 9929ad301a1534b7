import pytest

from biolatent.data.samples import DataInfo
from biolatent.errors import ConfigError
from biolatent.models.registry import ENCODER_MODALITIES, ENCODERS, build_encoder, default_encoder


def test_defaults() -> None:
    assert default_encoder("counts", "vae") == "mlp"
    assert default_encoder("dna", "mlm") == "bert"
    assert default_encoder("image2d", "simclr") == "resnet"
    assert default_encoder("image2d", "mae") == "vit"
    assert default_encoder("spatial", "clip") == "resnet"  # tiles around spots
    assert default_encoder("spatial", "mae") == "vit"
    assert set(ENCODER_MODALITIES) == set(ENCODERS)
    with pytest.raises(ConfigError):
        default_encoder("audio", "simclr")


def test_build_rejects_unknown_and_wrong_modality() -> None:
    with pytest.raises(ConfigError, match="unknown encoder"):
        build_encoder("transformer", DataInfo("counts", n_features=5))
    with pytest.raises(ConfigError, match="does not work"):
        build_encoder("mlp", DataInfo("dna", max_length=20))
