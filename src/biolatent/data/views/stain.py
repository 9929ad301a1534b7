"""HED colour deconvolution and HED stain jitter on (B, 3, H, W) RGB tensors in [0, 1].

Colour deconvolution: Ruifrok & Johnston 2001, "Quantification of histochemical staining by color
deconvolution", Analytical and Quantitative Cytology and Histology 23(4). Optical density ``OD = -ln(I)``
is a linear mix of the haematoxylin, eosin and DAB stains, ``OD = HED @ RGB_FROM_HED`` (row vectors), so
``HED = OD @ inv(RGB_FROM_HED)``.

Stain jitter: Tellez et al. 2019, "Quantifying the effects of data augmentation and stain color
normalization in convolutional neural networks for computational pathology", Medical Image Analysis 58:
each stain channel ``c`` of each image becomes ``c * alpha + beta`` with ``alpha ~ 1 + U(-s, s)`` and
``beta ~ U(-s, s)`` (s = 0.05 is their "HED-light").
"""

from __future__ import annotations

import torch
from torch import Tensor

# rows: the RGB optical-density vectors of haematoxylin, eosin and DAB (Ruifrok & Johnston 2001)
RGB_FROM_HED = torch.tensor(
    [
        [0.65, 0.70, 0.29],
        [0.07, 0.99, 0.11],
        [0.27, 0.57, 0.78],
    ],
    dtype=torch.float64,
)
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)
# intensities below this are treated as this (optical density is finite)
MIN_INTENSITY = 1e-6


def _mix(image: Tensor, matrix: Tensor) -> Tensor:
    """(B, 3, H, W) channels times a 3x3 matrix (channels as row vectors): out_j = sum_i in_i * M[i, j]."""
    return torch.einsum("bihw,ij->bjhw", image, matrix.to(device=image.device, dtype=image.dtype))


def rgb_to_hed(rgb: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> stain concentrations (B, 3, H, W): haematoxylin, eosin, DAB."""
    density = -torch.log(rgb.clamp(min=MIN_INTENSITY))
    return _mix(density, HED_FROM_RGB)


def hed_to_rgb(hed: Tensor) -> Tensor:
    """Inverse of ``rgb_to_hed`` (not clamped: the caller decides)."""
    return torch.exp(-_mix(hed, RGB_FROM_HED))


def hed_jitter(rgb: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """Scale (``alpha``, (B, 3)) and shift (``beta``, (B, 3)) each stain of each image; result in [0, 1]."""
    hed = rgb_to_hed(rgb)
    hed = hed * alpha.to(hed)[:, :, None, None] + beta.to(hed)[:, :, None, None]
    return hed_to_rgb(hed).clamp(0.0, 1.0)
