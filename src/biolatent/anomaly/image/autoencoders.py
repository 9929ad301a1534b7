"""Convolutional autoencoder and variational autoencoder for reconstruction-based anomaly maps of 2D images.

Trained on healthy images only, a model reconstructs what it has seen; the pixel-wise residual of an image is
its anomaly map (Baur, Denner, Wiestler, Navab & Albarqouni 2021, Medical Image Analysis 69:101952,
"Autoencoders for unsupervised anomaly segmentation in brain MR images: a comparative study").

* ``ConvAE``: a dense-bottleneck convolutional autoencoder; loss = mean squared error of the reconstruction.
* ``ConvVAE``: a variational autoencoder (Kingma & Welling 2014, ICLR, "Auto-encoding variational Bayes") with
  q(z|x) = N(mu, diag exp(logvar)), p(z) = N(0, I) and a Gaussian decoder of fixed variance 1/2, so that
  -log p(x|z) = ||x - x_hat||^2 + const. The loss is the beta-weighted negative ELBO (Higgins et al. 2017,
  ICLR, beta-VAE) per pixel: ``mean over images of (||x - x_hat||^2 + beta * KL(q(z|x) || p(z))) / (C*H*W)``
  with one reparameterised sample z; beta = 1 is the plain -ELBO (up to the constant), divided by C*H*W so
  that the loss is on the scale of the AE's per-pixel MSE.

Networks: ``models.conv_encoder.ConvEncoder`` and ``models.conv_decoder.ConvDecoder``, 2D images (B, C, H, W) or,
with ``spatial_dims=3``, volumes (B, C, D, H, W) scored natively in 3D. Both take ``encoder=None`` (the module
builds its ``ConvEncoder``) or a module mapping (B, C, H, W) to
(B, out_dim) features with an ``out_dim`` attribute. ``reconstruct(x)`` is deterministic (the VAE decodes the
posterior mean), ``anomaly_map(x)`` = |x - clip(reconstruct(x), 0, 1)| averaged over channels, (B, *spatial), and
``embed(x)`` is the latent code (the VAE's posterior mean).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from biolatent.errors import ConfigError
from biolatent.methods.base import SSLMethod
from biolatent.methods.vae import gaussian_kl
from biolatent.models.conv_decoder import ConvDecoder
from biolatent.models.conv_encoder import ConvEncoder, check_architecture, check_spatial_dims
from biolatent.types import LossOutput


def residual_map(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """|x - x_hat| averaged over channels: (B, C, *spatial) -> (B, *spatial)."""
    return (x - x_hat).abs().mean(dim=1)


class ImageAutoencoderBase(SSLMethod):
    """Shared construction: the encoder (given or built), the decoder and the image geometry."""

    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume")
    latent_factor: ClassVar[int] = 1  # the encoder head outputs latent_factor * latent_dim numbers

    def __init__(
        self,
        encoder: nn.Module | None = None,
        *,
        views: nn.Module | None = None,
        in_channels: int = 1,
        image_size: int = 64,
        widths: tuple[int, ...] = (16, 32, 64),
        latent_dim: int = 32,
        spatial_dims: int = 2,
    ) -> None:
        widths = tuple(int(w) for w in widths)
        check_architecture(image_size, widths, latent_dim, in_channels)
        spatial_dims = check_spatial_dims(spatial_dims)
        if encoder is None:
            encoder = ConvEncoder(in_channels, image_size, widths, spatial_dims)
        elif not hasattr(encoder, "out_dim"):
            raise ConfigError(f"method {self.name!r} needs an encoder with an out_dim (or encoder=None)")
        super().__init__(encoder, views=views)
        self.in_channels, self.image_size, self.latent_dim = in_channels, image_size, latent_dim
        self.spatial_dims = spatial_dims
        self.to_latent = nn.Linear(int(encoder.out_dim), self.latent_factor * latent_dim)
        self.decoder = ConvDecoder(in_channels, image_size, widths, latent_dim, spatial_dims)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel (voxel) anomaly score (B, *spatial): |x - reconstruction clipped to [0, 1]|; larger = more
        anomalous."""
        with torch.no_grad():
            return residual_map(x, self.reconstruct(x).clamp(0.0, 1.0))


class ConvAE(ImageAutoencoderBase):
    """Deterministic autoencoder; loss = ``F.mse_loss(decode(encode(x)), x)``."""

    name: ClassVar[str] = "conv_ae"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"].float()
        loss = nn.functional.mse_loss(self.reconstruct(x), x)
        return LossOutput(loss, {"loss": float(loss.detach())})

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x.float())


class ConvVAE(ImageAutoencoderBase):
    """Gaussian-latent VAE; loss = mean_b(||x - x_hat||^2 + beta * KL) / (C*H*W), one sample z per image."""

    name: ClassVar[str] = "conv_vae"
    latent_factor: ClassVar[int] = 2

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
    ) -> None:
        super().__init__(encoder, views=views, in_channels=in_channels, image_size=image_size, widths=widths,
                         latent_dim=latent_dim, spatial_dims=spatial_dims)
        if beta < 0:
            raise ConfigError(f"method.beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x), each (B, latent_dim); logvar clamped to [-12, 12]."""
        mu, logvar = self.to_latent(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 12.0)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's mean at the posterior mean: decode(mu(x))."""
        return self.decode(self.posterior(x)[0])

    def terms(self, x: torch.Tensor, *, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (squared reconstruction error summed over pixels, KL) -> two (B,) tensors.

        ``sample=True`` decodes one reparameterised z = mu + exp(logvar / 2) * eps (eps ~ N(0, I), drawn
        with ``torch.randn_like``); ``sample=False`` decodes mu.
        """
        mu, logvar = self.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu
        sse = ((self.decode(z) - x) ** 2).flatten(1).sum(dim=1)
        return sse, gaussian_kl(mu, logvar)

    def negative_elbo(self, x: torch.Tensor, *, sample: bool = True) -> torch.Tensor:
        """Per-image (||x - x_hat||^2 + beta * KL) / (C*H*W) -> (B,)."""
        sse, kl = self.terms(x, sample=sample)
        return (sse + self.beta * kl) / x[0].numel()

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"].float()
        sse, kl = self.terms(x)
        pixels = x[0].numel()
        loss = (sse + self.beta * kl).mean() / pixels
        metrics = {"loss": float(loss.detach()), "mse": float(sse.detach().mean() / pixels),
                   "kl": float(kl.detach().mean())}
        return LossOutput(loss, metrics)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x.float())[0]
