"""Encoder registry: names used in ``model.name``, the modalities each supports, defaults per method."""

from __future__ import annotations

from typing import Any

from torch import nn

from biolatent.errors import ConfigError
from biolatent.models.behrt import BehrtEncoder
from biolatent.models.cine import CineEncoder
from biolatent.models.mlp import MLPEncoder
from biolatent.models.nucleotide_transformer import NucleotideTransformerEncoder
from biolatent.models.resnet import ResNetEncoder
from biolatent.models.sequence import BertSequenceEncoder
from biolatent.models.series_cnn import DilatedConvEncoder
from biolatent.models.series_transformer import SeriesTransformerEncoder
from biolatent.models.vit import ViTEncoder

ENCODERS: dict[str, type[nn.Module]] = {
    "mlp": MLPEncoder,
    "resnet": ResNetEncoder,
    "vit": ViTEncoder,
    "bert": BertSequenceEncoder,
    "nt": NucleotideTransformerEncoder,
    "cine": CineEncoder,
    "behrt": BehrtEncoder,
    "series_cnn": DilatedConvEncoder,
    "series_transformer": SeriesTransformerEncoder,
}

ENCODER_MODALITIES: dict[str, tuple[str, ...]] = {
    "mlp": ("counts",),
    "resnet": ("image2d", "volume", "spatial"),
    "vit": ("image2d", "volume", "cine", "spatial"),
    "bert": ("dna",),
    "nt": ("dna",),
    "cine": ("cine",),
    "behrt": ("records",),
    "series_cnn": ("series",),
    "series_transformer": ("series",),
}

_DEFAULTS = {
    "counts": "mlp", "dna": "bert", "image2d": "resnet", "volume": "resnet", "cine": "cine", "spatial": "resnet",
    "records": "behrt", "series": "series_cnn",
}

# (encoder, modality) -> keyword defaults that differ from the constructor's: 3D ResNets get a strided stem (as the
# original ResNet's), which saves ~8x the activations of a full-resolution first stage (a late-fusion cine step at
# batch 128 and 10 x 32^3 needed ~40 GB of saved activations with stem_stride 1, ~5.5 GB with 2)
_MODALITY_KWARGS: dict[tuple[str, str], dict[str, Any]] = {
    ("resnet", "volume"): {"stem_stride": 2},
    ("cine", "cine"): {"stem_stride": 2},
}


def default_encoder(modality: str, method: str) -> str:
    """counts -> mlp, dna -> bert, image2d, volume and spatial (tiles) -> resnet, cine -> cine, series ->
    series_cnn (TS2Vec's dilated CNN); vit for mae (it needs patches), series_transformer for masked_series."""
    if modality not in _DEFAULTS:
        raise ConfigError(f"data.modality: no encoder for {modality!r} (valid: {', '.join(_DEFAULTS)})")
    if modality in ("image2d", "volume", "cine", "spatial") and method == "mae":
        return "vit"
    if modality == "series" and method == "masked_series":
        return "series_transformer"
    return _DEFAULTS[modality]


def default_encoder_kwargs(name: str, modality: str) -> dict[str, Any]:
    """Keyword defaults of encoder ``name`` on ``modality`` that differ from its constructor's (a config's own keys
    win)."""
    return dict(_MODALITY_KWARGS.get((name, modality), {}))


def build_encoder(name: str, info: Any, **hparams: Any) -> nn.Module:
    """``ENCODERS[name].from_data(info, **hparams)`` after checking the name and the modality."""
    if name not in ENCODERS:
        raise ConfigError(f"model.name: unknown encoder {name!r} (valid: {', '.join(ENCODERS)})")
    if info.modality not in ENCODER_MODALITIES[name]:
        raise ConfigError(
            f"encoder {name!r} does not work with data.modality {info.modality!r} "
            f"(it supports: {', '.join(ENCODER_MODALITIES[name])})"
        )
    return ENCODERS[name].from_data(info, **hparams)
