"""The Anomaly Transformer: time-series anomaly detection by association discrepancy, in plain torch.

Xu, Wu, Wang & Long 2022, "Anomaly Transformer: Time Series Anomaly Detection with Association Discrepancy",
ICLR 2022 (arXiv:2110.02642); reference code github.com/thuml/Anomaly-Transformer.

A window X (B, N, C) is embedded (a circular 1-D convolution of kernel 3, the paper's code's token embedding,
plus sinusoidal positions) and passed through layers of *Anomaly-Attention*, each with two branches:

* the **prior association** P: a learnable scale sigma_i per query position i (a linear projection of the
  layer input, one per head) gives a Gaussian kernel over the distance |i - j|, rescaled so each row sums to 1;
* the **series association** S = softmax(Q K^T / sqrt(d_head)), which also reconstructs (S V).

A linear head reconstructs the window. The *association discrepancy* of point i is the symmetrised KL
divergence between the rows P_i and S_i, averaged over heads and layers (``association_discrepancy``).
Training is the paper's *minimax* strategy (``minimax_losses``):

* minimise phase: reconstruction + k * AssDis(P, S.detach()) (the prior approaches the series association);
* maximise phase: reconstruction - k * AssDis(P.detach(), S) (the series association is pushed away from the
  prior, towards non-adjacent points, which anomalies cannot do);

both phases' gradients are accumulated into one optimiser step, as in the reference code. The anomaly
criterion of a point is softmax(-AssDis) over the window's time axis times its squared reconstruction error
(``anomaly_criterion``).

With ``ssm_branch=True`` the model follows the MAAT family (Sellam et al. 2025, "MAAT: Mamba Adaptive Anomaly
Transformer with association discrepancy for time series", arXiv:2502.07858): a selective state-space block
(``state_space.SelectiveStateSpace``, Mamba) reads the same embedded window in parallel to the attention stack,
and a learned gate fuses the two representations before the reconstruction head,
g = sigmoid(W [h_attention; h_ssm] + b), h = g * h_attention + (1 - g) * h_ssm (our formulation of MAAT's gated
fusion); the association discrepancy still comes from the Anomaly-Attention layers.

Simplifications, as in the reference code: the mean squared error stands for the paper's squared Frobenius norm
and the mean of AssDis over points for its L1 norm (a constant factor absorbed into k); sigma is mapped to
(0, 2.00003] by 3 ** (sigmoid(5 s) + 1e-5) - 1; the logarithms of the KL divergence add ``KL_EPS`` to both
distributions so that the divergence stays finite where the prior underflows to zero.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biolatent.types import LossOutput

KL_EPS = 1e-4


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


def symmetric_kl(p: Tensor, q: Tensor, eps: float = KL_EPS) -> Tensor:
    """KL(p || q) + KL(q || p) over the last axis (distributions as rows), with ``eps`` added inside the logs."""
    log_ratio = torch.log(p + eps) - torch.log(q + eps)
    return (p * log_ratio).sum(-1) - (q * log_ratio).sum(-1)


def association_discrepancy(priors: Tensor, series: Tensor, eps: float = KL_EPS) -> Tensor:
    """AssDis (B, N) of stacked associations (layers, B, heads, N, N): symmetrised KL per point, averaged over
    heads and layers."""
    return symmetric_kl(priors, series, eps).mean(dim=(0, 2))


def anomaly_criterion(assdis: Tensor, squared_error: Tensor) -> Tensor:
    """AnomalyScore (B, N) = softmax(-AssDis) over the time axis * the per-point squared reconstruction error."""
    return torch.softmax(-assdis, dim=-1) * squared_error


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
            from biolatent.anomaly.series_models.state_space import SelectiveStateSpace

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


def minimax_losses(x: Tensor, output: TransformerOutput, k: float) -> tuple[Tensor, Tensor]:
    """(minimise-phase loss, maximise-phase loss) of the paper's minimax strategy; backpropagate their sum.

    minimise: rec + k * AssDis(P, S.detach()) -> only the prior moves towards the series association;
    maximise: rec - k * AssDis(P.detach(), S) -> the series association moves away from the prior.
    """
    reconstruction = F.mse_loss(output.reconstruction, x)
    to_prior = association_discrepancy(output.priors, output.series.detach()).mean()
    to_series = association_discrepancy(output.priors.detach(), output.series).mean()
    return reconstruction + k * to_prior, reconstruction - k * to_series


class MinimaxMethod(nn.Module):
    """The minimax training of an ``AnomalyTransformer`` as a biolatent Method, so ``biolatent.train.fit`` drives it:
    ``forward(batch)`` takes windows ``batch["x"]`` (B, N) of one channel and returns the sum of the two phases'
    losses (one backward pass accumulates both phases' gradients, as the reference code's two) with the
    reconstruction MSE as a metric."""

    name = "anomaly_transformer"

    def __init__(self, model: AnomalyTransformer, k: float) -> None:
        super().__init__()
        self.model, self.k = model, float(k)

    def forward(self, batch: dict[str, Tensor]) -> LossOutput:
        x = batch["x"].float()[..., None]
        output = self.model(x)
        minimise, maximise = minimax_losses(x, output, self.k)
        reconstruction = float(F.mse_loss(output.reconstruction.detach(), x))
        return LossOutput(minimise + maximise, {"reconstruction": reconstruction})


@torch.no_grad()
def point_anomaly_scores(model: AnomalyTransformer, x: Tensor) -> Tensor:
    """(B, N) anomaly criterion of every point of windows (B, N, C), in eval mode."""
    model.eval()
    output = model(x)
    squared_error = ((x - output.reconstruction) ** 2).mean(-1)
    return anomaly_criterion(association_discrepancy(output.priors, output.series), squared_error)
