"""Views of 2D images (B, C, H, W) in [0, 1], C in {1, 3}: the SimCLR recipe adapted to histology.

Recipes:

* Random resized crop, flip, colour jitter (strength s: brightness, contrast, saturation 0.8 s, hue 0.2 s,
  applied with probability 0.8), random grayscale and Gaussian blur (kernel ~10% of the side, sigma in
  [0.1, 2]): Chen et al. 2020, "A simple framework for contrastive learning of visual representations"
  (SimCLR), ICML. Crop, flips, jitter and blur are ``kornia.augmentation`` modules.
* Random 90-degree rotations and flips (tissue has no orientation): Veeling et al. 2018, "Rotation
  equivariant CNNs for digital pathology", MICCAI.
* HED stain jitter: Tellez et al. 2019, Medical Image Analysis 58 (see ``biolatent.data.views.stain``).

Kornia draws from the global torch RNG; ``sample_params`` seeds it from the caller's generator inside
``torch.random.fork_rng``, so the global RNG state is left untouched and a seed gives the same views.
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from biolatent.data.views.base import (
    Params,
    ViewModule,
    as_device,
    check_probability,
    draw_seed,
    randint,
    uniform,
)
from biolatent.data.views.stain import hed_jitter

JITTER_PROB = 0.8  # SimCLR applies colour jitter to 80% of the views
BLUR_SIGMA = (0.1, 2.0)


def blur_kernel_size(image_size: int) -> int:
    """An odd kernel about 10% of the image side (SimCLR), at least 3."""
    return max(3, int(0.1 * image_size) // 2 * 2 + 1)


class ImageViews(ViewModule):
    """Augmented views of (B, C, H, W) float images in [0, 1]; output (B, C, image_size, image_size).

    In order: random resized crop to ``image_size`` (area fraction in ``crop_scale``); horizontal and
    vertical flips (p = 0.5 each) if ``flip``; a rotation by k * 90 degrees, k uniform in 0..3, if
    ``rotate90``; HED stain jitter of strength ``stain_jitter`` (RGB only); colour jitter of strength
    ``color_jitter`` (grayscale images: brightness and contrast only); grayscale with probability
    ``grayscale_prob`` (RGB only); Gaussian blur with probability ``blur_prob``; clamp to [0, 1].
    Output dtype is the input's; shape is the input's when H = W = image_size.
    """

    def __init__(
        self,
        *,
        image_size: int,
        crop_scale: tuple[float, float] = (0.35, 1.0),
        flip: bool = True,
        rotate90: bool = True,
        color_jitter: float = 0.4,
        stain_jitter: float = 0.05,
        blur_prob: float = 0.5,
        grayscale_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.settings = {
            "image_size": image_size,
            "crop_scale": crop_scale,
            "flip": flip,
            "rotate90": rotate90,
            "color_jitter": color_jitter,
            "stain_jitter": stain_jitter,
            "blur_prob": blur_prob,
            "grayscale_prob": grayscale_prob,
        }
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        low, high = crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        if color_jitter < 0 or stain_jitter < 0:
            raise ValueError("color_jitter and stain_jitter must be >= 0")
        check_probability("blur_prob", blur_prob)
        check_probability("grayscale_prob", grayscale_prob)
        self.image_size = int(image_size)
        self.rotate90 = rotate90
        self.stain_jitter = float(stain_jitter)
        size = (self.image_size, self.image_size)
        augs: dict[str, nn.Module] = {"crop": K.RandomResizedCrop(size, scale=(low, high), p=1.0)}
        if flip:
            augs["hflip"] = K.RandomHorizontalFlip(p=0.5)
            augs["vflip"] = K.RandomVerticalFlip(p=0.5)
        if color_jitter > 0:
            s = float(color_jitter)
            augs["jitter"] = K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, min(0.2 * s, 0.5), p=JITTER_PROB)
        if grayscale_prob > 0:
            augs["gray"] = K.RandomGrayscale(p=grayscale_prob)
        if blur_prob > 0:
            augs["blur"] = K.RandomGaussianBlur(blur_kernel_size(self.image_size), BLUR_SIGMA, p=blur_prob)
        self.augs = nn.ModuleDict(augs)

    def local(self, size: int, crop_scale: tuple[float, float]) -> ImageViews:
        """The same views at another output size and crop scale: DINO's multi-crop local views (Caron et
        al. 2021, "Emerging properties in self-supervised vision transformers", ICCV)."""
        return ImageViews(**{**self.settings, "image_size": size, "crop_scale": crop_scale})

    def sample_params(
        self,
        n: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
        *,
        sample_shape: Sequence[int] | None = None,
    ) -> Params:
        """Kornia's parameters as ``"<aug>.<key>"`` (aug in crop/hflip/vflip/jitter/gray/blur), plus
        ``rot90`` (n,) int64 and ``stain.alpha`` / ``stain.beta`` (n, 3)."""
        device = as_device(device)
        height, width = (self.image_size, self.image_size) if sample_shape is None else sample_shape[-2:]
        params: Params = {}
        if self.rotate90:
            params["rot90"] = randint(0, 4, (n,), device, generator)
        if self.stain_jitter > 0:
            s = self.stain_jitter
            params["stain.alpha"] = 1.0 + uniform(-s, s, (n, 3), device, generator)
            params["stain.beta"] = uniform(-s, s, (n, 3), device, generator)
        seed = draw_seed(generator)
        cuda = sorted({aug.device.index or 0 for aug in self.augs.values() if aug.device.type == "cuda"})
        with torch.random.fork_rng(devices=cuda):
            torch.default_generator.manual_seed(seed)
            for index in cuda:
                torch.cuda.default_generators[index].manual_seed(seed)
            for name, aug in self.augs.items():
                drawn = aug.forward_parameters((n, 3, int(height), int(width)))
                params.update({f"{name}.{key}": value.to(device) for key, value in drawn.items()})
        return params

    def _run(self, name: str, x: Tensor, params: Params) -> Tensor:
        if name not in self.augs:
            return x
        prefix = f"{name}."
        own = {key[len(prefix) :]: value for key, value in params.items() if key.startswith(prefix)}
        return self.augs[name](x, params=own)

    def apply(self, x: Tensor, params: Params) -> Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"ImageViews expects (B, C, H, W) images with C in (1, 3), got {tuple(x.shape)}")
        out = x if x.dtype in (torch.float32, torch.float64) else x.float()
        out = self._run("crop", out, _fit_crop(params, out.shape[-2:]))
        out = self._run("hflip", out, params)
        out = self._run("vflip", out, params)
        if "rot90" in params:
            out = _rotate90(out, params["rot90"].to(out.device))
        if "stain.alpha" in params and out.shape[1] == 3:
            out = hed_jitter(out, params["stain.alpha"], params["stain.beta"])
        if out.shape[1] == 3:
            out = self._run("jitter", out, params)
            out = self._run("gray", out, params)
        elif "jitter" in self.augs:
            # a gray pixel stays gray under saturation and hue changes: jitter it as RGB, average back
            out = self._run("jitter", out.expand(-1, 3, -1, -1), params).mean(dim=1, keepdim=True)
        out = self._run("blur", out, params)
        return out.clamp(0.0, 1.0).to(x.dtype)


def _rotate90(images: Tensor, turns: Tensor) -> Tensor:
    """Rotate image i by ``turns[i]`` * 90 degrees counter-clockwise (square images)."""
    out = images.clone()
    for k in (1, 2, 3):
        rows = turns == k
        if bool(rows.any()):
            out[rows] = torch.rot90(images[rows], k, dims=(2, 3))
    return out


def _fit_crop(params: Params, size: Sequence[int]) -> Params:
    """Rescale crop boxes drawn for another input size (``sample_params`` without ``sample_shape``)."""
    if "crop.input_size" not in params:
        return params
    drawn = params["crop.input_size"].to(torch.float64)
    height, width = float(size[0]), float(size[1])
    if bool((drawn[:, 0] == height).all() and (drawn[:, 1] == width).all()):
        return params
    src = params["crop.src"].to(torch.float64)
    scale_x = (width - 1) / (drawn[:, 1] - 1).clamp(min=1)
    scale_y = (height - 1) / (drawn[:, 0] - 1).clamp(min=1)
    src = torch.stack([src[..., 0] * scale_x[:, None], src[..., 1] * scale_y[:, None]], dim=-1).round()
    fitted = dict(params)
    fitted["crop.src"] = src.to(params["crop.src"].dtype)
    fitted["crop.input_size"] = torch.tensor([int(height), int(width)]).expand_as(params["crop.input_size"])
    fitted["crop.forward_input_shape"] = params["crop.forward_input_shape"].clone()
    fitted["crop.forward_input_shape"][-2:] = torch.tensor([int(height), int(width)])
    return fitted
