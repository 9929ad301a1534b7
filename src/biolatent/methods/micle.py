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

from biolatent.errors import ConfigError, DataError
from biolatent.methods.simclr import SimCLR
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


class MICLe(SimCLR):
    """SimCLR's encoder, projection head and NT-Xent, between views of two images of the same subject."""

    name: ClassVar[str] = "micle"
    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume", "cine")

    def check_samples(self, samples: Any) -> None:
        if getattr(samples, "groups", None) is None:
            raise DataError(NEEDS_GROUPS)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        if "x_pair" not in batch:
            raise ConfigError(NEEDS_GROUPS)
        x, pair = batch["x"], batch["x_pair"]
        if pair.shape != x.shape:
            raise DataError(f"micle: x_pair has shape {tuple(pair.shape)} but x has {tuple(x.shape)}")
        out = self.contrast(x, pair)
        return LossOutput(out.loss, {**out.metrics, "distinct_pairs": distinct_pairs(batch)})
