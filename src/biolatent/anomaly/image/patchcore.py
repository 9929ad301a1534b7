"""PatchCore (Roth, Pemula, Zepeda, Schölkopf, Brox & Gehler 2022, CVPR, "Towards total recall in industrial
anomaly detection", arXiv:2106.08265) for 2D images, on biolatent's frozen feature pyramid.

* Locally aware patch features (paper sec. 3.1): the feature maps of the pyramid levels ``layers`` (default the
  two finest, strides 2 and 4 with the default ResNet: small images need fine grids), each averaged over its
  3x3 neighbourhood (``avg_pool2d``, stride 1, edge-aware), bilinearly upsampled to the grid of the finest
  chosen level and concatenated along channels: one D-dimensional feature per patch position.
* Memory bank (sec. 3.2): the patch features of all healthy training images, reduced by greedy coreset
  subsampling (the k-center greedy rule of Sener & Savarese 2018, ICLR, paper algorithm 1): start from one
  (seeded) random patch, then repeatedly add the patch whose Euclidean distance to its nearest selected patch
  is largest. Distances for the selection are computed on a Gaussian random projection of the features to
  ``projection_dim`` dimensions (Johnson-Lindenstrauss, as in the paper; 0 = the full features); the bank keeps
  the selected patches' full features. The bank holds ``ceil(coreset_fraction * n_patches)`` rows, at most
  ``memory_size``. The greedy rule costs O(n_patches x bank rows): with more than ``max_candidates`` patches
  (e.g. every slice of many volumes), a seeded random subset of ``max_candidates`` patches is the candidate pool
  (a deviation from the paper, which selects among all patches on a GPU).
* ``spatial_dims=3``: the same on volumes (a 3D pyramid, 3x3x3 neighbourhoods, trilinear upsampling).
* Anomaly map (sec. 3.3): each test patch's Euclidean distance to its nearest memory-bank patch, upsampled
  bilinearly to the input size and smoothed by a Gaussian of ``sigma`` pixels (0 = none). The image score is
  the detector's usual top-fraction mean of the map (the paper's nearest-neighbour re-weighting is not used).

PatchCore is not trained by gradient: ``fit_memory(images)`` builds the bank (``ImageReconstructionDetector.fit``
calls it instead of the trainer); ``forward`` refuses. Persistence is weights only: the bank is a buffer of
``memory_size`` rows (its size is known when the module is built, so ``load_state_dict`` restores it) plus
the count of filled rows ``n_memory``; unfilled rows are zeros and never used.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from biolatent.anomaly.image.cevae import gaussian_blur
from biolatent.anomaly.image.feature_pyramid import RANDOM, pyramid_for
from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.models.conv_encoder import check_spatial_dims
from biolatent.models.feature_pyramid import INTERPOLATION, N_LEVELS, FeaturePyramid
from biolatent.types import LossOutput


def greedy_coreset(features: torch.Tensor, k: int, start: int = 0) -> torch.Tensor:
    """Indices (k,) of the k-center greedy coreset of ``features`` (N, D), starting from row ``start``.

    Each step adds the row with the largest Euclidean distance to its nearest already selected row (the first
    such row on ties, as ``torch.argmax``).
    """
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"coreset size must lie in [1, {n}], got {k}")
    selected = torch.empty(k, dtype=torch.long)
    selected[0] = start
    nearest = (features - features[start]).norm(dim=1)
    for step in range(1, k):
        index = int(torch.argmax(nearest))
        selected[step] = index
        nearest = torch.minimum(nearest, (features - features[index]).norm(dim=1))
    return selected


def nearest_distances(queries: torch.Tensor, memory: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance of each query (M, D) to its nearest memory row (K, D) -> (M,)."""
    out = [torch.cdist(queries[i : i + chunk], memory).min(dim=1).values for i in range(0, queries.shape[0], chunk)]
    return torch.cat(out) if out else queries.new_zeros(0)


class PatchCore(SSLMethod):
    """Frozen pyramid + a memory bank of healthy patch features; map = distance to the nearest bank patch."""

    name: ClassVar[str] = "patchcore"
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
        layers: tuple[int, ...] = (0, 1),
        coreset_fraction: float = 0.1,
        projection_dim: int = 128,
        memory_size: int = 8192,
        max_candidates: int = 50_000,
        sigma: float = 1.0,
        seed: int = 0,
        spatial_dims: int = 2,
    ) -> None:
        layers = tuple(int(i) for i in layers)
        if not layers or len(set(layers)) != len(layers) or not all(0 <= i < N_LEVELS for i in layers):
            raise ConfigError(f"layers must be distinct pyramid levels in 0..{N_LEVELS - 1}, got {list(layers)}")
        if not 0.0 < coreset_fraction <= 1.0:
            raise ConfigError(f"coreset_fraction must lie in (0, 1], got {coreset_fraction}")
        if memory_size < 1 or projection_dim < 0 or sigma < 0 or max_candidates < 1:
            raise ConfigError("memory_size and max_candidates must be >= 1, projection_dim >= 0 and sigma >= 0")
        self.max_candidates = int(max_candidates)
        spatial_dims = check_spatial_dims(spatial_dims)
        pyramid = pyramid_for(encoder, in_channels, backbone, encoder_widths, encoder_blocks, encoder_seed,
                              spatial_dims)
        super().__init__(pyramid, views=views)
        self.in_channels, self.image_size, self.spatial_dims = in_channels, image_size, spatial_dims
        self.layers = tuple(sorted(layers))
        self.coreset_fraction, self.projection_dim = float(coreset_fraction), int(projection_dim)
        self.sigma, self.seed = float(sigma), int(seed)
        self.feature_dim = sum(pyramid.channels[i] for i in self.layers)
        self.register_buffer("memory", torch.zeros(int(memory_size), self.feature_dim))
        self.register_buffer("n_memory", torch.zeros((), dtype=torch.long))
        self.resolved_params = {"encoder_widths": list(pyramid.widths), "encoder_blocks": list(pyramid.blocks)}

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        """Locally aware patch features (B, D, *grid) on the grid of the finest chosen level."""
        self.encoder.check_ready()
        levels = self.encoder(x.float())
        pool = F.avg_pool2d if self.spatial_dims == 2 else F.avg_pool3d
        chosen = [pool(levels[i], 3, stride=1, padding=1, count_include_pad=False) for i in self.layers]
        size, mode = chosen[0].shape[2:], INTERPOLATION[self.spatial_dims]
        chosen = [c if c.shape[2:] == size else F.interpolate(c, size=size, mode=mode, align_corners=False)
                  for c in chosen]
        return torch.cat(chosen, dim=1)

    def _all_patches(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        device = self.memory.device  # batches go where the pyramid is
        feats = [self.patch_features(images[i : i + batch_size].to(device))
                 for i in range(0, images.shape[0], batch_size)]
        return torch.cat(feats).movedim(1, -1).reshape(-1, self.feature_dim)

    @torch.no_grad()
    def fit_memory(self, images: torch.Tensor, *, batch_size: int = 64) -> PatchCore:
        """Fill the memory bank from healthy ``images`` (N, C, H, W): greedy coreset of their patch features."""
        self.eval()
        patches = self._all_patches(images, batch_size)
        generator = torch.Generator().manual_seed(self.seed)
        if patches.shape[0] > self.max_candidates:  # the greedy selection costs O(candidates x k): bound it
            keep = torch.randperm(patches.shape[0], generator=generator)[: self.max_candidates]
            patches = patches[keep.sort().values]
        k = min(max(1, math.ceil(self.coreset_fraction * patches.shape[0])), self.memory.shape[0])
        start = int(torch.randint(patches.shape[0], (1,), generator=generator))
        selection_space = patches
        if 0 < self.projection_dim < self.feature_dim:
            projection = torch.randn(self.feature_dim, self.projection_dim, generator=generator).to(patches.device)
            selection_space = patches @ (projection / math.sqrt(self.projection_dim))
        chosen = greedy_coreset(selection_space, k, start) if k < patches.shape[0] else torch.arange(k)
        self.memory.zero_()
        self.memory[:k] = patches[chosen]
        self.n_memory.fill_(k)
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        raise ConfigError("patchcore is not trained by gradient: build its memory bank with fit_memory(images)")

    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        """Distance of each patch to its nearest memory-bank patch, upsampled and smoothed: (B, *spatial)."""
        n = int(self.n_memory)
        if n == 0:
            raise DataError("patchcore: the memory bank is empty: fit_memory (or load a fitted detector) first")
        with torch.no_grad():
            feats = self.patch_features(x)
            flat = feats.movedim(1, -1).reshape(-1, self.feature_dim)
            grid = nearest_distances(flat, self.memory[:n]).view(feats.shape[0], 1, *feats.shape[2:])
            mode = INTERPOLATION[self.spatial_dims]
            maps = F.interpolate(grid, size=x.shape[2:], mode=mode, align_corners=False)[:, 0]
            return gaussian_blur(maps, self.sigma)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch features averaged over positions: (B, D)."""
        return self.patch_features(x).flatten(2).mean(dim=2)
