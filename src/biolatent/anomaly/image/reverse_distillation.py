"""Reverse distillation (Deng & Li 2022, CVPR, "Anomaly detection via reverse distillation from one-class
embedding", arXiv:2201.10703) for 2D images, on biolatent's frozen feature pyramid.

* Teacher: the frozen ``FeaturePyramid`` (a random or self-supervised biolatent ResNet), levels k = 1..3.
* One-class bottleneck embedding (OCBE): multi-scale feature fusion - each level is brought to the coarsest
  level's grid by a chain of 3x3 stride-2 convolutions (+ BatchNorm + ReLU; each step maps to the next
  level's channel count), the levels are concatenated, and one residual block at stride 2 (``BasicBlock``)
  compresses them into the compact embedding (``embed_dim`` channels, half the coarsest grid).
* Student decoder: the mirror of the teacher, from the embedding back to each level: per level a 2x2 stride-2
  transposed convolution (+ BatchNorm + ReLU) and a residual block; its output at level k is the student's
  reconstruction S_k of the teacher's T_k.
* Loss (paper eq. 2-3): ``L = sum_k mean_{b,h,w} (1 - cos(T_k(x)[b,:,h,w], S_k[b,:,h,w]))``.
* Anomaly map (paper eq. 4): ``sum_k upsample(1 - cos(T_k, S_k))`` to the input size (bilinear), then a
  Gaussian filter of ``sigma`` pixels (the paper uses sigma 4 on 256-pixel images; 0 = none).

``spatial_dims=3`` makes every part 3D (teacher, bottleneck, student; trilinear upsampling) for volumes. The
networks are ``biolatent.models``' ``FeaturePyramid`` (teacher), ``OneClassBottleneck`` and ``StudentDecoder``
(``models.reverse_distillation``); this module is the method (loss, anomaly map).

Optional terms (default off) from follow-ups that feed synthetic anomalies to the teacher:

* ``teacher_noise`` = s > 0: during training the teacher also sees x~ = x + s * eps (eps ~ N(0, I) per pixel,
  no clipping) and the student decodes from the bottleneck of T(x~) while its target stays T(x): the student
  learns to restore normal features from corrupted inputs (the denoising idea of RD++, Tien et al. 2023,
  CVPR, "Revisiting reverse distillation for anomaly detection", which uses simplex noise rather than
  Gaussian noise).
* ``contrastive_weight`` = w > 0 (needs ``teacher_noise`` > 0): a contrastive term in the spirit of SCRD (Li,
  Shi, Hu, Zhu & Mou 2025, ICLR, "Scale-aware contrastive reverse distillation for unsupervised medical anomaly
  detection", arXiv:2503.13828), which pulls the student towards a clean teacher and pushes it away from a
  noisy teacher. Our formulation (not the authors' code; no scale-adaptation weights, Gaussian noise instead
  of simplex noise) is a margin-0 triplet term per position on cosine similarities::

      L += w * sum_k mean_{b,h,w} relu(cos(S_k, T_k(x~)) - cos(S_k, T_k(x)))

  i.e. the student is penalised wherever it is closer to the noisy teacher than to the clean one. It is zero
  when the student reproduces the clean teacher, so it never fights the main term.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from biolatent.anomaly.image.cevae import gaussian_blur
from biolatent.anomaly.image.feature_pyramid import RANDOM, pyramid_for
from biolatent.errors import ConfigError
from biolatent.methods.base import SSLMethod
from biolatent.models.conv_encoder import check_spatial_dims
from biolatent.models.feature_pyramid import INTERPOLATION, FeaturePyramid
from biolatent.models.reverse_distillation import OneClassBottleneck, StudentDecoder
from biolatent.types import LossOutput


def cosine_distance_map(teacher: torch.Tensor, student: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 - cosine similarity along channels: (B, C, h, w) x2 -> (B, h, w)."""
    dot = (teacher * student).sum(dim=1)
    norms = teacher.norm(dim=1).clamp(min=eps) * student.norm(dim=1).clamp(min=eps)
    return 1.0 - dot / norms


def rd_loss(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
    """sum over levels of the mean (over images and positions) of 1 - cos(teacher, student)."""
    return torch.stack([cosine_distance_map(t, s).mean() for t, s in zip(teacher, student, strict=True)]).sum()


def contrastive_term(clean: list[torch.Tensor], noisy: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
    """sum_k mean relu(cos(S_k, T_k(x~)) - cos(S_k, T_k(x))) (module docstring)."""
    terms = [F.relu(cosine_distance_map(c, s) - cosine_distance_map(n, s)).mean()
             for c, n, s in zip(clean, noisy, student, strict=True)]
    return torch.stack(terms).sum()


class ReverseDistillation(SSLMethod):
    """Frozen teacher pyramid + trainable one-class bottleneck and student decoder (module docstring)."""

    name: ClassVar[str] = "reverse_distillation"
    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume")

    def __init__(
        self,
        encoder: FeaturePyramid | None = None,
        *,
        views: nn.Module | None = None,
        in_channels: int = 1,
        image_size: int = 64,
        backbone: str = RANDOM,
        encoder_widths: tuple[int, ...] | None = None,
        encoder_blocks: tuple[int, ...] | None = None,
        encoder_seed: int = 0,
        embed_dim: int = 256,
        sigma: float = 1.0,
        teacher_noise: float = 0.0,
        contrastive_weight: float = 0.0,
        spatial_dims: int = 2,
    ) -> None:
        if embed_dim < 1 or sigma < 0 or teacher_noise < 0 or contrastive_weight < 0:
            raise ConfigError("embed_dim must be >= 1 and sigma, teacher_noise, contrastive_weight >= 0")
        if contrastive_weight > 0 and teacher_noise <= 0:
            raise ConfigError("contrastive_weight > 0 needs teacher_noise > 0 (the noisy teacher it pushes away from)")
        spatial_dims = check_spatial_dims(spatial_dims)
        pyramid = pyramid_for(encoder, in_channels, backbone, encoder_widths, encoder_blocks, encoder_seed,
                              spatial_dims)
        super().__init__(pyramid, views=views)
        self.in_channels, self.image_size, self.spatial_dims = in_channels, image_size, spatial_dims
        self.sigma, self.teacher_noise, self.contrastive_weight = float(sigma), float(teacher_noise), contrastive_weight
        self.bottleneck = OneClassBottleneck(pyramid.channels, embed_dim, spatial_dims)
        self.decoder = StudentDecoder(pyramid.channels, embed_dim, spatial_dims)
        self.resolved_params = {"encoder_widths": list(pyramid.widths), "encoder_blocks": list(pyramid.blocks)}

    def teacher(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.encoder.check_ready()
        return self.encoder(x)

    def student(self, teacher_levels: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.decoder(self.bottleneck(teacher_levels), [t.shape[2:] for t in teacher_levels])

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"].float()
        clean = self.teacher(x)
        if self.teacher_noise > 0:
            noisy = self.teacher(x + self.teacher_noise * torch.randn_like(x))
            student = self.student(noisy)
        else:
            noisy, student = clean, self.student(clean)
        main = rd_loss(clean, student)
        loss, metrics = main, {"rd": float(main.detach())}
        if self.contrastive_weight > 0:
            push = contrastive_term(clean, noisy, student)
            loss = loss + self.contrastive_weight * push
            metrics["contrastive"] = float(push.detach())
        return LossOutput(loss, {"loss": float(loss.detach()), **metrics})

    def level_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per level 1 - cos(T_k, S_k), each (B, *spatial_k), at the levels' own resolutions."""
        teacher = self.teacher(x.float())
        return [cosine_distance_map(t, s) for t, s in zip(teacher, self.student(teacher), strict=True)]

    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over levels of the bi(tri)linearly upsampled 1 - cos maps, Gaussian-smoothed: (B, *spatial)."""
        with torch.no_grad():
            size = x.shape[2:]
            mode = INTERPOLATION[self.spatial_dims]
            maps = [F.interpolate(m[:, None], size=size, mode=mode, align_corners=False)[:, 0]
                    for m in self.level_maps(x)]
            return gaussian_blur(torch.stack(maps).sum(dim=0), self.sigma)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The one-class embedding, averaged over positions: (B, embed_dim)."""
        return self.bottleneck(self.teacher(x.float())).flatten(2).mean(dim=2)
