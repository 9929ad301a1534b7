"""Masked diffusion anomaly detector (``masked_diffusion``), after MAD-AD (Beizaee, Lodygensky, Desrosiers & Dolz
2025, IPMI, arXiv:2502.16943, "MAD-AD: Masked Diffusion for Unsupervised Brain Anomaly Detection").

MAD-AD diffuses only randomly chosen patches of a healthy image (in a VAE's latent space) and trains the denoiser
both to remove that noise and to say which patches were noisy; at test time an anomaly is treated as "noise"
that the predicted mask localises and the reverse process replaces by healthy tissue. What is implemented here
(in pixel space, no VAE; the schedule, the ``TimeUNet`` and ``q_sample`` are those of ``ddpm.py``):

Training, per image (draws in this order from the torch RNG: t, eps, the mask): a step t ~ U{0..T-1}, noise
eps ~ N(0, I), and a patch mask M (``draw_mask``): the image is cut into a grid of ``patch_size`` x ``patch_size``
squares, a ratio r ~ U(0, ``mask_ratio``) is drawn per image and each square is masked with probability r.
With x0 in [-1, 1]::

    x_t    = M * q_sample(x0, t, eps) + (1 - M) * x0          (only the masked squares are diffused)
    out    = unet(x_t, t)  ->  eps_hat = out[:, :C], mask logit l = out[:, C]
    loss   = sum(M * (eps_hat - eps)^2) / max(1, C * sum(M))   (noise MSE on the masked pixels)
           + mask_weight * mean(BCE(sigmoid(l), M))            (mask prediction on every pixel)

Scoring (``reconstruct``; k = ``start_step`` as in ``DDPMAnomaly``): the clean test image is taken as x_k and
the network's mask probability m_0 = sigmoid(l(x, k)) says where it deviates; that region is partially noised,
x_k = x + m_0 * (q_sample(x, k, eps) - x) with eps from the seeded generator (one (1, C, H, W) field per call,
shared by the batch), and deterministic DDIM steps (``sampling_steps``, k down to 0) denoise it under the mask
predicted at each step, m = sigmoid(l(x_t, t)), keeping the rest at the input::

    x0_hat = m * clip((x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t), -1, 1) + (1 - m) * x
    x_t'   = m * (sqrt(abar_t') x0_hat + sqrt(1 - abar_t') eps_hat) + (1 - m) * x

The reconstruction is the last x0_hat. Anomaly map (``anomaly_map``), per pixel, averaged over ``n_samples``::

    map = (1 - mask_score_weight) * |x - x0_hat|_channel-mean + mask_score_weight * m_0

both terms in [0, 1] (``mask_score_weight`` = 0: residual only; 1: predicted mask only).
Differences from the paper: pixel space instead of a VAE latent; a fixed start step k instead of the paper's
choice; the soft predicted mask blends the update instead of a thresholded one; our grid masking scheme.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from biolatent.anomaly.image.autoencoders import residual_map
from biolatent.anomaly.image.ddpm import DDPMAnomaly, from_model, to_model
from biolatent.errors import ConfigError
from biolatent.types import LossOutput


class MaskedDiffusionAnomaly(DDPMAnomaly):
    """Patch-masked DDPM that also predicts its mask; map = residual and predicted mask (module docstring)."""

    name: ClassVar[str] = "masked_diffusion"
    extra_outputs: ClassVar[int] = 1

    def __init__(
        self,
        encoder: nn.Module | None = None,
        *,
        views: nn.Module | None = None,
        in_channels: int = 1,
        image_size: int = 64,
        widths: tuple[int, ...] = (32, 64, 128),
        timesteps: int = 200,
        schedule: Literal["linear", "cosine"] = "linear",
        noise_level: float = 0.3,
        sampling_steps: int = 10,
        n_samples: int = 1,
        score_seed: int = 0,
        patch_size: int = 4,
        mask_ratio: float = 0.5,
        mask_weight: float = 1.0,
        mask_score_weight: float = 0.5,
        spatial_dims: int = 2,
    ) -> None:
        if patch_size < 1 or image_size % patch_size:
            raise ConfigError(f"method.patch_size must be >= 1 and divide the image side {image_size}, "
                              f"got {patch_size}")
        if not 0.0 < mask_ratio <= 1.0:
            raise ConfigError(f"method.mask_ratio must be in (0, 1], got {mask_ratio}")
        if mask_weight < 0:
            raise ConfigError(f"method.mask_weight must be >= 0, got {mask_weight}")
        if not 0.0 <= mask_score_weight <= 1.0:
            raise ConfigError(f"method.mask_score_weight must be in [0, 1], got {mask_score_weight}")
        super().__init__(encoder, views=views, in_channels=in_channels, image_size=image_size, widths=widths,
                         timesteps=timesteps, schedule=schedule, noise_level=noise_level, sampler="ddim",
                         sampling_steps=sampling_steps, n_samples=n_samples, score_seed=score_seed,
                         spatial_dims=spatial_dims)
        self.patch_size, self.mask_ratio = int(patch_size), float(mask_ratio)
        self.mask_weight, self.mask_score_weight = float(mask_weight), float(mask_score_weight)

    def draw_mask(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 1, *spatial) float 0/1: grid squares (cubes for volumes) masked with probability r ~ U(0, mask_ratio)
        per image."""
        b, spatial = x.shape[0], x.shape[2:]
        p = self.patch_size
        ratios = torch.rand((b, 1, *[1] * len(spatial)), generator=generator, device=x.device) * self.mask_ratio
        grid = tuple(n // p for n in spatial)
        coarse = (torch.rand((b, 1, *grid), generator=generator, device=x.device) < ratios).float()
        for axis in range(2, 2 + len(spatial)):
            coarse = coarse.repeat_interleave(p, dim=axis)
        return coarse

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network output -> (eps_hat (B, C, H, W), mask logit (B, 1, H, W))."""
        return out[:, : self.in_channels], out[:, self.in_channels :]

    def masked_terms(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                     mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(noise MSE over the masked pixels, mean BCE of the mask logit) for images ``x`` in [0, 1]."""
        x0 = to_model(x)
        xt = mask * self.q_sample(x0, t, noise) + (1.0 - mask) * x0
        eps, logit = self.split(self.unet(xt, t))
        full = mask.expand_as(noise)
        mse = (full * (eps - noise) ** 2).sum() / full.sum().clamp(min=1.0)
        bce = nn.functional.binary_cross_entropy_with_logits(logit, mask)
        return mse, bce

    def loss(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor | None = None,
             ) -> torch.Tensor:
        """mse + mask_weight * bce for the given draws (``mask`` None: a fresh ``draw_mask``)."""
        mse, bce = self.masked_terms(x, t, noise, self.draw_mask(x) if mask is None else mask)
        return mse + self.mask_weight * bce

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"].float()
        t = torch.randint(0, self.timesteps, (x.shape[0],), device=x.device)
        noise = torch.randn_like(x)
        mse, bce = self.masked_terms(x, t, noise, self.draw_mask(x))
        loss = mse + self.mask_weight * bce
        return LossOutput(loss, {"loss": float(loss.detach()), "mse": float(mse.detach()), "bce": float(bce.detach())})

    def predict_mask(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """sigmoid of the mask logit for the clean images ``x`` in [0, 1] taken as x_step (default start_step)."""
        step = self.start_step if step is None else step
        with torch.no_grad():
            t = self._steps(step, x.shape[0], x.device)
            return torch.sigmoid(self.split(self.unet(to_model(x.float()), t))[1])

    def reconstruct_with_mask(self, x: torch.Tensor,
                              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction in [0, 1] (B, C, H, W), initial mask probability m_0 (B, 1, H, W))."""
        if generator is None:
            generator = torch.Generator(device=x.device).manual_seed(self.score_seed)
        with torch.no_grad():
            clean = to_model(x.float())
            b = x.shape[0]
            m0 = self.predict_mask(x)
            schedule = self.sampling_schedule()
            start = self._steps(schedule[0], b, x.device)
            xt = clean + m0 * (self.q_sample(clean, start, self._noise(clean, generator)) - clean)
            x0 = clean
            for i, step in enumerate(schedule):
                t = self._steps(step, b, x.device)
                eps, logit = self.split(self.unet(xt, t))
                m = torch.sigmoid(logit)
                x0 = m * self.predict_x0(xt, t, eps) + (1.0 - m) * clean
                if i + 1 < len(schedule):
                    renoised = self.q_sample(x0, self._steps(schedule[i + 1], b, x.device), eps)
                    xt = m * renoised + (1.0 - m) * clean
        return from_model(x0), m0

    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.reconstruct_with_mask(x, generator)[0]

    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        """(1 - w) * |x - x0_hat| + w * m_0 with w = mask_score_weight, averaged over n_samples -> (B, H, W)."""
        generator = torch.Generator(device=x.device).manual_seed(self.score_seed)
        x = x.float()
        w = self.mask_score_weight
        maps = []
        for _ in range(self.n_samples):
            recon, m0 = self.reconstruct_with_mask(x, generator)
            maps.append((1.0 - w) * residual_map(x, recon) + w * m0[:, 0])
        return torch.stack(maps).mean(dim=0)
