import numpy as np
import pytest
import torch
from scipy import stats

from biolatent.data.samples import DataInfo
from biolatent.errors import ConfigError, DataError
from biolatent.methods.vae import VAE, gaussian_kl, gaussian_log_prob, nb_log_prob
from biolatent.models.mlp import MLPEncoder


def test_nb_log_prob_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, size=200).astype(np.float64)
    mu = rng.uniform(0.05, 40.0, size=200)
    theta = rng.uniform(0.1, 20.0, size=200)
    expected = stats.nbinom.logpmf(x, n=theta, p=theta / (theta + mu))
    got = nb_log_prob(torch.tensor(x), torch.tensor(mu), torch.tensor(theta), eps=0.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_gaussian_log_prob_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    x, mean, logvar = rng.normal(size=50), rng.normal(size=50), rng.normal(size=50)
    expected = stats.norm.logpdf(x, loc=mean, scale=np.exp(0.5 * logvar))
    got = gaussian_log_prob(torch.tensor(x), torch.tensor(mean), torch.tensor(logvar)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_kl_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    mu, logvar = torch.randn(7, 4, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(dim=-1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)


def test_check_data_and_encoder_checks() -> None:
    vae = VAE(MLPEncoder(20, hidden_dims=(8,), out_dim=8))
    vae.check_data(DataInfo("counts", n_features=20, is_counts=True))
    with pytest.raises(DataError) as err:
        vae.check_data(DataInfo("counts", n_features=20, is_counts=False))
    assert str(err.value) == (
        "method vae with likelihood 'nb' needs non-negative integer counts; "
        "these values are continuous: set method.likelihood: gaussian"
    )
    VAE(MLPEncoder(20), likelihood="gaussian").check_data(DataInfo("counts", n_features=20))
    with pytest.raises(DataError):
        vae.check_data(DataInfo("counts", n_features=21, is_counts=True))
    with pytest.raises(DataError):
        vae.check_data(DataInfo("dna", max_length=30))
    with pytest.raises(ConfigError, match=r"model\.name: mlp"):
        VAE(torch.nn.Linear(3, 3))


def _simulate(n: int = 256, genes: int = 40, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Two groups with different NB gene programmes and varying library sizes."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 2, size=n)
    profiles = rng.dirichlet(np.full(genes, 0.5), size=2)
    library = rng.lognormal(np.log(400), 0.3, size=n)
    mean = profiles[groups] * library[:, None]
    theta = 5.0
    counts = rng.negative_binomial(theta, theta / (theta + mean))
    return torch.tensor(counts, dtype=torch.float32), groups


@pytest.mark.parametrize("likelihood", [pytest.param("nb", marks=pytest.mark.slow), "gaussian"])
def test_training_increases_elbo(likelihood: str) -> None:
    torch.manual_seed(0)
    x, groups = _simulate()
    if likelihood == "gaussian":
        x = torch.log1p(x)
    transform = "log1p_normalize" if likelihood == "nb" else "none"
    encoder = MLPEncoder(40, hidden_dims=(32,), out_dim=16, dropout=0.0, input_transform=transform)
    vae = VAE(encoder, latent_dim=4, decoder_hidden=32, likelihood=likelihood)
    optimizer = torch.optim.Adam(vae.parameters(), lr=5e-3)

    def elbo() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            return vae({"x": x}).metrics["elbo"]

    before = elbo()
    for _ in range(300):
        batch = x[torch.randint(0, x.shape[0], (64,))]
        out = vae({"x": batch})
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    after = elbo()
    assert after > before + 0.2 * abs(before)
    # the embedding separates the two simulated groups (a centroid classifier on mu)
    vae.eval()
    with torch.no_grad():
        mu = vae.embed(x).numpy()
    c0, c1 = mu[groups == 0].mean(0), mu[groups == 1].mean(0)
    pred = np.linalg.norm(mu - c1, axis=1) < np.linalg.norm(mu - c0, axis=1)
    assert (pred == groups).mean() > 0.9


def test_metrics_and_embed_deterministic() -> None:
    torch.manual_seed(0)
    vae = VAE(MLPEncoder(12, hidden_dims=(8,), out_dim=8), latent_dim=3).eval()
    x = torch.poisson(torch.full((5, 12), 4.0))
    out = vae({"x": x})
    assert set(out.metrics) == {"loss", "elbo", "reconstruction", "kl"}
    assert out.metrics["loss"] == pytest.approx(out.metrics["reconstruction"] + out.metrics["kl"], rel=1e-5)
    assert out.metrics["elbo"] == pytest.approx(-out.metrics["loss"], rel=1e-5)
    torch.testing.assert_close(vae.embed(x), vae.embed(x))
    assert vae.embed(x).shape == (5, 3)
