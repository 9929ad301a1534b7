"""VoxelMorph and the MICDIR-style pyramid: shapes, identity at initialisation, learning a known shift."""

from __future__ import annotations

import pytest
import torch

from biolatent.methods.micdir import MICDIR
from biolatent.methods.registration_registry import REGISTRATION_METHODS, build_registration_method
from biolatent.methods.voxelmorph import VoxelMorph
from biolatent.models.spatial_transform import warp

TINY = {"widths": [4, 8, 8]}


def _blobs(n: int, dims: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, *([size] * dims), generator=g)
    pool = torch.nn.functional.avg_pool3d if dims == 3 else torch.nn.functional.avg_pool2d
    smooth = pool(noise, 5, stride=1, padding=2)
    smooth = pool(smooth, 3, stride=1, padding=1)
    return (smooth - smooth.amin()) / (smooth.amax() - smooth.amin())


@pytest.mark.parametrize("name", list(REGISTRATION_METHODS))
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("similarity", ["ncc", "mse", "local_mi"])
def test_forward_gives_a_finite_loss_and_gradients(name, dims, similarity):
    torch.manual_seed(0)
    method = build_registration_method(name, spatial_dims=dims, similarity=similarity, mi_patch=4, ncc_window=5,
                                       dice_weight=0.5, **TINY)
    x = _blobs(2, dims, 8, 0)
    labels = (x * 3).long().clamp(max=2)
    out = method({"x": x, "labels": labels})
    assert torch.isfinite(out.loss) and "dice_loss" in out.metrics
    out.loss.backward()
    assert all(p.grad is not None for p in method.parameters())
    displacement = method.register(x[:1], x[1:])
    assert displacement.shape == (1, dims, *([8] * dims))
    assert displacement.abs().max() < 1e-2  # the heads start near zero: near the identity


def test_atlas_pairs_every_volume_with_the_atlas():
    method = VoxelMorph(spatial_dims=2, **TINY)
    x = _blobs(3, 2, 8, 1)
    method.set_atlas(x[0, 0], (x[0] > 0.5).long())
    moving, fixed, moving_labels, fixed_labels = method.pairs({"x": x, "labels": (x > 0.5).long()})
    assert torch.equal(moving, x) and torch.equal(fixed, x[:1].expand_as(x))
    assert fixed_labels is not None and fixed_labels.shape == moving_labels.shape
    moving, fixed, _, _ = VoxelMorph(spatial_dims=2, **TINY).pairs({"x": x})
    assert torch.equal(fixed, torch.roll(x, 1, 0))


def test_micdir_pyramid_runs_coarse_to_fine():
    method = MICDIR(spatial_dims=3, pyramid_levels=3, **TINY)
    x = _blobs(2, 3, 8, 2)
    fields = method.pyramid(x[:1], x[1:])
    assert [tuple(f.shape[2:]) for f in fields] == [(2, 2, 2), (4, 4, 4), (8, 8, 8)]
    assert "inverse_consistency" in method({"x": x}).metrics


@pytest.mark.parametrize("cls", [VoxelMorph, MICDIR])
def test_learns_to_undo_a_shift(cls):
    """One pair, moving = fixed shifted by one voxel: a few dozen steps bring the warped image closer."""
    torch.manual_seed(0)
    fixed = _blobs(1, 2, 16, 3)
    moving = torch.roll(fixed, 1, dims=2)
    method = cls(spatial_dims=2, widths=[8, 16, 16], similarity="mse", smoothness=0.01)
    method.set_atlas(fixed)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    before = float(((moving - fixed) ** 2).mean())
    for _ in range(60):
        optimizer.zero_grad()
        method({"x": moving}).loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = float(((warp(moving, method.register(moving, fixed)) - fixed) ** 2).mean())
    assert after < 0.5 * before


@pytest.mark.parametrize("similarity", ["mi", "local_mi", "mse"])
def test_mutual_information_aligns_an_inverted_contrast(similarity):
    """Inter-modal: the fixed image has the inverted contrast of the moving one; MI still undoes the shift, MSE
    (which assumes one contrast) makes it worse."""
    torch.manual_seed(0)
    anatomy = _blobs(1, 2, 16, 4)
    moving = torch.roll(anatomy, 1, dims=2)
    method = VoxelMorph(spatial_dims=2, widths=[8, 16, 16], similarity=similarity, mi_patch=8, smoothness=0.01)
    method.set_atlas(1 - anatomy)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    before = float(((moving - anatomy) ** 2).mean())
    for _ in range(60):
        optimizer.zero_grad()
        method({"x": moving}).loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = float(((warp(moving, method.register(moving, 1 - anatomy)) - anatomy) ** 2).mean())
    assert after > before if similarity == "mse" else after < 0.6 * before
