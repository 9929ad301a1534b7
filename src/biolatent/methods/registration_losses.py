"""Registration losses on ``(B, C, *spatial)`` images and ``(B, D, *spatial)`` displacements (2D or 3D).

* ``ncc_loss``: minus the local (windowed) squared normalised cross-correlation of VoxelMorph (Balakrishnan et al.
  2019, IEEE TMI 38(8); Avants et al. 2008, MedIA 12(1)): -1 for identical images.
* ``mse_loss``: mean squared intensity difference (same contrast).
* ``mutual_information_loss``: minus the mutual information of the two intensity distributions, estimated with
  Gaussian Parzen windows over ``bins`` intensity bins in [0, 1] (Viola & Wells 1997, IJCV 24(2)); global, or
  local over non-overlapping patches (the local MI of Guo 2019, "Multi-modal image registration with
  unsupervised deep learning", MIT thesis, used by VoxelMorph's inter-modal losses) -- for inter-modal pairs.
* ``gradient_loss``: mean squared forward difference of the displacement (diffusion regulariser).
* ``soft_dice_loss``: 1 - mean soft Dice of one-hot label maps (the auxiliary segmentation loss of VoxelMorph).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ncc_loss(warped: torch.Tensor, fixed: torch.Tensor, window: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """Minus the mean local squared NCC over ``window``-sided boxes (narrowed to an odd side that fits a small
    grid, e.g. a coarse pyramid level)."""
    dims = warped.dim() - 2
    smallest = min(warped.shape[2:])
    if window > smallest:
        window = smallest if smallest % 2 else smallest - 1
    pool = F.avg_pool3d if dims == 3 else F.avg_pool2d
    pad = window // 2

    def local_mean(t: torch.Tensor) -> torch.Tensor:
        return pool(t, window, stride=1, padding=pad, count_include_pad=False)

    mu_i, mu_j = local_mean(warped), local_mean(fixed)
    cross = local_mean(warped * fixed) - mu_i * mu_j
    var_i = (local_mean(warped * warped) - mu_i * mu_i).clamp_min(0)
    var_j = (local_mean(fixed * fixed) - mu_j * mu_j).clamp_min(0)
    return -(cross * cross / (var_i * var_j + eps)).mean()


def mse_loss(warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(warped, fixed)


def _joint_mi(a: torch.Tensor, b: torch.Tensor, bins: int, sigma: float) -> torch.Tensor:
    """MI of the paired samples (rows: independent estimates, columns: samples), values in [0, 1]."""
    centres = torch.linspace(0.0, 1.0, bins, device=a.device, dtype=a.dtype)
    wa = torch.exp(-0.5 * ((a.clamp(0, 1).unsqueeze(-1) - centres) / sigma) ** 2)
    wb = torch.exp(-0.5 * ((b.clamp(0, 1).unsqueeze(-1) - centres) / sigma) ** 2)
    wa = wa / wa.sum(-1, keepdim=True).clamp_min(1e-12)
    wb = wb / wb.sum(-1, keepdim=True).clamp_min(1e-12)
    joint = torch.einsum("rni,rnj->rij", wa, wb) / a.shape[-1]
    pa, pb = joint.sum(-1, keepdim=True), joint.sum(-2, keepdim=True)
    return (joint * torch.log((joint + 1e-10) / (pa * pb + 1e-10))).sum((-2, -1))


def mutual_information(a: torch.Tensor, b: torch.Tensor, *, bins: int = 32, patch: int | None = None) -> torch.Tensor:
    """Mean MI (nats) per image (``patch`` None) or per non-overlapping ``patch``-sided patch."""
    sigma = 0.5 / (bins - 1) * 2.0
    if patch is None:
        return _joint_mi(a.flatten(1), b.flatten(1), bins, sigma).mean()
    dims = a.dim() - 2
    if any(n % patch for n in a.shape[2:]):
        raise ValueError(f"image sides {tuple(a.shape[2:])} must be divisible by the MI patch {patch}")

    def patches(t: torch.Tensor) -> torch.Tensor:
        for axis in range(dims):
            t = t.unfold(2 + axis, patch, patch)
        return t.reshape(-1, patch ** dims)

    return _joint_mi(patches(a), patches(b), bins, sigma).mean()


def mutual_information_loss(warped: torch.Tensor, fixed: torch.Tensor, *, bins: int = 32,
                            patch: int | None = None) -> torch.Tensor:
    return -mutual_information(warped, fixed, bins=bins, patch=patch)


def gradient_loss(displacement: torch.Tensor) -> torch.Tensor:
    """Mean over axes of the mean squared forward difference of ``displacement``."""
    dims = displacement.dim() - 2
    total = displacement.new_zeros(())
    for axis in range(2, 2 + dims):
        total = total + displacement.diff(dim=axis).pow(2).mean()
    return total / dims


def one_hot(labels: torch.Tensor, n_labels: int) -> torch.Tensor:
    """(B, 1, *spatial) integer labels -> (B, n_labels, *spatial) float one-hot."""
    return F.one_hot(labels[:, 0].long(), n_labels).movedim(-1, 1).float()


def soft_dice_loss(warped_onehot: torch.Tensor, fixed_onehot: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 - mean soft Dice over the foreground labels (channel 0 = background is left out)."""
    dims = tuple(range(2, warped_onehot.dim()))
    a, b = warped_onehot[:, 1:], fixed_onehot[:, 1:]
    dice = (2 * (a * b).sum(dims) + eps) / (a.sum(dims) + b.sum(dims) + eps)
    return 1 - dice.mean()
