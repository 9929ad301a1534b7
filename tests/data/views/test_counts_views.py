"""CountsViews: binomial thinning + gene dropout for counts, scaled noise + mean masking otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolatent.data.views import CountsViews


def poisson_counts(n: int = 64, genes: int = 50, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.poisson(rng.gamma(2.0, 5.0, size=genes), size=(n, genes)).astype(np.float32))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("is_counts", [True, False])
def test_same_seed_same_view_and_shape_dtype(is_counts: bool) -> None:
    x = poisson_counts()
    views = CountsViews(is_counts=is_counts)
    a, b, c = views(x, gen(3)), views(x, gen(3)), views(x, gen(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype
    params = views.sample_params(x.shape[0], "cpu", gen(5), sample_shape=x.shape[1:])
    assert torch.equal(views.apply(x, params), views.apply(x, params))


def test_thinned_counts_are_integers_between_zero_and_input() -> None:
    x = poisson_counts()
    y = CountsViews(is_counts=True)(x, gen(0))
    assert torch.equal(y, y.round())
    assert bool((y >= 0).all() and (y <= x).all())
    assert y.sum() < x.sum()


def test_dropped_genes_are_zero_and_dropout_rate_matches() -> None:
    x = poisson_counts(n=200, genes=100) + 1.0  # no zeros in the input
    views = CountsViews(is_counts=True, keep_range=(1.0, 1.0), gene_dropout=0.2)
    params = views.sample_params(200, "cpu", gen(1), sample_shape=(100,))
    y = views.apply(x, params)
    drop = params["drop"]
    assert torch.equal(y[drop], torch.zeros(int(drop.sum())))
    assert torch.equal(y[~drop], x[~drop])  # p = 1 keeps every count
    assert abs(float((y == 0).float().mean()) - 0.2) < 0.01


def test_binomial_thinning_moments() -> None:
    # Binomial(x, p): mean x p, variance x p (1 - p); checked on one large count per cell
    p, count, n = 0.3, 400.0, 4000
    x = torch.full((n, 1), count)
    y = CountsViews(is_counts=True, keep_range=(p, p), gene_dropout=0.0)(x, gen(2)).squeeze(1).double()
    assert abs(float(y.mean()) - count * p) < 4 * np.sqrt(count * p * (1 - p) / n)
    assert abs(float(y.var()) / (count * p * (1 - p)) - 1) < 0.1


def test_keep_probability_per_sample_in_range_and_scales_depth() -> None:
    x = poisson_counts(n=300, genes=200) + 5.0
    views = CountsViews(is_counts=True, keep_range=(0.5, 1.0), gene_dropout=0.0)
    params = views.sample_params(300, "cpu", gen(7), sample_shape=(200,))
    keep = params["keep_prob"]
    assert bool((keep >= 0.5).all() and (keep <= 1.0).all())
    ratio = views.apply(x, params).sum(1) / x.sum(1)
    assert torch.allclose(ratio, keep, atol=0.03)


def test_continuous_noise_is_scaled_by_batch_gene_std_and_masks_to_batch_mean() -> None:
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(32, 20)) * rng.uniform(0.1, 5.0, size=20) + rng.normal(size=20) * 3
    x = torch.from_numpy(x_np.astype(np.float32))
    views = CountsViews(is_counts=False, gene_dropout=0.25, noise_scale=0.1)
    params = views.sample_params(32, "cpu", gen(0), sample_shape=(20,))
    y = views.apply(x, params).double().numpy()
    xf = x.double().numpy()
    drop, noise = params["drop"].numpy(), params["noise"].double().numpy()
    expected = np.where(drop, xf.mean(axis=0), xf + noise * xf.std(axis=0) * 0.1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert 0.15 < drop.mean() < 0.35


def test_sample_params_needs_a_gene_count() -> None:
    with pytest.raises(ValueError, match="n_features"):
        CountsViews(is_counts=True).sample_params(4, "cpu")
    params = CountsViews(is_counts=True, n_features=7).sample_params(4, "cpu")
    assert params["drop"].shape == (4, 7)


@pytest.mark.parametrize("bad", [{"keep_range": (0.8, 0.2)}, {"gene_dropout": 1.5}, {"noise_scale": -1.0}])
def test_rejects_bad_settings(bad: dict) -> None:
    with pytest.raises(ValueError):
        CountsViews(is_counts=True, **bad)
