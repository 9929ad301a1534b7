"""Method registry: names used in ``method.name``."""

from __future__ import annotations

from typing import Any

from torch import nn

from biolatent.errors import ConfigError
from biolatent.methods.base import SSLMethod
from biolatent.methods.behrt import MaskedCodeModel
from biolatent.methods.byol import BYOL
from biolatent.methods.clip import CLIP
from biolatent.methods.contig import ContIG
from biolatent.methods.cross_modal_ae import CrossModalAutoencoder
from biolatent.methods.dino import DINO
from biolatent.methods.mae import MAE
from biolatent.methods.masked_series import MaskedSeriesModel
from biolatent.methods.micle import MICLe
from biolatent.methods.mlm import MaskedKmerModel
from biolatent.methods.moco import MoCo
from biolatent.methods.records_clip import ImageRecordsCLIP
from biolatent.methods.simclr import SimCLR
from biolatent.methods.temporal_order import TemporalOrder
from biolatent.methods.ts2vec import TS2Vec
from biolatent.methods.vae import VAE

METHODS: dict[str, type[SSLMethod]] = {
    "simclr": SimCLR,
    "vae": VAE,
    "mlm": MaskedKmerModel,
    "mae": MAE,
    "moco": MoCo,
    "byol": BYOL,
    "dino": DINO,
    "micle": MICLe,
    "temporal_order": TemporalOrder,
    "clip": CLIP,
    "contig": ContIG,
    "behrt": MaskedCodeModel,
    "records_clip": ImageRecordsCLIP,
    "cross_modal_ae": CrossModalAutoencoder,
    "ts2vec": TS2Vec,
    "masked_series": MaskedSeriesModel,
}


def build_method(
    name: str, encoder: nn.Module, *, views: nn.Module | None = None, **hparams: Any
) -> SSLMethod:
    """``METHODS[name](encoder, views=views, **hparams)``; ``check_data`` is the caller's next step."""
    if name not in METHODS:
        raise ConfigError(f"method.name: unknown method {name!r} (valid: {', '.join(METHODS)})")
    return METHODS[name](encoder, views=views, **hparams)
