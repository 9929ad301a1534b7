"""The base class every self-supervised method derives from."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from biolatent.errors import DataError
from biolatent.types import LossOutput


class SSLMethod(nn.Module):
    """An encoder plus whatever heads a pretext task needs.

    Subclasses set ``name`` and ``modalities``, take ``(encoder, *, views=None, <typed keyword
    hyper-parameters with defaults>)`` and implement ``forward(batch) -> LossOutput`` where ``batch["x"]``
    is the encoder input. ``views`` (an ``nn.Module``, random on every call) is injected by the builder.
    """

    name: ClassVar[str] = "ssl"
    modalities: ClassVar[tuple[str, ...]] = ()
    uses_views: ClassVar[bool] = True  # False: the config's views section must stay empty (nothing reads it)
    # keyword -> DataInfo attribute the builder fills from the data (never from YAML), e.g. {"n_genes": "n_features"}
    data_kwargs: ClassVar[dict[str, str]] = {}
    # paired parts (batch keys) that ``embed`` takes as keyword arguments besides x, e.g. ("records",)
    embed_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, encoder: nn.Module, *, views: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.views = views

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation used downstream: (B, D)."""
        return self.encoder(x)

    def check_data(self, info: Any) -> None:
        """Raise ``DataError``/``ConfigError`` (one line) when this method cannot use the data or encoder."""
        if info.modality not in self.modalities:
            raise DataError(
                f"method {self.name!r} does not work with data.modality {info.modality!r} "
                f"(it supports: {', '.join(self.modalities)})"
            )

    def check_samples(self, samples: Any) -> None:
        """Raise ``DataError`` (one line) when the loaded samples (a ``SampleSet``) cannot train this method."""

    def on_train_batch_end(self, step: int, total_steps: int) -> None:
        """Called by the trainer after every optimizer step (EMA teachers would update here)."""
