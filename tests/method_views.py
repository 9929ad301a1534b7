"""Deterministic stand-ins for the views in method tests."""

from __future__ import annotations

import torch


class ListViews(torch.nn.Module):
    """Deterministic 'views': returns the given tensors in turn (cycling)."""

    def __init__(self, *outputs: torch.Tensor) -> None:
        super().__init__()
        self.outputs, self.calls = outputs, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.outputs[self.calls % len(self.outputs)]
        self.calls += 1
        return out
