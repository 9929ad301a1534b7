import math

import numpy as np
import pandas as pd
import pytest
import torch

from biolatent.data.samples import DataInfo, SampleSet
from biolatent.errors import ConfigError, DataError
from biolatent.methods.micle import MICLe, distinct_pairs
from biolatent.methods.simclr import SimCLR
from biolatent.models.cine import CineEncoder
from biolatent.models.resnet import ResNetEncoder


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _nt_xent_reference(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """Chen et al. 2020, Eq. 1 with anchors = views of x and positives = views of x_pair, as loops."""
    z = np.concatenate([a, b])
    n2, n = z.shape[0], z.shape[0] // 2
    total = 0.0
    for i in range(n2):
        j = i + n if i < n else i - n
        sims = [float(np.dot(z[i], z[k])) / math.sqrt(float(np.dot(z[i], z[i])) * float(np.dot(z[k], z[k])))
                for k in range(n2)]
        denominator = sum(math.exp(sims[k] / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(sims[j] / tau) / denominator)
    return total / n2


def _image_micle(**kwargs) -> MICLe:
    encoder = ResNetEncoder(3, 2, widths=(4, 8), blocks=(1, 1))
    return MICLe(encoder, **({"projection_dim": 4, "views": Identity()} | kwargs))


def test_loss_is_nt_xent_between_image_and_its_pair() -> None:
    torch.manual_seed(0)
    method = _image_micle().eval()
    x, pair = torch.rand(5, 3, 16, 16), torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        a = method.projector(method.encoder(x)).numpy().astype(np.float64)
        b = method.projector(method.encoder(pair)).numpy().astype(np.float64)
        out = method({"x": x, "x_pair": pair, "index": torch.arange(5), "index_pair": torch.arange(5, 10)})
    assert out.loss.item() == pytest.approx(_nt_xent_reference(a, b, 0.1), rel=1e-5)
    assert out.metrics["distinct_pairs"] == 1.0


def test_pairs_are_used_unlike_simclr() -> None:
    torch.manual_seed(0)
    method = _image_micle().eval()
    simclr = SimCLR(method.encoder, views=Identity(), projection_dim=4).eval()
    simclr.projector.load_state_dict(method.projector.state_dict())
    x = torch.rand(4, 3, 16, 16) * torch.tensor([0.1, 1.0, 3.0, 9.0])[:, None, None, None]
    with torch.no_grad():
        reference = simclr({"x": x}).loss.item()
        same = method({"x": x, "x_pair": x.clone()}).loss.item()
        other = method({"x": x, "x_pair": x.roll(1, 0)}).loss.item()
    assert same == pytest.approx(reference, rel=1e-6)  # every subject alone: MICLe is SimCLR
    assert other > reference + 0.5  # the pair (here another image) is the positive, not a view of x


def test_distinct_pairs_metric() -> None:
    x = torch.rand(4, 2)
    batch = {"x": x, "x_pair": x.clone(), "index": torch.arange(4), "index_pair": torch.tensor([0, 3, 2, 1])}
    assert distinct_pairs(batch) == 0.5
    pair = x.clone()
    pair[0] += 1.0
    assert distinct_pairs({"x": x, "x_pair": pair}) == 0.25  # no indices: compare the images


def test_errors_without_pairs() -> None:
    method = _image_micle()
    with pytest.raises(ConfigError, match=r"data\.group_column"):
        method({"x": torch.rand(4, 3, 16, 16)})
    with pytest.raises(DataError, match="shape"):
        method({"x": torch.rand(4, 3, 16, 16), "x_pair": torch.rand(3, 3, 16, 16)})
    with pytest.raises(ConfigError, match="batch_size"):
        method({"x": torch.rand(1, 3, 16, 16), "x_pair": torch.rand(1, 3, 16, 16)})
    with pytest.raises(ConfigError, match="temperature"):
        _image_micle(temperature=0.0)
    info = DataInfo("image2d", channels=3, image_size=16, spatial_dims=2)
    obs = pd.DataFrame(index=[f"s{i}" for i in range(4)])
    with pytest.raises(DataError, match=r"data\.group_column"):
        method.check_samples(SampleSet(info, torch.rand(4, 3, 16, 16), obs))
    method.check_samples(SampleSet(info, torch.rand(4, 3, 16, 16), obs, groups=torch.tensor([0, 0, 1, 1])))


def test_cine_seeding() -> None:
    encoder = CineEncoder(4, widths=(4, 8), blocks=(1, 1), temporal_heads=2)
    method = MICLe(encoder, projection_dim=4).train()  # default views: random perturbation
    x, pair = torch.rand(3, 4, 8, 8, 8), torch.rand(3, 4, 8, 8, 8)
    losses = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        losses.append(method({"x": x, "x_pair": pair}).loss.item())
    assert losses[0] == losses[1] and losses[0] != losses[2]
