import math

import numpy as np
import pytest
import torch

from biolatent.errors import ConfigError
from biolatent.methods.perturb import DefaultPerturbation
from biolatent.methods.simclr import SimCLR, nt_xent_loss
from biolatent.models.mlp import MLPEncoder


def _nt_xent_reference(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """Chen et al. 2020, Eq. 1: l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t), averaged."""
    z = np.concatenate([a, b])
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = i + n if i < n else i - n
        sims = []
        for k in range(n2):
            num = float(np.dot(z[i], z[k]))
            den = math.sqrt(float(np.dot(z[i], z[i]))) * math.sqrt(float(np.dot(z[k], z[k])))
            sims.append(num / den)
        denominator = sum(math.exp(sims[k] / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(sims[j] / tau) / denominator)
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_matches_double_loop(tau: float) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    got = nt_xent_loss(torch.tensor(a), torch.tensor(b), tau).item()
    assert got == pytest.approx(_nt_xent_reference(a, b, tau), rel=1e-9)


def test_accuracy_metric_and_views() -> None:
    torch.manual_seed(0)
    calls = []

    def identity_views(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return x

    class Views(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return identity_views(x)

    encoder = MLPEncoder(10, hidden_dims=(8,), out_dim=6, dropout=0.0)
    method = SimCLR(encoder, views=Views(), projection_dim=4).eval()
    out = method({"x": torch.rand(5, 10) * 10})
    # identical views: the positive has cosine similarity 1, the maximum
    assert out.metrics["accuracy"] == 1.0 and len(calls) == 2
    assert set(out.metrics) == {"loss", "accuracy"}
    assert method.embed(torch.rand(3, 10)).shape == (3, 6)


def test_default_perturbation_and_errors() -> None:
    torch.manual_seed(0)
    method = SimCLR(MLPEncoder(10, hidden_dims=(8,), out_dim=6))
    assert isinstance(method.views, DefaultPerturbation)
    assert torch.isfinite(method({"x": torch.rand(4, 10)}).loss)
    bases = torch.randint(0, 4, (4, 50))
    bases[:, 40:] = 5
    changed = DefaultPerturbation(substitute=0.5)(bases)
    assert bool((changed[:, 40:] == 5).all()) and bool((changed[:, :40] < 4).all())
    with pytest.raises(ConfigError):
        SimCLR(MLPEncoder(10), temperature=0.0)
