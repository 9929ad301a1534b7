"""Registration losses and metrics against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolatent.methods.registration_losses import (
    gradient_loss,
    mutual_information,
    ncc_loss,
    one_hot,
    soft_dice_loss,
)
from biolatent.registration.metrics import dice_per_label, folding_fraction, hd95, jacobian_determinant


@pytest.mark.parametrize("dims", [2, 3])
def test_ncc_of_an_image_with_itself_is_one(dims):
    torch.manual_seed(0)
    image = torch.rand(2, 1, *([12] * dims))
    assert float(ncc_loss(image, image, window=5, eps=1e-9)) == pytest.approx(-1.0, abs=1e-3)
    assert float(ncc_loss(image, 3 * image + 1, window=5, eps=1e-9)) == pytest.approx(-1.0, abs=1e-3)
    assert float(ncc_loss(image, torch.rand_like(image), window=5)) > -0.3


def test_mutual_information_sees_through_contrast_inversion():
    torch.manual_seed(1)
    tissue = torch.randint(0, 3, (1, 1, 16, 16, 16)).float() / 2
    other = tissue[:, :, torch.randperm(16)]
    same = mutual_information(tissue, tissue)
    inverted = mutual_information(tissue, 1 - tissue)
    assert float(inverted) == pytest.approx(float(same), rel=1e-3)
    assert float(mutual_information(tissue, other)) < 0.5 * float(same)
    assert float(mutual_information(tissue, 1 - tissue, patch=8)) > float(mutual_information(tissue, other, patch=8))


def test_gradient_loss_is_zero_for_constant_fields():
    assert float(gradient_loss(torch.full((1, 3, 6, 6, 6), 2.0))) == 0.0
    ramp = torch.arange(6.0).view(1, 1, 6, 1).expand(1, 2, 6, 6)
    assert float(gradient_loss(ramp)) == pytest.approx(0.5)  # 1 along one axis of two


def test_soft_dice_of_identical_labels_is_zero_loss():
    labels = torch.randint(0, 3, (2, 1, 6, 6, 6))
    assert float(soft_dice_loss(one_hot(labels, 3), one_hot(labels, 3))) == pytest.approx(0.0, abs=1e-6)


def test_jacobian_of_identity_is_one():
    det = jacobian_determinant(torch.zeros(1, 3, 6, 6, 6))
    assert torch.allclose(det, torch.ones_like(det))


@pytest.mark.parametrize("dims", [2, 3])
def test_jacobian_of_an_affine_field_is_its_determinant(dims):
    torch.manual_seed(2)
    matrix = torch.eye(dims) + 0.3 * torch.randn(dims, dims)
    mesh = torch.stack(torch.meshgrid(*[torch.arange(7.0)] * dims, indexing="ij"))  # (D, *spatial)
    mapped = torch.einsum("ij,j...->i...", matrix, mesh)
    det = jacobian_determinant((mapped - mesh).unsqueeze(0))
    assert torch.allclose(det, torch.full_like(det, float(torch.linalg.det(matrix))), atol=1e-4)


def test_swapping_neighbours_folds():
    field = torch.zeros(1, 3, 8, 8, 8)
    field[:, 0, 3], field[:, 0, 4] = 1.0, -1.0  # slice 3 takes slice 4's value and vice versa
    assert folding_fraction(field) > 0
    assert folding_fraction(torch.zeros(1, 3, 8, 8, 8)) == 0.0


def test_dice_and_hd95():
    a = np.zeros((10, 10, 10), int)
    b = np.zeros_like(a)
    a[2:6, 2:6, 2:6] = 1
    b[3:7, 2:6, 2:6] = 1
    a[7:9, 7:9, 7:9] = 2
    dice = dice_per_label(a, b)
    assert dice[1] == pytest.approx(2 * 48 / 128)
    assert dice[2] == 0.0
    assert hd95(a == 1, b == 1) == pytest.approx(1.0)
    assert hd95(a == 1, b == 1, spacing=(2, 1, 1)) == pytest.approx(2.0)
    assert np.isnan(hd95(a == 3, b == 1))


def test_demons_recovers_a_smooth_shift():
    """The classical reference (SimpleITK demons, a dev dependency) in our displacement convention."""
    from biolatent.models.spatial_transform import warp
    from biolatent.registration.classical import classical_tool

    tool = classical_tool()
    assert tool is not None and tool[0] == "demons"
    g = torch.Generator().manual_seed(0)
    fixed = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 24, 24, 24, generator=g), 5, stride=1, padding=2)
    fixed = (fixed - fixed.min()) / (fixed.max() - fixed.min())
    moving = torch.roll(fixed, shifts=(1, 0, -1), dims=(2, 3, 4))
    field = tool[1](moving[0, 0].numpy(), fixed[0, 0].numpy())
    assert field.shape == (24, 24, 24, 3)
    inner = (slice(6, -6),) * 3
    assert np.median(field[(*inner, 0)]) == pytest.approx(1.0, abs=0.3)  # sample moving at x + 1 along axis 0
    assert np.median(field[(*inner, 2)]) == pytest.approx(-1.0, abs=0.3)
    warped = warp(moving, torch.from_numpy(field).movedim(-1, 0)[None].float())
    error_after = float(((warped - fixed) ** 2)[(..., *inner)].mean())
    assert error_after < 0.3 * float(((moving - fixed) ** 2)[(..., *inner)].mean())


def test_hd95_on_the_masks_bounding_box_equals_the_whole_grid():
    """hd95 works on the masks' bounding box (one voxel wider): the same value as on the whole grid, also for masks
    touching the grid's edge."""
    from scipy import ndimage

    from biolatent.registration.metrics import _surface

    def whole(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
        sa, sb = _surface(a), _surface(b)
        to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)
        to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)
        return float(np.percentile(np.concatenate([to_b[sa], to_a[sb]]), 95))

    rng = np.random.default_rng(0)
    for edge in (False, True):
        a = ndimage.binary_dilation(rng.random((20, 22, 24)) < 0.003, iterations=2)
        b = ndimage.binary_dilation(rng.random((20, 22, 24)) < 0.003, iterations=2)
        a[0, :4, :4] |= edge
        assert hd95(a, b, (1.0, 2.0, 3.0)) == pytest.approx(whole(a, b, (1.0, 2.0, 3.0)))
