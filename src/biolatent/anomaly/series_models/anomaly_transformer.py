"""The Anomaly Transformer: time-series anomaly detection by association discrepancy, in plain torch: its training
and anomaly criterion (the network is ``biolatent.models.anomaly_transformer``).

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
(``models.state_space.SelectiveStateSpace``, Mamba) reads the same embedded window in parallel to the attention stack,
and a learned gate fuses the two representations before the reconstruction head,
g = sigmoid(W [h_attention; h_ssm] + b), h = g * h_attention + (1 - g) * h_ssm (our formulation of MAAT's gated
fusion); the association discrepancy still comes from the Anomaly-Attention layers.

Simplifications, as in the reference code: the mean squared error stands for the paper's squared Frobenius norm
and the mean of AssDis over points for its L1 norm (a constant factor absorbed into k); sigma is mapped to
(0, 2.00003] by 3 ** (sigmoid(5 s) + 1e-5) - 1; the logarithms of the KL divergence add ``KL_EPS`` to both
distributions so that the divergence stays finite where the prior underflows to zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biolatent.models.anomaly_transformer import AnomalyTransformer, TransformerOutput
from biolatent.types import LossOutput

KL_EPS = 1e-4


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
