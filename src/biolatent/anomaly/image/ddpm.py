"""Denoising diffusion anomaly detector (``ddpm``): a DDPM trained on healthy images, AnoDDPM-style partial noising.

Model: a denoising diffusion probabilistic model (Ho, Jain & Abbeel 2020, NeurIPS, arXiv:2006.11239) with
``timesteps`` = T steps. Steps are indexed t = 0..T-1 (t = 0 is the first noising step); alpha_t = 1 - beta_t and
abar_t = prod_{s<=t} alpha_s, so that q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) (``q_sample``).
Schedules (``make_betas``):

* ``"linear"``: beta linear from 1e-4 * 1000/T to 0.02 * 1000/T (Ho et al.'s 1e-4..0.02 for T = 1000, rescaled
  to T steps as in Nichol & Dhariwal 2021, ICML, arXiv:2102.09672, so a short chain still ends near pure noise);
* ``"cosine"``: abar(t) = f(t+1) / f(0), f(s) = cos(((s/T + 0.008) / 1.008) * pi/2)^2, beta_t = 1 - abar_t /
  abar_{t-1} clipped to <= 0.999 (Nichol & Dhariwal 2021).

Images in [0, 1] are mapped to [-1, 1] for the model. Training loss (Ho et al.'s L_simple): for each image a
step t ~ U{0..T-1} and noise eps ~ N(0, I) (drawn in that order from the torch RNG), then
``mean((eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t) - eps)^2)`` (``loss``).

Anomaly map (AnoDDPM, Wyatt, Leach, Schmon & Willcocks 2022, CVPR Workshops, "AnoDDPM: anomaly detection with
denoising diffusion probabilistic models using simplex noise"; here with Gaussian noise): the image is noised to
step k = round(``noise_level`` * T) - 1 (at least 0) with ``q_sample`` and brought back to x0 by the reverse
process; the map is |x - x0_hat| averaged over channels, averaged over ``n_samples`` noisings. Reverse process
(``sampler``):

* ``"ddim"`` (default, for CPU time): deterministic DDIM (Song, Meng & Ermon 2021, ICLR, arXiv:2010.02502,
  eta = 0) over ``sampling_steps`` steps evenly spaced from k down to 0: x0_hat = (x_t - sqrt(1 - abar_t) eps) /
  sqrt(abar_t), clipped to [-1, 1], x_t' = sqrt(abar_t') x0_hat + sqrt(1 - abar_t') eps; the last x0_hat is the
  reconstruction (``sampling_steps`` network calls per noising);
* ``"ddpm"``: ancestral sampling through every step k, k-1, ..., 0 with Ho et al.'s posterior mean
  (from the clipped x0_hat) and variance beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) (k + 1 calls).

Scoring is deterministic: ``anomaly_map`` seeds a ``torch.Generator`` with ``score_seed`` and draws one noise
field per noising (and per ancestral step) of shape (1, C, H, W), shared by all images of the call, so an
image's map does not depend on the batch it is scored in.

``spatial_dims=3`` builds a 3D ``models.time_unet.TimeUNet``: volumes (B, C, D, H, W) are noised, denoised and
scored natively in 3D.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from biolatent.anomaly.image.autoencoders import residual_map
from biolatent.errors import ConfigError
from biolatent.methods.base import SSLMethod
from biolatent.models.time_unet import TimeUNet
from biolatent.types import LossOutput

SCHEDULES = ("linear", "cosine")
SAMPLERS = ("ddim", "ddpm")


def make_betas(timesteps: int, schedule: str = "linear") -> np.ndarray:
    """float64 (T,) beta_t of the ``"linear"`` or ``"cosine"`` schedule (module docstring)."""
    if timesteps < 2:
        raise ConfigError(f"method.timesteps must be >= 2, got {timesteps}")
    if schedule == "linear":
        scale = 1000.0 / timesteps
        return np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), timesteps, dtype=np.float64)
    if schedule == "cosine":
        s = 0.008
        steps = np.arange(timesteps + 1, dtype=np.float64) / timesteps
        f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, 0.999)
    raise ConfigError(f"method.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def to_model(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> [-1, 1]."""
    return 2.0 * x - 1.0


def from_model(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x + 1.0) / 2.0


def _gather(values: torch.Tensor, t: torch.Tensor, ndim: int = 4) -> torch.Tensor:
    """values[t] shaped (B, 1, ...) with ``ndim`` axes, for broadcasting over images (4) or volumes (5)."""
    return values[t.long()].view(-1, *[1] * (ndim - 1))


class DDPMAnomaly(SSLMethod):
    """DDPM with a ``TimeUNet`` denoiser; ``anomaly_map`` = AnoDDPM residual after partial noising (module doc)."""

    name: ClassVar[str] = "ddpm"
    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume")

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
        sampler: Literal["ddim", "ddpm"] = "ddim",
        sampling_steps: int = 10,
        n_samples: int = 1,
        score_seed: int = 0,
        spatial_dims: int = 2,
    ) -> None:
        widths = tuple(int(w) for w in widths)
        self._check(timesteps, noise_level, sampler, sampling_steps, n_samples)
        if encoder is None:
            encoder = TimeUNet(in_channels, in_channels + self.extra_outputs, image_size, widths, spatial_dims)
        super().__init__(encoder, views=views)
        self.in_channels, self.image_size, self.widths = in_channels, image_size, widths
        self.spatial_dims = int(getattr(encoder, "spatial_dims", spatial_dims))
        self.timesteps, self.schedule, self.noise_level = int(timesteps), schedule, float(noise_level)
        self.sampler, self.sampling_steps, self.n_samples = sampler, int(sampling_steps), int(n_samples)
        self.score_seed = int(score_seed)
        betas = make_betas(self.timesteps, schedule)
        # derived from the hyper-parameters, so not part of the saved weights (persistent=False)
        self.register_buffer("betas", torch.tensor(betas, dtype=torch.float32), persistent=False)
        self.register_buffer("alphas_cumprod", torch.tensor(np.cumprod(1.0 - betas), dtype=torch.float32),
                             persistent=False)

    extra_outputs: ClassVar[int] = 0  # output channels beyond the predicted noise (masked diffusion: 1)

    @staticmethod
    def _check(timesteps: int, noise_level: float, sampler: str, sampling_steps: int, n_samples: int) -> None:
        if timesteps < 2:
            raise ConfigError(f"method.timesteps must be >= 2, got {timesteps}")
        if not 0.0 < noise_level <= 1.0:
            raise ConfigError(f"method.noise_level must be in (0, 1] (a fraction of the timesteps), got {noise_level}")
        if sampler not in SAMPLERS:
            raise ConfigError(f"method.sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if sampling_steps < 1 or n_samples < 1:
            raise ConfigError(f"method.sampling_steps and method.n_samples must be >= 1, got {sampling_steps} "
                              f"and {n_samples}")

    @property
    def unet(self) -> nn.Module:
        """The denoiser ``unet(x_t, t) -> (B, C + extra_outputs, H, W)`` (stored as ``encoder``)."""
        return self.encoder

    @property
    def start_step(self) -> int:
        """k = round(noise_level * T) - 1, at least 0: the step the image is noised to before denoising."""
        return max(0, round(self.noise_level * self.timesteps) - 1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, t a (B,) integer tensor of steps in 0..T-1."""
        abar = _gather(self.alphas_cumprod, t, x0.ndim)
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """(x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), clipped to [-1, 1]."""
        abar = _gather(self.alphas_cumprod, t, xt.ndim)
        return ((xt - (1.0 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1.0, 1.0)

    def loss(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Epsilon MSE for images ``x`` in [0, 1], steps ``t`` (B,) and ``noise`` (B, C, H, W)."""
        eps = self.unet(self.q_sample(to_model(x), t, noise), t)
        return nn.functional.mse_loss(eps, noise)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"].float()
        t = torch.randint(0, self.timesteps, (x.shape[0],), device=x.device)
        loss = self.loss(x, t, torch.randn_like(x))
        return LossOutput(loss, {"loss": float(loss.detach())})

    def sampling_schedule(self) -> list[int]:
        """The DDIM steps, descending from ``start_step`` to 0 (at most ``sampling_steps``, no repeats)."""
        k = self.start_step
        steps = np.unique(np.round(np.linspace(0, k, min(self.sampling_steps, k + 1))).astype(int))
        return [int(s) for s in steps[::-1]]

    def _steps(self, step: int, batch: int, device: torch.device) -> torch.Tensor:
        return torch.full((batch,), step, dtype=torch.long, device=device)

    def _noise(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One (1, C, *spatial) field from ``generator``, broadcast to the batch."""
        field = torch.randn((1, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)
        return field.expand_as(x)

    def _ddim(self, xt: torch.Tensor) -> torch.Tensor:
        schedule = self.sampling_schedule()
        x0 = xt
        for i, step in enumerate(schedule):
            t = self._steps(step, xt.shape[0], xt.device)
            eps = self.unet(xt, t)[:, : self.in_channels]
            x0 = self.predict_x0(xt, t, eps)
            if i + 1 < len(schedule):
                xt = self.q_sample(x0, self._steps(schedule[i + 1], xt.shape[0], xt.device), eps)
        return x0

    def _ancestral(self, xt: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        abar = self.alphas_cumprod
        x0 = xt
        for step in range(self.start_step, -1, -1):
            t = self._steps(step, xt.shape[0], xt.device)
            x0 = self.predict_x0(xt, t, self.unet(xt, t)[:, : self.in_channels])
            if step == 0:
                break
            a_t, a_prev, beta = abar[step], abar[step - 1], self.betas[step]
            mean = (a_prev.sqrt() * beta * x0 + (1.0 - beta).sqrt() * (1.0 - a_prev) * xt) / (1.0 - a_t)
            variance = beta * (1.0 - a_prev) / (1.0 - a_t)
            xt = mean + variance.sqrt() * self._noise(xt, generator)
        return x0

    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One AnoDDPM reconstruction in [0, 1]: noise ``x`` to ``start_step``, run the reverse process back."""
        if generator is None:
            generator = torch.Generator(device=x.device).manual_seed(self.score_seed)
        with torch.no_grad():
            x0 = to_model(x.float())
            t = self._steps(self.start_step, x.shape[0], x.device)
            xt = self.q_sample(x0, t, self._noise(x0, generator))
            out = self._ddim(xt) if self.sampler == "ddim" else self._ancestral(xt, generator)
        return from_model(out)

    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        """|x - reconstruct(x)| (channel mean), averaged over ``n_samples`` noisings -> (B, *spatial)."""
        generator = torch.Generator(device=x.device).manual_seed(self.score_seed)
        x = x.float()
        maps = [residual_map(x, self.reconstruct(x, generator)) for _ in range(self.n_samples)]
        return torch.stack(maps).mean(dim=0)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Spatially averaged bottleneck features of the clean image (t = 0): (B, widths[-1])."""
        unet = self.unet
        if not hasattr(unet, "encode"):
            raise ConfigError(f"method {self.name!r}: embed needs a TimeUNet denoiser")
        h, _, _ = unet.encode(to_model(x.float()), self._steps(0, x.shape[0], x.device))
        return h.flatten(2).mean(dim=2)
