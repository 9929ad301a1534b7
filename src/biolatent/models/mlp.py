"""Multi-layer perceptron for expression profiles (genes as features), with the count transform built in."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from biolatent.errors import DataError

InputTransform = Literal["auto", "log1p_normalize", "log1p", "none"]


def log1p_normalize(x: torch.Tensor, scale: float = 1e4) -> torch.Tensor:
    """Library-size normalisation then log: ``log1p(x / row_total * scale)`` (rows of zeros stay zero)."""
    total = x.sum(dim=1, keepdim=True).clamp(min=1e-8)
    return torch.log1p(x / total * scale)


class MLPEncoder(nn.Module):
    """Linear -> LayerNorm -> ReLU -> Dropout per hidden layer, then a linear map to ``out_dim``.

    ``input_transform`` is applied inside ``forward`` so that the encoder always receives raw values:
    ``log1p_normalize`` = ``log1p(x / row_total * 1e4)``, ``log1p`` = ``log1p(x)``, ``none`` = as is.
    ``auto`` becomes ``log1p_normalize`` for counts in ``from_data`` (``none`` for continuous values);
    a direct constructor call with ``auto`` uses ``none``.
    """

    def __init__(
        self,
        in_dim: int,
        *,
        hidden_dims: tuple[int, ...] = (256, 128),
        out_dim: int = 64,
        dropout: float = 0.1,
        input_transform: InputTransform = "auto",
    ) -> None:
        super().__init__()
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        self.input_transform: str = "none" if input_transform == "auto" else input_transform
        layers: list[nn.Module] = []
        width = self.in_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, self.out_dim))
        self.net = nn.Sequential(*layers)

    @classmethod
    def from_data(cls, info: Any, **hparams: Any) -> MLPEncoder:
        if not info.n_features:
            raise DataError("encoder 'mlp' needs the number of features (genes) of the data")
        if hparams.get("input_transform", "auto") == "auto":
            hparams["input_transform"] = "log1p_normalize" if info.is_counts else "none"
        return cls(int(info.n_features), **hparams)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.input_transform == "log1p_normalize":
            return log1p_normalize(x)
        if self.input_transform == "log1p":
            return torch.log1p(x.clamp(min=0))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.transform(x))
