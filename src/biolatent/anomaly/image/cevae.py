"""Context-encoding variational autoencoder (ceVAE; Zimmerer, Kohl, Petersen, Isensee & Maier-Hein 2019,
arXiv:1812.05941, "Context-encoding variational autoencoder for unsupervised anomaly detection"), the model
at the core of StRegA (Chatterjee et al. 2022, Computers in Biology and Medicine 106093,
doi:10.1016/j.compbiomed.2022.106093, arXiv:2201.13271).

Training: the VAE term of ``ConvVAE`` (per-pixel beta-weighted negative ELBO) plus a context-encoding term in
the manner of Pathak et al. (2016, CVPR, "Context encoders"): the same encoder and decoder reconstruct the
original image from a copy in which 1..``max_squares`` random axis-aligned rectangles (sides between H/8 and
H/2) are overwritten by a constant drawn uniformly between the batch's min and max intensity::

    loss = (1 - ce_factor) * mean_b(||x - x_hat||^2 + beta * KL) / P + ce_factor * mean_b ||x - x_hat_ce||^2 / P

with P = C*H*W pixels and ``x_hat_ce`` the decoding of one posterior sample of the corrupted image (as the
authors' code, MIC-DKFZ/mood, ``ce_vae.py``; their ``ce_factor`` default is 0.5, ``beta`` 0.01 with
mean-reduced terms).

Anomaly map (``score_mode``):

* ``"combi"`` (default, the paper's pixel-wise score): the reconstruction error |x - decode(mu)| (channel
  mean) multiplied pixel-wise by the per-image min-max normalised, Gaussian-smoothed (``grad_sigma`` pixels)
  magnitude of the gradient of the negative ELBO with respect to the input, |d(-ELBO)/dx| (channel mean).
  The gradient points at the pixels that make the image unlikely under the model; the product keeps the
  residual where both agree. (The authors' code takes the gradient of the KL term only in this mode; we
  use the full ELBO as in the paper's description, evaluated at z = mu so that the map is deterministic.)
* ``"rec"``: the reconstruction error alone (what StRegA post-processes).
* ``"grad"``: the normalised, smoothed ELBO gradient alone.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from torch import nn

from biolatent.anomaly.image.autoencoders import ConvVAE, residual_map
from biolatent.errors import ConfigError
from biolatent.types import LossOutput

SCORE_MODES = ("combi", "rec", "grad")


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of (B, H, W) or (B, D, H, W) maps along every spatial axis (reflect padding,
    kernel radius ceil(3 sigma))."""
    if sigma <= 0:
        return maps
    dims = maps.ndim - 1
    radius = min(max(1, math.ceil(3 * sigma)), *(n - 1 for n in maps.shape[1:]))
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    conv = nn.functional.conv2d if dims == 2 else nn.functional.conv3d
    x = maps[:, None]
    for axis in reversed(range(dims)):  # one spatial axis at a time, the last first (F.pad lists it first too)
        pad = [0, 0] * dims
        pad[2 * (dims - 1 - axis)] = pad[2 * (dims - 1 - axis) + 1] = radius
        shape = [1, 1] + [1] * dims
        shape[2 + axis] = -1
        x = conv(nn.functional.pad(x, tuple(pad), mode="reflect"), kernel.view(shape))
    return x[:, 0]


def minmax_per_image(maps: torch.Tensor) -> torch.Tensor:
    """(B, *spatial) -> each map rescaled to [0, 1] (a constant map becomes 0)."""
    flat = maps.flatten(1)
    low, high = flat.min(dim=1).values, flat.max(dim=1).values
    span = (high - low).clamp(min=1e-12)
    shape = (-1, *[1] * (maps.ndim - 1))
    return (maps - low.view(shape)) / span.view(shape)


class CeVAE(ConvVAE):
    """ConvVAE + a context-encoding reconstruction term; anomaly map = residual x normalised ELBO gradient."""

    name: ClassVar[str] = "cevae"

    def __init__(
        self,
        encoder: nn.Module | None = None,
        *,
        views: nn.Module | None = None,
        in_channels: int = 1,
        image_size: int = 64,
        widths: tuple[int, ...] = (16, 32, 64),
        latent_dim: int = 32,
        beta: float = 1.0,
        spatial_dims: int = 2,
        ce_factor: float = 0.5,
        max_squares: int = 3,
        score_mode: Literal["combi", "rec", "grad"] = "combi",
        grad_sigma: float = 1.0,
    ) -> None:
        super().__init__(encoder, views=views, in_channels=in_channels, image_size=image_size, widths=widths,
                         latent_dim=latent_dim, beta=beta, spatial_dims=spatial_dims)
        if not 0.0 <= ce_factor <= 1.0:
            raise ConfigError(f"method.ce_factor must be in [0, 1], got {ce_factor}")
        if max_squares < 1:
            raise ConfigError(f"method.max_squares must be >= 1, got {max_squares}")
        if score_mode not in SCORE_MODES:
            raise ConfigError(f"method.score_mode must be one of {', '.join(SCORE_MODES)}, got {score_mode!r}")
        if grad_sigma < 0:
            raise ConfigError(f"method.grad_sigma must be >= 0, got {grad_sigma}")
        self.ce_factor, self.max_squares = float(ce_factor), int(max_squares)
        self.score_mode, self.grad_sigma = score_mode, float(grad_sigma)

    def context_corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """A copy of ``x`` with 1..max_squares random boxes per image (rectangles; cuboids for volumes) set to a
        random constant (torch RNG: per box the sides, then the corners, in axis order, then the value)."""
        out = x.clone()
        sides = x.shape[2:]
        low, high = float(x.min()), float(x.max())
        counts = torch.randint(1, self.max_squares + 1, (x.shape[0],))
        for b, count in enumerate(counts.tolist()):
            for _ in range(count):
                lengths = [int(torch.randint(max(1, n // 8), n // 2 + 1, ())) for n in sides]
                starts = [int(torch.randint(0, n - k + 1, ())) for n, k in zip(sides, lengths, strict=True)]
                box = tuple(slice(s, s + k) for s, k in zip(starts, lengths, strict=True))
                out[(b, slice(None), *box)] = low + (high - low) * float(torch.rand(()))
        return out

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        """Random draws, in order: the rectangles, the VAE's eps, the context branch's eps."""
        x = batch["x"].float()
        corrupted = self.context_corrupt(x)
        pixels = x[0].numel()
        sse, kl = self.terms(x)
        vae = (sse + self.beta * kl).mean() / pixels
        mu, logvar = self.posterior(corrupted)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        ce = ((self.decode(z) - x) ** 2).flatten(1).sum(dim=1).mean() / pixels
        loss = (1.0 - self.ce_factor) * vae + self.ce_factor * ce
        metrics = {"loss": float(loss.detach()), "vae": float(vae.detach()), "ce": float(ce.detach()),
                   "kl": float(kl.detach().mean())}
        return LossOutput(loss, metrics)

    def elbo_gradient(self, x: torch.Tensor) -> torch.Tensor:
        """|d(-ELBO)/dx| at z = mu, channel mean -> (B, *spatial); parameter gradients are left untouched."""
        with torch.enable_grad():
            inputs = x.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.negative_elbo(inputs, sample=False).sum(), inputs)
        return grad.abs().mean(dim=1)

    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            rec = residual_map(x, self.reconstruct(x))
        if self.score_mode == "rec":
            return rec
        grad = gaussian_blur(minmax_per_image(self.elbo_gradient(x)), self.grad_sigma)
        return grad if self.score_mode == "grad" else rec * grad
