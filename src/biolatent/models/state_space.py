"""A selective state-space block (Mamba's S6 layer) in plain torch, for the series anomaly models.

Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (arXiv:2312.00752), Algorithm 2
and Section 3.4 (block design). For an input sequence u (B, L, D):

1. an input projection gives two streams, x and a gate z, each (B, L, E) with E = ``expand`` * D;
2. x goes through a causal depthwise 1-D convolution (kernel ``conv_kernel``) and SiLU;
3. the *selection*: input-dependent step Delta (B, L, E) = softplus(W_delta(x) + bias), matrices
   B_t, C_t (B, L, N) = linear(x), with a fixed diagonal A = -exp(A_log) (E, N);
4. zero-order-hold discretisation: Abar = exp(Delta A), Bbar x = Delta B x (the simplified Euler form for B that
   the paper's reference implementation uses), and the recurrence per channel e and state n
   h_t = Abar_t * h_{t-1} + Delta_t B_t x_t, y_t = <C_t, h_t> + D_skip * x_t;
5. output = out_proj(y * SiLU(z)).

The scan here is a sequential loop over time (``selective_scan``): exact, O(L) steps, fine for the window
lengths of anomaly detection (tens to hundreds of points); the hardware-aware parallel scan of the paper is a
CUDA kernel, not reproduced. ``selective_scan`` is tested against an independent numpy recurrence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def selective_scan(x: Tensor, delta: Tensor, a: Tensor, b: Tensor, c: Tensor, d_skip: Tensor) -> Tensor:
    """y (B, L, E) of h_t = exp(delta_t A) h_{t-1} + delta_t B_t x_t, y_t = C_t . h_t + D x_t, h_0 = 0.

    Shapes: x, delta (B, L, E); a (E, N) (negative); b, c (B, L, N); d_skip (E,).
    """
    batch, length, channels = x.shape
    state = x.new_zeros(batch, channels, a.shape[1])
    outputs = []
    for t in range(length):
        step = delta[:, t, :, None]  # (B, E, 1)
        state = torch.exp(step * a) * state + step * b[:, t, None, :] * x[:, t, :, None]
        outputs.append((state * c[:, t, None, :]).sum(-1))
    return torch.stack(outputs, dim=1) + x * d_skip


class SelectiveStateSpace(nn.Module):
    """Mamba block (Gu & Dao 2023): (B, L, d_model) -> (B, L, d_model), causal in time."""

    def __init__(self, d_model: int, *, d_state: int = 8, expand: int = 2, conv_kernel: int = 4,
                 dt_rank: int | None = None) -> None:
        super().__init__()
        inner = expand * d_model
        self.dt_rank = dt_rank or max(1, math.ceil(d_model / 16))
        self.in_proj = nn.Linear(d_model, 2 * inner, bias=False)
        self.conv = nn.Conv1d(inner, inner, conv_kernel, groups=inner, padding=conv_kernel - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        # S4D-real initialisation of A (A_n = -(n + 1)) and a step size between 1e-3 and 1e-1 (paper, Section 3.6)
        self.a_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(inner, 1))
        self.d_skip = nn.Parameter(torch.ones(inner))
        with torch.no_grad():
            dt = torch.exp(torch.rand(inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.out_proj = nn.Linear(inner, d_model, bias=False)
        self.d_state = d_state

    def forward(self, u: Tensor) -> Tensor:
        length = u.shape[1]
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = F.silu(self.conv(x.transpose(1, 2))[..., :length].transpose(1, 2))  # causal: drop the right padding
        dt, b, c = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        y = selective_scan(x, delta, -torch.exp(self.a_log), b, c, self.d_skip)
        return self.out_proj(y * F.silu(z))
