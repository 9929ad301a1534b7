"""Shared types: the batch every method consumes and the output every method returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# A batch is a dict of tensors. Keys:
#   "x":     the inputs of the encoder, (B, ...): float32 counts (B, G), int64 bases (B, L), float32 images
#            (B, C, H, W) in [0, 1]
#   "index": int64 (B,) positions of the samples in their SampleSet (kept so embeddings keep their ids)
#   "y":     optional int64 (B,) class labels (supervised baseline only)
Batch = dict[str, torch.Tensor]


@dataclass
class LossOutput:
    """What a method's forward returns: the scalar loss to minimise and floats to log."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
