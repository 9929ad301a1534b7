"""ConvAE / ConvVAE / CeVAE: each loss against an independent computation, the ELBO gradient against finite
differences, the blur against scipy, and one-line errors for impossible settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from biolatent.anomaly.image.autoencoders import ConvAE, ConvVAE
from biolatent.anomaly.image.cevae import CeVAE, gaussian_blur, minmax_per_image
from biolatent.errors import ConfigError
from biolatent.models.conv_encoder import ConvEncoder

SMALL = {"image_size": 32, "widths": (4, 8), "latent_dim": 3}


class Constant(nn.Module):
    """A decoder that ignores z and outputs ``value`` everywhere (a known reconstruction)."""

    def __init__(self, value: float, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.value, self.shape = value, shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.full((z.shape[0], *self.shape), self.value)


def _images(n: int = 4, channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, 32, 32, generator=torch.Generator().manual_seed(seed))


def _fix_posterior(model: ConvVAE, mu: np.ndarray, logvar: np.ndarray) -> None:
    """Make q(z|x) = N(mu, exp(logvar)) for every x: zero weights, chosen biases."""
    with torch.no_grad():
        model.to_latent.weight.zero_()
        model.to_latent.bias.copy_(torch.tensor(np.r_[mu, logvar], dtype=torch.float32))


def test_ae_loss_is_mse_of_a_known_reconstruction():
    torch.manual_seed(0)
    model = ConvAE(None, in_channels=2, **SMALL)
    model.decoder = Constant(0.3, (2, 32, 32))
    x = _images(channels=2)
    loss = model({"x": x}).loss
    expected = float(((x.numpy() - 0.3) ** 2).mean())
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() == pytest.approx(float(nn.functional.mse_loss(torch.full_like(x, 0.3), x)), rel=1e-6)


def test_ae_shapes_and_embedding():
    torch.manual_seed(0)
    model = ConvAE(None, **SMALL)
    x = _images()
    assert model.reconstruct(x).shape == x.shape
    assert model.embed(x).shape == (4, 3)
    assert model.anomaly_map(x).shape == (4, 32, 32)
    with torch.no_grad():
        assert model({"x": x}).loss.item() == pytest.approx(float(nn.functional.mse_loss(model.reconstruct(x), x)))


def test_vae_loss_against_closed_form_kl():
    torch.manual_seed(0)
    model = ConvVAE(None, beta=0.7, **SMALL)
    model.decoder = Constant(0.5, (1, 32, 32))
    mu, logvar = np.array([0.3, -1.2, 2.0]), np.array([-0.5, 0.4, -2.0])
    _fix_posterior(model, mu, logvar)
    x = _images()
    out = model({"x": x})
    kl = 0.5 * np.sum(np.exp(logvar) + mu**2 - 1.0 - logvar)  # KL(N(mu, s^2) || N(0, 1)), by hand
    sse = ((x.numpy().astype(np.float64) - 0.5) ** 2).reshape(4, -1).sum(axis=1)
    expected = np.mean(sse + 0.7 * kl) / (32 * 32)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert out.metrics["kl"] == pytest.approx(kl, rel=1e-5)
    q = torch.distributions.Normal(torch.tensor(mu), torch.tensor(np.exp(0.5 * logvar)))
    reference = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum()
    assert kl == pytest.approx(float(reference), rel=1e-9)


def test_vae_loss_uses_one_reparameterised_sample():
    torch.manual_seed(0)
    model = ConvVAE(None, beta=1.0, **SMALL)
    x = _images()
    torch.manual_seed(7)
    loss = model({"x": x}).loss.item()
    torch.manual_seed(7)
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape)
        x_hat = model.decode(z)
        kl = 0.5 * (torch.exp(logvar) + mu**2 - 1 - logvar).sum(dim=1)
        expected = float((((x_hat - x) ** 2).sum(dim=(1, 2, 3)) + kl).mean() / 1024)
    assert loss == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(model.reconstruct(x).numpy(), model.decode(mu).numpy(), rtol=0, atol=0)
        assert torch.equal(model.embed(x), mu)


@pytest.mark.parametrize("ce_factor", [0.0, 0.25, 1.0])
def test_cevae_loss_mixes_vae_and_context_terms(ce_factor):
    torch.manual_seed(0)
    model = CeVAE(None, beta=0.5, ce_factor=ce_factor, **SMALL)
    model.decoder = Constant(0.4, (1, 32, 32))
    mu, logvar = np.array([1.0, 0.0, -0.5]), np.array([0.2, -0.3, 0.0])
    _fix_posterior(model, mu, logvar)
    x = _images()
    kl = 0.5 * np.sum(np.exp(logvar) + mu**2 - 1.0 - logvar)
    sse = ((x.numpy().astype(np.float64) - 0.4) ** 2).reshape(4, -1).sum(axis=1)
    vae, ce = np.mean(sse + 0.5 * kl) / 1024, np.mean(sse) / 1024
    expected = (1 - ce_factor) * vae + ce_factor * ce
    assert model({"x": x}).loss.item() == pytest.approx(expected, rel=1e-5)


def test_cevae_context_term_reconstructs_the_original_from_the_corrupted_copy():
    torch.manual_seed(0)
    model = CeVAE(None, ce_factor=1.0, **SMALL)
    x = _images()
    torch.manual_seed(3)
    loss = model({"x": x}).loss.item()
    torch.manual_seed(3)  # documented order of draws: rectangles, VAE eps, context eps
    with torch.no_grad():
        corrupted = model.context_corrupt(x)
        torch.randn(4, 3)
        mu, logvar = model.posterior(corrupted)
        x_hat = model.decode(mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape))
    assert not torch.equal(corrupted, x)
    assert loss == pytest.approx(float(((x_hat - x) ** 2).sum(dim=(1, 2, 3)).mean() / 1024), rel=1e-5)


def test_context_corruption_is_rectangles_of_constants():
    torch.manual_seed(1)
    model = CeVAE(None, max_squares=2, **SMALL)
    x = _images(n=8)
    before = x.clone()
    corrupted = model.context_corrupt(x)
    assert torch.equal(x, before)  # the input is not modified
    for b in range(8):
        changed = (corrupted[b, 0] != x[b, 0]).numpy()
        assert changed.sum() >= 16  # >= one rectangle of side >= 32 // 8
        values = np.unique(corrupted[b, 0].numpy()[changed])
        assert 1 <= len(values) <= 2
        for value in values:  # each constant's pixels fill their bounding box, minus what a later one covered
            rows, cols = np.nonzero(corrupted[b, 0].numpy() == value)
            box = corrupted[b, 0, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].numpy()
            assert np.isin(box, values).all()


def test_elbo_gradient_matches_finite_differences():
    torch.manual_seed(0)
    model = CeVAE(None, beta=0.5, **SMALL).double()
    x = _images(n=2).double()
    grad = model.elbo_gradient(x)
    assert all(p.grad is None for p in model.parameters())
    step = 1e-6
    for b, i, j in [(0, 5, 7), (1, 16, 16), (1, 30, 2)]:
        plus, minus = x.clone(), x.clone()
        plus[b, 0, i, j] += step
        minus[b, 0, i, j] -= step
        with torch.no_grad():
            fd = (model.negative_elbo(plus, sample=False)[b] - model.negative_elbo(minus, sample=False)[b]) / (2 * step)
        assert float(grad[b, i, j]) == pytest.approx(abs(float(fd)), rel=1e-4, abs=1e-9)


def test_cevae_score_modes():
    torch.manual_seed(0)
    model = CeVAE(None, grad_sigma=1.5, **SMALL)
    x = _images(n=2)
    assert model.score_mode == "combi"  # the default
    model.score_mode = "rec"
    rec = model.anomaly_map(x)
    with torch.no_grad():
        np.testing.assert_allclose(rec.numpy(), (x - model.reconstruct(x)).abs().mean(1).numpy(), rtol=1e-6)
    model.score_mode = "grad"
    grad = model.anomaly_map(x)
    expected = gaussian_blur(minmax_per_image(model.elbo_gradient(x)), 1.5)
    np.testing.assert_allclose(grad.numpy(), expected.numpy(), rtol=1e-6)
    model.score_mode = "combi"
    np.testing.assert_allclose(model.anomaly_map(x).numpy(), (rec * grad).numpy(), rtol=1e-5, atol=1e-9)


def test_gaussian_blur_equals_scipy():
    maps = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sigma in (1.0, 2.0):
        expected = np.stack([ndimage.gaussian_filter(m, sigma, mode="mirror", truncate=3.0) for m in maps.numpy()])
        np.testing.assert_allclose(gaussian_blur(maps, sigma).numpy(), expected, rtol=1e-10, atol=1e-12)
    assert torch.equal(gaussian_blur(maps, 0.0), maps)


def test_minmax_per_image():
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[4.0, 4.0], [4.0, 4.0]]])
    out = minmax_per_image(maps)
    assert torch.equal(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (ConvAE, {"image_size": 48}, "power of two >= 32"),
        (ConvAE, {"image_size": 16}, "power of two >= 32"),
        (ConvAE, {"image_size": 32, "widths": (4, 4, 4, 4, 4)}, "less than 2x2"),
        (ConvVAE, {"beta": -1.0}, "beta must be >= 0"),
        (CeVAE, {"ce_factor": 1.5}, "ce_factor must be in"),
        (CeVAE, {"score_mode": "max"}, "score_mode must be one of"),
    ],
)
def test_bad_settings_raise_config_error(cls, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        cls(None, **kwargs)


def test_given_encoder_is_used_and_needs_out_dim():
    encoder = ConvEncoder(1, 32, (2,))
    model = ConvAE(encoder, **SMALL)
    assert model.encoder is encoder and model.to_latent.in_features == 2 * 16 * 16
    assert model.reconstruct(_images()).shape == (4, 1, 32, 32)
    with pytest.raises(ConfigError, match="out_dim"):
        ConvAE(nn.Flatten(), **SMALL)
