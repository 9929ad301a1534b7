"""The spatial transformer, scaling and squaring and composition against independent computations."""

from __future__ import annotations

import pytest
import torch

from biolatent.models.spatial_transform import compose, integrate_velocity, resize_field, warp


@pytest.mark.parametrize("dims", [2, 3])
def test_zero_field_is_identity(dims):
    torch.manual_seed(0)
    image = torch.rand(2, 1, *([8] * dims))
    assert torch.allclose(warp(image, torch.zeros(2, dims, *([8] * dims))), image, atol=1e-6)


@pytest.mark.parametrize("dims", [2, 3])
def test_integer_shift_equals_roll_away_from_borders(dims):
    torch.manual_seed(1)
    image = torch.rand(1, 1, *([10] * dims))
    shift = [2, -1, 1][:dims]
    field = torch.zeros(1, dims, *([10] * dims))
    for d, s in enumerate(shift):
        field[:, d] = s
    warped = warp(image, field)
    # sampling at x + s is rolling by -s
    expected = torch.roll(image, shifts=[-s for s in shift], dims=list(range(2, 2 + dims)))
    inner = (slice(None), slice(None), *[slice(2, -2)] * dims)
    assert torch.allclose(warped[inner], expected[inner], atol=1e-5)


def test_nearest_mode_keeps_labels_integral():
    labels = torch.randint(0, 4, (1, 1, 8, 8, 8)).float()
    field = 0.3 * torch.randn(1, 3, 8, 8, 8)
    warped = warp(labels, field, mode="nearest")
    assert set(warped.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_constant_velocity_integrates_to_itself():
    velocity = torch.zeros(1, 3, 8, 8, 8)
    velocity[:, 0], velocity[:, 2] = 0.7, -0.4
    assert torch.allclose(integrate_velocity(velocity, 7), velocity, atol=1e-5)


def test_small_velocity_equals_displacement_to_first_order():
    torch.manual_seed(2)
    smooth = torch.nn.functional.avg_pool3d(torch.randn(1, 3, 12, 12, 12), 5, stride=1, padding=2)
    for scale, tolerance in ((1e-2, 1e-4), (1e-3, 1e-6)):
        velocity = scale * smooth / smooth.abs().max()
        error = (integrate_velocity(velocity, 7) - velocity).abs().max()
        assert error < tolerance  # second order in the velocity


def test_scaling_and_squaring_composes():
    torch.manual_seed(3)
    velocity = torch.nn.functional.avg_pool3d(torch.randn(1, 3, 12, 12, 12), 5, stride=1, padding=2)
    velocity = 0.8 * velocity / velocity.abs().max()
    half = integrate_velocity(velocity, 5)
    assert torch.allclose(integrate_velocity(2 * velocity, 6), compose(half, half), atol=1e-5)


def test_exp_of_minus_v_inverts_exp_of_v():
    torch.manual_seed(4)
    velocity = torch.nn.functional.avg_pool2d(torch.randn(1, 2, 24, 24), 7, stride=1, padding=3)
    velocity = 1.5 * velocity / velocity.abs().max()
    forward, backward = integrate_velocity(velocity, 7), integrate_velocity(-velocity, 7)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    residual = compose(forward, backward)[inner].abs().max()
    assert residual < 0.15 * forward.abs().max()  # an inverse up to interpolation error
    assert residual < 0.2 * compose(forward, forward)[inner].abs().max()


def test_resize_field_scales_vectors():
    field = torch.full((1, 3, 4, 4, 4), 1.0)
    resized = resize_field(field, (8, 8, 8))
    assert resized.shape == (1, 3, 8, 8, 8) and torch.allclose(resized, torch.full_like(resized, 2.0))
