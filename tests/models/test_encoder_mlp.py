import numpy as np
import pytest
import torch

from biolatent.data.samples import DataInfo
from biolatent.errors import ConfigError
from biolatent.models.mlp import MLPEncoder, log1p_normalize


def test_log1p_normalize_matches_formula() -> None:
    rng = np.random.default_rng(0)
    x = rng.poisson(3.0, size=(5, 7)).astype(np.float64)
    x[2] = 0.0  # an empty row stays zero
    expected = np.zeros_like(x)
    for i in range(x.shape[0]):
        total = x[i].sum()
        for j in range(x.shape[1]):
            expected[i, j] = np.log(1.0 + (x[i, j] / total * 1e4 if total > 0 else 0.0))
    got = log1p_normalize(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize(("is_counts", "expected"), [(True, "log1p_normalize"), (False, "standardize")])
def test_from_data_resolves_auto(is_counts: bool, expected: str) -> None:
    info = DataInfo("counts", n_features=12, is_counts=is_counts)
    enc = MLPEncoder.from_data(info, hidden_dims=(8,), out_dim=4)
    assert enc.input_transform == expected and enc.in_dim == 12 and enc.out_dim == 4
    assert MLPEncoder.from_data(info, input_transform="log1p").input_transform == "log1p"


def test_transform_applied_inside_forward() -> None:
    torch.manual_seed(0)
    enc = MLPEncoder(6, hidden_dims=(5,), out_dim=3, dropout=0.0, input_transform="log1p_normalize").eval()
    plain = MLPEncoder(6, hidden_dims=(5,), out_dim=3, dropout=0.0, input_transform="none").eval()
    plain.load_state_dict(enc.state_dict())
    x = torch.poisson(torch.full((4, 6), 5.0))
    torch.testing.assert_close(enc(x), plain(log1p_normalize(x)))
    assert enc(x).shape == (4, 3)


def _offset_genes(n: int = 40, genes: int = 6) -> torch.Tensor:
    """Genes with offsets 5..12 and SDs 0.1..2; gene 2 is constant."""
    gen = torch.Generator().manual_seed(0)
    offsets = torch.linspace(5.0, 12.0, genes)
    sds = torch.linspace(0.1, 2.0, genes)
    x = offsets + sds * torch.randn(n, genes, generator=gen)
    x[:, 2] = 7.5
    return x


def test_standardize_uses_training_statistics_and_constant_genes_get_scale_one() -> None:
    x = _offset_genes().double()
    enc = MLPEncoder(6, hidden_dims=(5,), out_dim=3, input_transform="standardize")
    with pytest.raises(RuntimeError, match="fit_input_statistics"):
        enc(x)  # an unfitted standardising encoder never silently passes raw values through
    enc.fit_input_statistics(x.float())
    values = x.numpy()
    mean, sd = values.mean(axis=0), values.std(axis=0)  # population SD, by numpy
    sd[2] = 1.0
    np.testing.assert_allclose(enc.input_mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(enc.input_scale.numpy(), sd, rtol=1e-5)
    z = enc.transform(x.float()).numpy()
    np.testing.assert_allclose(z[:, [0, 1, 3, 4, 5]].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z[:, [0, 1, 3, 4, 5]].std(axis=0), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(z[:, 2], 0.0)


def test_statistics_travel_with_the_weights() -> None:
    x = _offset_genes()
    torch.manual_seed(0)
    trained = MLPEncoder(6, hidden_dims=(5,), out_dim=3, dropout=0.0, input_transform="standardize")
    trained.fit_input_statistics(x)
    fresh = MLPEncoder(6, hidden_dims=(5,), out_dim=3, dropout=0.0, input_transform="standardize")
    fresh.load_state_dict(trained.state_dict())  # what load_weights does for embed / evaluate
    assert {"input_mean", "input_scale"} <= set(trained.state_dict())
    torch.testing.assert_close(fresh.eval()(x[:5] + 1.0), trained.eval()(x[:5] + 1.0))
    old = {k: v for k, v in trained.state_dict().items() if not k.startswith("input_")}  # weights of an older run
    with pytest.raises(ConfigError, match=r"no input statistics.*input_transform: none"):
        fresh.load_state_dict(old)
    # other transforms have no statistics to fit or carry
    plain = MLPEncoder(6, input_transform="none")
    plain.fit_input_statistics(x)
    assert "input_mean" not in plain.state_dict()
