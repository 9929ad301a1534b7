"""The Anomaly Transformer network (windows of a series), in plain torch.

Xu, Wu, Wang & Long 2022, "Anomaly Transformer: Time Series Anomaly Detection with Association Discrepancy",
ICLR 2022 (arXiv:2110.02642); reference code github.com/thuml/Anomaly-Transformer.

A window X (B, N, C) is embedded (a circular 1-D convolution of kernel 3, the paper's code's token embedding,
plus sinusoidal positions) and passed through layers of *Anomaly-Attention*, each with two branches:

* the **prior association** P: a learnable scale sigma_i per query position i (a linear projection of the
  layer input, one per head) gives a Gaussian kernel over the distance |i - j|, rescaled so each row sums to 1;
  sigma is mapped to (0, 2.00003] by 3 ** (sigmoid(5 s) + 1e-5) - 1, as in the reference code;
* the **series association** S = softmax(Q K^T / sqrt(d_head)), which also reconstructs (S V).

A linear head reconstructs the window; the model returns the reconstruction and the stacked associations of
every layer (``TransformerOutput``). With ``ssm_branch=True`` a selective state-space block
(``models.state_space.SelectiveStateSpace``, Mamba) reads the embedded window in parallel and a learned gate
fuses the two (the MAAT family, Sellam et al. 2025, arXiv:2502.07858). The association discrepancy, the minimax
training and the anomaly criterion are ``biolatent.anomaly.series_models.anomaly_transformer``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn


def sinusoidal_positions(length: int, d_model: int) -> Tensor:
    """(length, d_model) sine/cosine position encoding of Vaswani et al. 2017."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    encoding = torch.zeros(length, d_model)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)[:, : d_model // 2]
    return encoding


def sigma_from_logits(logits: Tensor) -> Tensor:
    """The reference code's map of a projection to the prior's scale, 3 ** (sigmoid(5 s) + 1e-5) - 1: (0, 2.00003]."""
    return torch.pow(3.0, torch.sigmoid(5.0 * logits) + 1e-5) - 1.0


def gaussian_prior(sigma: Tensor) -> Tensor:
    """(..., N) scales -> (..., N, N) prior association: row i is the Gaussian N(|i - j|; 0, sigma_i) over j,
    rescaled to sum to 1 (a softmax of -|i - j|^2 / (2 sigma_i^2): the 1 / (sqrt(2 pi) sigma_i) cancels)."""
    n = sigma.shape[-1]
    index = torch.arange(n, dtype=sigma.dtype, device=sigma.device)
    distance = (index[:, None] - index[None, :]) ** 2
    return torch.softmax(-distance / (2.0 * sigma[..., None] ** 2), dim=-1)


class AnomalyAttention(nn.Module):
    """Multi-head Anomaly-Attention: returns (S V projected, series association S, prior association P)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.query, self.key, self.value = (nn.Linear(d_model, d_model) for _ in range(3))
        self.sigma = nn.Linear(d_model, n_heads)
        self.out = nn.Linear(d_model, d_model)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)  # (B, H, N, d_head)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        series = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)  # (B, H, N, N)
        prior = gaussian_prior(sigma_from_logits(self.sigma(x)).transpose(1, 2))  # sigma (B, H, N)
        z = (series @ v).transpose(1, 2).reshape(x.shape)
        return self.out(z), series, prior


class EncoderLayer(nn.Module):
    """Anomaly-Attention and a feed-forward block, each with a residual connection and layer norm."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.attention = AnomalyAttention(d_model, n_heads)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout),
                                          nn.Linear(d_ff, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        attended, series, prior = self.attention(x)
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.dropout(self.feed_forward(x))), series, prior


class TransformerOutput(NamedTuple):
    reconstruction: Tensor  # (B, N, C)
    series: Tensor  # (layers, B, heads, N, N)
    priors: Tensor  # (layers, B, heads, N, N)


class AnomalyTransformer(nn.Module):
    """Embedding + ``n_layers`` Anomaly-Attention layers + a linear reconstruction head; windows (B, N, C)."""

    def __init__(self, c_in: int = 1, *, d_model: int = 32, n_layers: int = 2, n_heads: int = 4,
                 d_ff: int | None = None, dropout: float = 0.0, ssm_branch: bool = False, d_state: int = 8) -> None:
        super().__init__()
        if d_model % n_heads or d_model % 2:
            raise ValueError(f"d_model ({d_model}) must be even and divisible by n_heads ({n_heads})")
        self.embedding = nn.Conv1d(c_in, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff or 4 * d_model, dropout)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, c_in)
        self.ssm: nn.Module | None = None
        if ssm_branch:
            from biolatent.models.state_space import SelectiveStateSpace

            self.ssm = SelectiveStateSpace(d_model, d_state=d_state)
            self.gate = nn.Linear(2 * d_model, d_model)

    def forward(self, x: Tensor) -> TransformerOutput:
        h = self.embedding(x.transpose(1, 2)).transpose(1, 2)
        h = self.dropout(h + sinusoidal_positions(x.shape[1], h.shape[-1]).to(h))
        embedded = h
        series, priors = [], []
        for layer in self.layers:
            h, s, p = layer(h)
            series.append(s)
            priors.append(p)
        if self.ssm is not None:
            h_ssm = self.ssm(embedded)
            g = torch.sigmoid(self.gate(torch.cat([h, h_ssm], dim=-1)))
            h = g * h + (1.0 - g) * h_ssm
        return TransformerOutput(self.head(self.norm(h)), torch.stack(series), torch.stack(priors))
