"""Dense displacement fields in voxel units: the spatial transformer, scaling and squaring, composition.

A displacement ``u`` is ``(B, D, *spatial)`` with ``D = spatial_dims``; channel ``d`` moves along spatial axis
``d`` (tensor dim ``2 + d``), in voxels. ``warp(image, u)`` samples ``image`` at ``x + u(x)`` (the spatial
transformer of Jaderberg et al. 2015, NeurIPS, as used by VoxelMorph: Balakrishnan et al. 2019, IEEE TMI 38(8)).
``integrate_velocity`` turns a stationary velocity field into a diffeomorphic displacement by scaling and
squaring (Arsigny et al. 2006, MICCAI; Dalca et al. 2019, MedIA 57, "Unsupervised learning of probabilistic
diffeomorphic registration for images and surfaces").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _sampling_grid(displacement: torch.Tensor) -> torch.Tensor:
    """``x + u(x)`` as grid_sample's normalised grid ``(B, *spatial, D)`` (last axis in x, y(, z) = reversed)."""
    spatial = displacement.shape[2:]
    axes = [torch.arange(n, dtype=displacement.dtype, device=displacement.device) for n in spatial]
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (D, *spatial)
    position = mesh.unsqueeze(0) + displacement
    scale = torch.tensor([max(n - 1, 1) for n in spatial], dtype=displacement.dtype, device=displacement.device)
    normalised = 2.0 * position / scale.view(1, -1, *([1] * len(spatial))) - 1.0
    return normalised.movedim(1, -1).flip(-1)


def warp(image: torch.Tensor, displacement: torch.Tensor, *, mode: str = "bilinear",
         padding_mode: str = "border") -> torch.Tensor:
    """``image`` (B, C, *spatial) sampled at ``x + displacement(x)``; ``mode`` nearest for label maps."""
    if image.shape[2:] != displacement.shape[2:] or displacement.shape[1] != image.dim() - 2:
        raise ValueError(f"image {tuple(image.shape)} and displacement {tuple(displacement.shape)} do not match")
    return F.grid_sample(image, _sampling_grid(displacement), mode=mode, padding_mode=padding_mode,
                         align_corners=True)


def compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The displacement of ``outer o inner``: ``x -> x + inner(x) + outer(x + inner(x))``."""
    return inner + warp(outer, inner)


def integrate_velocity(velocity: torch.Tensor, steps: int = 7) -> torch.Tensor:
    """Scaling and squaring: ``exp(v)`` as ``2**steps`` self-compositions of ``v / 2**steps``; ``steps`` = 0
    returns ``velocity`` itself (a plain displacement, no diffeomorphic guarantee)."""
    displacement = velocity / (2 ** steps)
    for _ in range(steps):
        displacement = compose(displacement, displacement)
    return displacement


def resize_field(displacement: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A displacement onto another grid of the same extent (voxel centres at ``(i + 0.5) * n / m - 0.5``, the
    convention of ``scipy.ndimage.zoom(grid_mode=True)``), its vectors rescaled to the new voxels."""
    spatial = tuple(displacement.shape[2:])
    if spatial == tuple(shape):
        return displacement
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    resized = F.interpolate(displacement, size=tuple(shape), mode=mode, align_corners=False)
    factors = torch.tensor([new / old for new, old in zip(shape, spatial, strict=True)], dtype=resized.dtype,
                           device=resized.device)
    return resized * factors.view(1, -1, *([1] * len(shape)))
