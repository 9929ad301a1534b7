"""Multi-layer perceptron for expression profiles (genes as features), with the count transform built in."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from biolatent.errors import ConfigError, DataError

InputTransform = Literal["auto", "standardize", "log1p_normalize", "log1p", "none"]
STATISTICS_CHUNK = 4096  # rows per pass when computing the per-gene statistics (no full-size copy of x)


def log1p_normalize(x: torch.Tensor, scale: float = 1e4) -> torch.Tensor:
    """Library-size normalisation then log: ``log1p(x / row_total * scale)`` (rows of zeros stay zero)."""
    total = x.sum(dim=1, keepdim=True).clamp(min=1e-8)
    return torch.log1p(x / total * scale)


class MLPEncoder(nn.Module):
    """Linear -> LayerNorm -> ReLU -> Dropout per hidden layer, then a linear map to ``out_dim``.

    ``input_transform`` is applied inside ``forward`` so that the encoder always receives raw values:
    ``log1p_normalize`` = ``log1p(x / row_total * 1e4)``, ``log1p`` = ``log1p(x)``, ``none`` = as is,
    ``standardize`` = ``(x - mean_g) / sd_g`` per gene ``g``. ``auto`` becomes ``log1p_normalize`` for counts
    and ``standardize`` for continuous values (log-expression, microarrays) in ``from_data``; a direct
    constructor call with ``auto`` uses ``none``.

    Continuous genes sit on very different scales (RMA log-expression: offsets 5..12, SDs of 0.1..2); fed as
    they are, a few high-offset genes dominate the first layer and the embeddings collapse onto one direction.
    ``standardize`` keeps the training data's per-gene mean and SD in buffers (``input_mean``,
    ``input_scale``): :meth:`fit_input_statistics` sets them once before training, the weights file carries
    them, so embedding and evaluation use the very same statistics. A constant gene gets scale 1.
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
        self.statistics_fitted = self.input_transform != "standardize"
        if self.input_transform == "standardize":
            self.register_buffer("input_mean", torch.zeros(self.in_dim))
            self.register_buffer("input_scale", torch.ones(self.in_dim))
            self.register_load_state_dict_pre_hook(_require_statistics)
            self.register_load_state_dict_post_hook(_mark_fitted)

    @classmethod
    def from_data(cls, info: Any, **hparams: Any) -> MLPEncoder:
        if not info.n_features:
            raise DataError("encoder 'mlp' needs the number of features (genes) of the data")
        if hparams.get("input_transform", "auto") == "auto":
            hparams["input_transform"] = "log1p_normalize" if info.is_counts else "standardize"
        return cls(int(info.n_features), **hparams)

    @torch.no_grad()
    def fit_input_statistics(self, x: torch.Tensor) -> None:
        """Per-gene mean and SD (population) of the training data ``x`` (N, G) into the buffers; a no-op for
        the other transforms. A gene whose SD is below ``1e-6 * (1 + |mean|)`` is constant: scale 1."""
        if self.input_transform != "standardize":
            return
        if x.ndim != 2 or x.shape[1] != self.in_dim or x.shape[0] == 0:
            raise DataError(f"input statistics need (N, {self.in_dim}) values, got shape {tuple(x.shape)}")
        starts = range(0, x.shape[0], STATISTICS_CHUNK)
        total = torch.zeros(self.in_dim, dtype=torch.float64)
        for start in starts:
            total += x[start : start + STATISTICS_CHUNK].cpu().double().sum(dim=0)
        mean = total / x.shape[0]
        squares = torch.zeros(self.in_dim, dtype=torch.float64)
        for start in starts:  # two passes: no cancellation for genes with a large offset and a small SD
            squares += ((x[start : start + STATISTICS_CHUNK].cpu().double() - mean) ** 2).sum(dim=0)
        sd = (squares / x.shape[0]).sqrt()
        scale = torch.where(sd < 1e-6 * (1.0 + mean.abs()), torch.ones_like(sd), sd)
        self.input_mean.copy_(mean.float())
        self.input_scale.copy_(scale.float())
        self.statistics_fitted = True

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.input_transform == "standardize":
            if not self.statistics_fitted:
                raise RuntimeError("MLPEncoder(input_transform='standardize') needs fit_input_statistics(x) (or "
                                   "weights that carry the statistics) before its first forward pass")
            return (x - self.input_mean) / self.input_scale
        if self.input_transform == "log1p_normalize":
            return log1p_normalize(x)
        if self.input_transform == "log1p":
            return torch.log1p(x.clamp(min=0))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.transform(x))


def _require_statistics(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Weights saved before continuous inputs were standardised lack the statistics: say so in one line."""
    if prefix + "input_mean" not in state_dict and any(key.startswith(prefix) for key in state_dict):
        raise ConfigError(
            "these weights carry no input statistics (a run made before continuous values were standardised by "
            "default): re-run pretrain, or set model.input_transform: none in the run's config.yaml"
        )


def _mark_fitted(module: nn.Module, incompatible_keys: Any) -> None:
    """Weights loaded into a standardising encoder carry its input statistics (unless a non-strict load lacked them)."""
    missing = [key for key in incompatible_keys.missing_keys if key.endswith(("input_mean", "input_scale"))]
    module.statistics_fitted = module.statistics_fitted or not missing
