"""Contrastive image <-> health records pre-training: CLIP between a subject's image and its coded history.

CLIP (Radford et al. 2021, ICML, "Learning transferable visual models from natural language supervision") with
the text encoder replaced by a BEHRT records encoder (Li et al. 2020, Sci Rep 10:7155; ``models.behrt``), as in
the image + EHR contrastive pre-training the review cites for rare-disease classification. The image encoder
(``model:``) and the records encoder each feed a projection head (Linear, GELU, Linear) into a joint space of
``embed_dim``; the loss is CLIP's symmetric InfoNCE over the batch (``methods.clip.clip_loss``) with CLIP's learned
temperature (initialised at ``temperature_init``, clipped so that 1 / temperature <= 100, not weight-decayed).

Batches carry the image in ``x`` and the records tokens (``data.records``, paired by subject id:
``data.paired.attach_records``) in ``records``. ``embed(x, records)`` is the patient representation used
downstream: the image encoder's features and the records encoder's pooled output, concatenated (the features
before the projection heads, as probes of contrastive models use); ``embed_image`` gives the image part alone
(e.g. to predict a records-derived quantity from the image only).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from biolatent.data.paired import RECORDS
from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.methods.clip import MAX_LOGIT_SCALE, clamp_logit_scale, clip_loss, clip_metrics
from biolatent.models.behrt import BehrtEncoder
from biolatent.types import LossOutput

RECORDS_DATA_KWARGS = {"records_vocab_size": "records_vocab_size", "records_max_length": "records_max_length"}


def records_encoder(vocab_size: int | None, max_length: int | None, method: str, *, hidden: int, layers: int,
                    heads: int, intermediate: int, dropout: float) -> BehrtEncoder:
    """The records side of an image <-> records method: a BEHRT encoder with mean pooling over the events."""
    if not vocab_size or not max_length:
        raise ConfigError(f"method {method} needs health records paired with the images: set data.records "
                          "(a records data section of the same subjects)")
    return BehrtEncoder(int(vocab_size), int(max_length), hidden_size=hidden, layers=layers, heads=heads,
                        intermediate_size=intermediate, dropout=dropout, pooling="mean")


def check_records(samples: Any, method: str, vocab_size: int) -> None:
    """DataError unless the samples carry records tokens of ``vocab_size`` codes."""
    tokens = samples.fields.get(RECORDS)
    if tokens is None:
        raise DataError(f"method {method} needs the subjects' records (data.records)")
    if tokens.ndim != 3 or tokens.shape[1] != 4:
        raise DataError(f"method {method}: records have shape {tuple(tokens.shape)}, expected (subjects, 4, length)")
    if int(tokens[:, 0].max()) >= vocab_size:
        raise DataError(f"method {method}: records hold token ids beyond the vocabulary of {vocab_size} codes")


def _head(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


class ImageRecordsCLIP(SSLMethod):
    """Image encoder + projection vs BEHRT records encoder + projection, symmetric InfoNCE, learned temperature."""

    name: ClassVar[str] = "records_clip"
    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume", "cine")
    data_kwargs: ClassVar[dict[str, str]] = RECORDS_DATA_KWARGS
    embed_fields: ClassVar[tuple[str, ...]] = (RECORDS,)

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        records_vocab_size: int | None = None,
        records_max_length: int | None = None,
        embed_dim: int = 64,
        records_hidden: int = 64,
        records_layers: int = 2,
        records_heads: int = 4,
        records_intermediate: int = 128,
        records_dropout: float = 0.1,
        temperature_init: float = 0.07,
        use_views: bool = True,
    ) -> None:
        super().__init__(encoder, views=views)
        if temperature_init < 1.0 / MAX_LOGIT_SCALE:
            raise ConfigError(f"method.temperature_init must be >= {1 / MAX_LOGIT_SCALE}, got {temperature_init}")
        if embed_dim < 1:
            raise ConfigError(f"method.embed_dim must be >= 1, got {embed_dim}")
        self.records_encoder = records_encoder(
            records_vocab_size, records_max_length, self.name, hidden=records_hidden, layers=records_layers,
            heads=records_heads, intermediate=records_intermediate, dropout=records_dropout)
        self.use_views = use_views
        self.image_projection = _head(int(encoder.out_dim), embed_dim)
        self.records_projection = _head(records_hidden, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature_init)))

    def check_samples(self, samples: Any) -> None:
        check_records(samples, self.name, self.records_encoder.vocab_size)

    def no_weight_decay(self) -> tuple[str, ...]:
        """The learned temperature is not weight-decayed (CLIP)."""
        return ("logit_scale",)

    def embed_image(self, x: torch.Tensor) -> torch.Tensor:
        """The image part of the representation (B, encoder.out_dim)."""
        return self.encoder(x.float())

    def embed(self, x: torch.Tensor, records: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """[image features, records features] (B, encoder.out_dim + records_hidden)."""
        if records is None:
            raise DataError(f"method {self.name} embeds the records with the images: pass the paired records")
        return torch.cat([self.embed_image(x), self.records_encoder(records)], dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x, records = batch["x"].float(), batch.get(RECORDS)
        if records is None:
            raise DataError(f"method {self.name} needs batches with the paired records ('records')")
        if x.shape[0] < 2:
            raise ConfigError(f"{self.name} needs at least 2 subjects per batch (train.batch_size)")
        if self.use_views and self.views is not None and self.training:
            x = self.views(x)
        loss, logits, targets = clip_loss(self.image_projection(self.encoder(x)),
                                          self.records_projection(self.records_encoder(records)),
                                          self.logit_scale.exp())
        return LossOutput(loss, clip_metrics(loss, logits, targets, self.logit_scale))

    def on_train_batch_end(self, step: int, total_steps: int) -> None:
        """Clip the learned logit scale at log(100) after every optimizer step, as CLIP does."""
        clamp_logit_scale(self.logit_scale)
