"""Diffusion anomaly detectors (``ddpm``, ``masked_diffusion``): the schedules against independent numpy / math
computations, ``q_sample`` against its closed form, both losses against hand recomputations, DDIM / ancestral
reconstruction with a zero and an oracle denoiser, deterministic maps, and a small end-to-end fit on healthy
simulated slices that localises planted lesions; weights-only save/load through ``ImageReconstructionDetector``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from biolatent.anomaly.image.ddpm import DDPMAnomaly, from_model, make_betas, to_model
from biolatent.anomaly.image.detector import ImageReconstructionDetector
from biolatent.anomaly.image.masked_diffusion import MaskedDiffusionAnomaly
from biolatent.data.simulate.lesions2d import simulate_slices
from biolatent.errors import ConfigError
from biolatent.models.time_unet import TimeUNet, sinusoidal_embedding

SMALL = {"image_size": 32, "widths": (4, 8)}


def _images(n: int = 4, channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, 32, 32, generator=torch.Generator().manual_seed(seed))


def _randomise(model: nn.Module, seed: int = 0, scale: float = 0.2) -> None:
    """Non-zero weights everywhere (the U-Net's last conv starts at zero), so losses depend on the network."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=generator))


class Oracle(nn.Module):
    """A denoiser that knows the clean images x0 (model space): eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""

    def __init__(self, x0: torch.Tensor, abar: np.ndarray) -> None:
        super().__init__()
        self.x0, self.abar = x0, torch.tensor(abar, dtype=torch.float32)

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].view(-1, 1, 1, 1)
        return (xt - a.sqrt() * self.x0) / (1 - a).sqrt()


def _linear_abar_by_hand(timesteps: int) -> tuple[list[float], list[float]]:
    low, high = 0.1 / timesteps, 20.0 / timesteps  # 1e-4 * 1000 / T and 0.02 * 1000 / T
    betas = [low + (high - low) * i / (timesteps - 1) for i in range(timesteps)]
    abar, product = [], 1.0
    for beta in betas:
        product *= 1.0 - beta
        abar.append(product)
    return betas, abar


def test_linear_and_cosine_schedules_match_independent_computations():
    betas, abar = _linear_abar_by_hand(200)
    model = DDPMAnomaly(None, **SMALL, timesteps=200, schedule="linear")
    np.testing.assert_allclose(model.betas.numpy(), betas, rtol=1e-6)
    np.testing.assert_allclose(model.alphas_cumprod.numpy(), abar, rtol=1e-5)
    assert abar[-1] < 1e-4  # the rescaled chain still ends near pure noise
    # cosine (Nichol & Dhariwal 2021): abar_t = f(t+1) / f(0), f(s) = cos(((s/T + 0.008) / 1.008) pi / 2)^2
    f = [math.cos(((s / 50 + 0.008) / 1.008) * math.pi / 2) ** 2 for s in range(51)]
    expected = [f[t + 1] / f[0] for t in range(50)]
    cosine = DDPMAnomaly(None, **SMALL, timesteps=50, schedule="cosine")
    np.testing.assert_allclose(cosine.alphas_cumprod.numpy()[:-1], expected[:-1], rtol=1e-5)
    assert cosine.betas[-1].item() == pytest.approx(0.999)  # the last beta is clipped
    np.testing.assert_allclose(make_betas(50, "cosine")[:-1], [1 - expected[0]] + [
        1 - expected[t] / expected[t - 1] for t in range(1, 49)], rtol=1e-9)


def test_q_sample_closed_form_exact_and_in_distribution():
    model = DDPMAnomaly(None, **SMALL, timesteps=100)
    _, abar = _linear_abar_by_hand(100)
    x0 = to_model(_images(3))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 37, 99])
    expected = np.stack([math.sqrt(abar[s]) * x0[i].numpy() + math.sqrt(1 - abar[s]) * noise[i].numpy()
                         for i, s in enumerate(t.tolist())])
    np.testing.assert_allclose(model.q_sample(x0, t, noise).numpy(), expected, rtol=1e-5, atol=1e-6)
    # many draws of one pixel value: mean sqrt(abar_t) x0, variance 1 - abar_t
    draws = 200_000
    value, step = 0.6, 30
    eps = torch.randn(draws, 1, 1, 1, generator=torch.Generator().manual_seed(2))
    xt = model.q_sample(torch.full((draws, 1, 1, 1), value), torch.full((draws,), step), eps).flatten().double()
    assert xt.mean().item() == pytest.approx(math.sqrt(abar[step]) * value, abs=4 * math.sqrt(1 / draws))
    assert xt.var().item() == pytest.approx(1 - abar[step], rel=0.02)


def test_ddpm_loss_equals_an_independent_epsilon_mse():
    model = DDPMAnomaly(None, **SMALL, timesteps=100)
    _randomise(model.unet)
    x = _images(4)
    t = torch.tensor([3, 50, 99, 0])
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    _, abar = _linear_abar_by_hand(100)
    a = torch.tensor([abar[s] for s in t.tolist()], dtype=torch.float32).view(-1, 1, 1, 1)
    xt = a.sqrt() * (2 * x - 1) + (1 - a).sqrt() * noise
    with torch.no_grad():
        expected = ((model.unet(xt, t) - noise) ** 2).mean().item()
        assert model.loss(x, t, noise).item() == pytest.approx(expected, rel=1e-5)
        # forward draws t then the noise from the torch RNG
        torch.manual_seed(11)
        out = model({"x": x})
        torch.manual_seed(11)
        t2 = torch.randint(0, 100, (4,))
        assert out.loss.item() == pytest.approx(model.loss(x, t2, torch.randn_like(x)).item(), rel=1e-6)
    assert out.metrics["loss"] == pytest.approx(out.loss.item())


def test_masked_diffusion_mask_target_and_losses_by_hand():
    model = MaskedDiffusionAnomaly(None, **SMALL, timesteps=100, patch_size=4, mask_ratio=1.0, mask_weight=0.7)
    _randomise(model.unet, seed=3)
    x = _images(2)
    # the mask: constant on the 4x4 grid, 0/1, masked fraction ~ E[r] = mask_ratio / 2
    mask = model.draw_mask(x, torch.Generator().manual_seed(0))
    assert mask.shape == (2, 1, 32, 32) and set(mask.unique().tolist()) <= {0.0, 1.0}
    blocks = mask.view(2, 1, 8, 4, 8, 4)
    assert bool((blocks == blocks[:, :, :, :1, :, :1]).all())
    many = model.draw_mask(torch.zeros(4000, 1, 32, 32), torch.Generator().manual_seed(1))
    assert many.mean().item() == pytest.approx(0.5, abs=0.02)
    # losses for fixed draws, recomputed by hand
    t = torch.tensor([10, 80])
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    _, abar = _linear_abar_by_hand(100)
    m, x0 = mask.numpy(), 2 * x.numpy() - 1
    a = np.array([abar[s] for s in t.tolist()]).reshape(-1, 1, 1, 1)
    xt = m * (np.sqrt(a) * x0 + np.sqrt(1 - a) * noise.numpy()) + (1 - m) * x0
    assert np.array_equal(xt[m == 0], x0[m == 0])  # unmasked pixels stay clean
    with torch.no_grad():
        out = model.unet(torch.tensor(xt, dtype=torch.float32), t).double().numpy()
        mse, bce = model.masked_terms(x, t, noise, mask)
    eps_hat, logit = out[:, :1], out[:, 1:]
    expected_mse = (m * (eps_hat - noise.numpy()) ** 2).sum() / m.sum()
    p = 1 / (1 + np.exp(-logit))
    expected_bce = -(m * np.log(p) + (1 - m) * np.log(1 - p)).mean()
    assert mse.item() == pytest.approx(expected_mse, rel=1e-4)
    assert bce.item() == pytest.approx(expected_bce, rel=1e-4)
    with torch.no_grad():
        assert model.loss(x, t, noise, mask).item() == pytest.approx(expected_mse + 0.7 * expected_bce, rel=1e-4)
        torch.manual_seed(3)
        result = model({"x": x})
        torch.manual_seed(3)
        t2, noise2 = torch.randint(0, 100, (2,)), torch.randn_like(x)
        assert result.loss.item() == pytest.approx(model.loss(x, t2, noise2, model.draw_mask(x)).item(), rel=1e-6)
    assert set(result.metrics) == {"loss", "mse", "bce"}


def test_reconstruction_with_zero_and_oracle_denoisers():
    x = _images(3)
    # the untrained U-Net predicts eps = 0: DDIM gives clip(x_k / sqrt(abar_k)) in model space
    model = DDPMAnomaly(None, **SMALL, timesteps=100, noise_level=0.3, sampling_steps=4, score_seed=7)
    k = model.start_step
    assert k == 29 and model.sampling_schedule() == [29, 19, 10, 0]
    field = torch.randn((1, 1, 32, 32), generator=torch.Generator().manual_seed(7))
    _, abar = _linear_abar_by_hand(100)
    expected = from_model((to_model(x) + math.sqrt((1 - abar[k]) / abar[k]) * field).clamp(-1, 1))
    torch.testing.assert_close(model.reconstruct(x), expected, rtol=1e-5, atol=1e-5)
    # a denoiser that knows x0 brings both samplers back to x exactly: the map is zero
    for sampler in ("ddim", "ddpm"):
        oracle = DDPMAnomaly(Oracle(to_model(x), np.array(abar)), **SMALL, timesteps=100, sampler=sampler)
        assert oracle.anomaly_map(x).abs().max().item() < 1e-4


def test_anomaly_maps_are_deterministic_and_batch_independent():
    x = _images(3)
    for model in (DDPMAnomaly(None, **SMALL, timesteps=20, n_samples=2, sampler="ddpm"),
                  MaskedDiffusionAnomaly(None, **SMALL, timesteps=20, n_samples=2)):
        _randomise(model.unet, seed=1, scale=0.02)  # small outputs: x0_hat is not clipped everywhere
        if isinstance(model, MaskedDiffusionAnomaly):
            with torch.no_grad():
                model.unet.out.bias[1] = 5.0  # m ~ 0.99: denoise (almost) everywhere, so the noise matters
        model.eval()
        maps = model.anomaly_map(x)
        assert maps.shape == (3, 32, 32) and bool(torch.isfinite(maps).all()) and maps.min() >= 0
        torch.testing.assert_close(model.anomaly_map(x), maps, rtol=0, atol=0)
        torch.testing.assert_close(model.anomaly_map(x[1:2]), maps[1:2], rtol=1e-5, atol=1e-6)
        model.score_seed = 1
        assert not torch.allclose(model.anomaly_map(x), maps)


def test_masked_map_formula():
    model = MaskedDiffusionAnomaly(None, **SMALL, timesteps=50, mask_score_weight=0.3)
    _randomise(model.unet, seed=2, scale=0.04)
    x = _images(2)
    recon, m0 = model.reconstruct_with_mask(x)
    expected = 0.7 * (x - recon).abs().mean(dim=1) + 0.3 * model.predict_mask(x)[:, 0]
    torch.testing.assert_close(model.anomaly_map(x), expected)
    assert bool(((m0 > 0) & (m0 < 1)).all())


def test_unet_shapes_and_time_embedding():
    emb = sinusoidal_embedding(torch.tensor([0, 5]), 6)
    freqs = [10000 ** (-i / 3) for i in range(3)]
    expected = [[math.sin(5 * f) for f in freqs] + [math.cos(5 * f) for f in freqs]]
    np.testing.assert_allclose(emb[1:].numpy(), expected, rtol=1e-5)
    net = TimeUNet(3, 4, 32, (4, 8, 8))
    _randomise(net)
    out = net(torch.randn(2, 3, 32, 32), torch.tensor([1, 2]))
    assert out.shape == (2, 4, 32, 32)
    assert not torch.allclose(out[0], net(torch.randn(2, 3, 32, 32), torch.tensor([9, 2]))[0])


def test_bad_settings_are_one_line_config_errors():
    cases = [({"noise_level": 0.0}, "noise_level"), ({"timesteps": 1}, "timesteps"), ({"sampler": "euler"}, "sampler"),
             ({"widths": (4, 8, 8, 8, 8)}, "widths"), ({"image_size": 34, "widths": (4, 8, 8)}, "divisible by 4"),
             ({"schedule": "sigmoid"}, "schedule")]
    for bad, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            DDPMAnomaly(None, **{**SMALL, **bad})
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="patch_size"):
        MaskedDiffusionAnomaly(None, **SMALL, patch_size=5)
    with pytest.raises(ConfigError, match="mask_score_weight"):
        MaskedDiffusionAnomaly(None, **SMALL, mask_score_weight=1.5)
    with pytest.raises(ConfigError, match="unknown 'masked_diffusion' hyper-parameter\\(s\\) sampler"):
        ImageReconstructionDetector("masked_diffusion", sampler="ddpm")


@pytest.fixture(scope="module")
def slices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    healthy = simulate_slices(32, 32, seed=0)[0]
    images, masks = simulate_slices(12, 32, lesions=True, seed=1)
    return healthy, images, masks


def _pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(masks.ravel(), maps.ravel()))


@pytest.mark.slow
def test_ddpm_fitted_on_healthy_slices_localises_lesions(slices):
    healthy, images, masks = slices
    detector = ImageReconstructionDetector("ddpm", widths=(8, 16), timesteps=100)
    detector.fit(healthy, epochs=60, batch_size=8, lr=5e-3, seed=0, accelerator="cpu")
    maps = detector.score_maps(images)
    assert maps.shape == (12, 32, 32)
    assert _pixel_auroc(maps, masks) > 0.75  # measured 0.865, 0.831, 0.859 (seeds 0-2); loss ratio <= 0.064
    assert detector.history["loss"].iloc[-1] < detector.history["loss"].iloc[0] / 4


@pytest.mark.parametrize("kind", ["ddpm", "masked_diffusion"])
def test_save_load_round_trip_gives_identical_maps(kind, slices, tmp_path):
    healthy, images, _ = slices
    detector = ImageReconstructionDetector(kind, widths=(4, 8), timesteps=20, sampling_steps=3)
    detector.fit(healthy[:8], epochs=1, batch_size=4, seed=1, accelerator="cpu")
    maps = detector.score_maps(images[:3])
    folder = detector.save(tmp_path / kind)
    loaded = ImageReconstructionDetector.load(folder)
    assert loaded.params == detector.params and loaded.params["widths"] == [4, 8]
    np.testing.assert_array_equal(loaded.score_maps(images[:3]), maps)
    np.testing.assert_array_equal(loaded.score(images[:3]), detector.score(images[:3]))


@pytest.mark.slow
def test_masked_diffusion_mask_head_finds_diffused_patches_on_unseen_slices(slices):
    """The mask head, trained on healthy slices, localises diffused patches of held-out healthy slices."""
    from biolatent.anomaly.image.ddpm import to_model

    healthy = slices[0]
    detector = ImageReconstructionDetector("masked_diffusion", widths=(8, 16), timesteps=100)
    detector.fit(healthy, epochs=60, batch_size=8, lr=5e-3, seed=0, accelerator="cpu")
    model = detector.method
    held_out = torch.from_numpy(simulate_slices(8, 32, seed=3)[0])
    generator = torch.Generator().manual_seed(0)
    mask = model.draw_mask(held_out, generator)
    noise = torch.randn(held_out.shape, generator=generator)
    t = torch.full((8,), model.start_step)
    x0 = to_model(held_out)
    with torch.no_grad():
        logit = model.split(model.unet(mask * model.q_sample(x0, t, noise) + (1 - mask) * x0, t))[1]
    assert _pixel_auroc(torch.sigmoid(logit).numpy(), mask.numpy() > 0.5) > 0.9  # measured 0.993-0.999 (seeds 0-2)
    assert detector.history["bce"].iloc[-1] < detector.history["bce"].iloc[0] / 3
