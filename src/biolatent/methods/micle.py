"""MICLe, multi-instance contrastive learning (Azizi, Mustafa, Ryan, Beaver, Freyberg, Deaton, Loh,
Karthikesalingam, Kornblith, Chen, Natarajan & Norouzi 2021, ICCV, "Big self-supervised models advance medical
image classification").

SimCLR's NT-Xent loss (Chen et al. 2020), but the positive of an image is a random view of *another image of the
same patient* (another visit, viewpoint or scan) instead of a second view of the same image: the loss is
NT-Xent between ``views(x)`` and ``views(x_pair)``. The training loader puts ``x_pair`` (and its row
``index_pair``) in every batch when the data declare ``data.group_column`` (the subject/patient column); a
subject with one image is paired with itself, which is SimCLR for that anchor. The metric ``distinct_pairs``
is the fraction of anchors whose positive is a different image.

Defaults as in SimCLR/MICLe: temperature 0.1; the projection head is SimCLR's (Linear, ReLU, Linear), 128-d.
``embed`` is the encoder output.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.methods.perturb import DefaultPerturbation
from biolatent.methods.simclr import nt_xent_logits
from biolatent.types import LossOutput

NEEDS_GROUPS = ("method micle needs several images per subject: set data.group_column (the metadata column "
                "naming each sample's subject/patient)")


def distinct_pairs(batch: dict[str, torch.Tensor]) -> float:
    """Fraction of anchors whose pair is another sample: by row index when the batch has ``index_pair``,
    else by comparing the tensors."""
    if "index" in batch and "index_pair" in batch:
        return float((batch["index"] != batch["index_pair"]).float().mean())
    x, pair = batch["x"], batch["x_pair"]
    return float((x != pair).flatten(1).any(dim=1).float().mean())


class MICLe(SSLMethod):
    """Encoder -> projection head -> NT-Xent between views of two images of the same subject."""

    name: ClassVar[str] = "micle"
    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume", "cine")

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        projection_dim: int = 128,
        temperature: float = 0.1,
    ) -> None:
        super().__init__(encoder, views=views if views is not None else DefaultPerturbation())
        if temperature <= 0:
            raise ConfigError(f"method.temperature must be > 0, got {temperature}")
        hidden = int(encoder.out_dim)
        self.temperature = temperature
        self.projector = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, projection_dim))

    def check_samples(self, samples: Any) -> None:
        if getattr(samples, "groups", None) is None:
            raise DataError(NEEDS_GROUPS)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        if "x_pair" not in batch:
            raise ConfigError(NEEDS_GROUPS)
        x, pair = batch["x"], batch["x_pair"]
        if pair.shape != x.shape:
            raise DataError(f"micle: x_pair has shape {tuple(pair.shape)} but x has {tuple(x.shape)}")
        if x.shape[0] < 2:
            raise ConfigError("micle needs at least 2 samples per batch (train.batch_size)")
        assert self.views is not None
        z1 = self.projector(self.encoder(self.views(x)))
        z2 = self.projector(self.encoder(self.views(pair)))
        logits, positives = nt_xent_logits(z1, z2, self.temperature)
        loss = F.cross_entropy(logits, positives)
        accuracy = float((logits.detach().argmax(dim=1) == positives).float().mean())
        return LossOutput(loss, {"loss": float(loss.detach()), "accuracy": accuracy,
                                 "distinct_pairs": distinct_pairs(batch)})

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
