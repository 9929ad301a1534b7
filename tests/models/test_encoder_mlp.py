import numpy as np
import pytest
import torch

from biolatent.data.samples import DataInfo
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


@pytest.mark.parametrize(("is_counts", "expected"), [(True, "log1p_normalize"), (False, "none")])
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
