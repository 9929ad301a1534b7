"""ImageViews: kornia crop/flip/jitter/blur, 90-degree rotations and HED stain jitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolatent.data.views import ImageViews
from biolatent.data.views.stain import hed_jitter, hed_to_rgb, rgb_to_hed

# Ruifrok & Johnston 2001, written out independently of the module
STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])


def numpy_rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) -> (B, 3, H, W): solve OD_pixel = c @ STAINS for the stain concentrations c."""
    density = -np.log(np.maximum(rgb, 1e-6))
    pixels = density.transpose(0, 2, 3, 1).reshape(-1, 3)
    conc = np.linalg.solve(STAINS.T, pixels.T).T
    b, _, h, w = rgb.shape
    return conc.reshape(b, h, w, 3).transpose(0, 3, 1, 2)


def tissue_like(n: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.2 + 0.8 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def identity_views(**kwargs) -> ImageViews:
    settings = dict(
        crop_scale=(1.0, 1.0), flip=False, rotate90=False, color_jitter=0.0, stain_jitter=0.0, blur_prob=0.0
    )
    return ImageViews(image_size=16, **{**settings, **kwargs})


def test_hed_matches_numpy_colour_deconvolution_and_round_trips() -> None:
    rgb = torch.rand(3, 3, 8, 8, generator=gen(0)).double()
    rgb[0, :, 0, 0] = 0.0  # extreme pixels
    rgb[0, :, 0, 1] = 1.0
    hed = rgb_to_hed(rgb)
    np.testing.assert_allclose(hed.numpy(), numpy_rgb_to_hed(rgb.numpy()), rtol=1e-9, atol=1e-9)
    rgb32 = rgb.float()
    assert (hed_to_rgb(rgb_to_hed(rgb32)) - rgb32).abs().max() < 1e-4
    no_jitter = hed_jitter(rgb32, torch.ones(3, 3), torch.zeros(3, 3))
    assert (no_jitter - rgb32).abs().max() < 1e-4


def test_hed_jitter_matches_numpy() -> None:
    rgb = tissue_like(n=2, size=6).double()
    alpha = torch.tensor([[1.05, 0.97, 1.0], [0.95, 1.02, 1.01]], dtype=torch.float64)
    beta = torch.tensor([[0.03, -0.05, 0.0], [-0.01, 0.04, 0.02]], dtype=torch.float64)
    conc = numpy_rgb_to_hed(rgb.numpy()) * alpha.numpy()[:, :, None, None] + beta.numpy()[:, :, None, None]
    expected = np.exp(-np.einsum("bihw,ij->bjhw", conc, STAINS)).clip(0, 1)
    np.testing.assert_allclose(hed_jitter(rgb, alpha, beta).numpy(), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_seed_same_view_shape_dtype_range(channels: int, dtype: torch.dtype) -> None:
    x = torch.rand(6, channels, 16, 16, generator=gen(1)).to(dtype)
    views = ImageViews(image_size=16, grayscale_prob=0.2)
    a, b, c = views(x, gen(2)), views(x, gen(2)), views(x, gen(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_output_stays_in_unit_range_under_strong_jitter() -> None:
    x = torch.rand(8, 3, 16, 16, generator=gen(4))
    y = ImageViews(image_size=16, color_jitter=1.0, stain_jitter=0.5)(x, gen(5))
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_seeded_views_leave_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    ImageViews(image_size=16)(tissue_like(), gen(0))
    assert torch.equal(torch.get_rng_state(), state)


def test_apply_is_deterministic_given_params() -> None:
    x = tissue_like()
    views = ImageViews(image_size=16)
    params = views.sample_params(4, "cpu", gen(6), sample_shape=x.shape[1:])
    assert torch.equal(views.apply(x, params), views.apply(x, params))


def test_no_augmentation_is_identity() -> None:
    x = tissue_like()
    assert torch.equal(identity_views()(x, gen(0)), x)


def test_rotations_are_the_sampled_quarter_turns() -> None:
    x = tissue_like(n=16)
    views = identity_views(rotate90=True)
    params = views.sample_params(16, "cpu", gen(7), sample_shape=x.shape[1:])
    y = views.apply(x, params).numpy()
    turns = params["rot90"].tolist()
    assert set(turns) == {0, 1, 2, 3}
    for image_in, image_out, k in zip(x.numpy(), y, turns, strict=True):
        np.testing.assert_array_equal(image_out, np.rot90(image_in, k, axes=(1, 2)))


def test_stain_jitter_only_changes_colour_consistently_with_hed() -> None:
    x = tissue_like()
    views = identity_views(stain_jitter=0.05)
    params = views.sample_params(4, "cpu", gen(8), sample_shape=x.shape[1:])
    alpha, beta = params["stain.alpha"], params["stain.beta"]
    assert bool(((alpha - 1).abs() <= 0.05).all() and (beta.abs() <= 0.05).all())
    y = views.apply(x, params).double().numpy()
    conc = numpy_rgb_to_hed(x.double().numpy()) * alpha.double().numpy()[:, :, None, None]
    expected = np.exp(-np.einsum("bihw,ij->bjhw", conc + beta.double().numpy()[:, :, None, None], STAINS))
    np.testing.assert_allclose(y, expected.clip(0, 1), atol=1e-5)
    gray = torch.rand(4, 1, 16, 16, generator=gen(9))
    assert torch.equal(views(gray, gen(0)), gray)  # no stain jitter without RGB


def test_crop_resizes_to_image_size_and_params_fit_other_sizes() -> None:
    views = ImageViews(image_size=16)
    assert views(torch.rand(2, 3, 40, 24, generator=gen(0)), gen(1)).shape == (2, 3, 16, 16)
    params = views.sample_params(2, "cpu", gen(2))  # drawn for 16 x 16
    y = views.apply(torch.rand(2, 3, 32, 32, generator=gen(3)), params)
    assert y.shape == (2, 3, 16, 16)


def test_grayscale_view_of_rgb_has_equal_channels() -> None:
    x = tissue_like(n=8)
    y = identity_views(grayscale_prob=1.0)(x, gen(0))
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])
