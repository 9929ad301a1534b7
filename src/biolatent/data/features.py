"""Classical features per modality, the input of the PCA floor every learned embedding must beat."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from biolatent.data.samples import SampleSet

KMER = 4
POOLED_SIDE = 16
TILE_CHUNK = 256


def log_normalise(x: np.ndarray, scale: float = 1e4) -> np.ndarray:
    """log1p(x / total * scale) per row; all-zero rows stay zero."""
    totals = x.sum(axis=1, keepdims=True)
    return np.log1p(x / np.where(totals > 0, totals, 1.0) * scale).astype(np.float32)


def kmer_spectrum(bases: torch.Tensor, k: int = KMER) -> np.ndarray:
    """(N, L) base codes -> (N, 4**k) k-mer frequencies (rows sum to 1); k-mers with N or PAD skipped."""
    n, length = bases.shape
    out = torch.zeros((n, 4**k), dtype=torch.float64)
    if length >= k:
        windows = bases.long().unfold(1, k, 1)  # (N, T, k)
        valid = (windows < 4).all(dim=-1)
        weights = 4 ** torch.arange(k - 1, -1, -1)
        index = (windows.clamp(max=3) * weights).sum(dim=-1)
        rows = torch.arange(n).unsqueeze(1).expand_as(index)
        flat = (rows * 4**k + index)[valid]
        out.view(-1).index_add_(0, flat, torch.ones(flat.numel(), dtype=torch.float64))
    totals = out.sum(dim=1, keepdim=True)
    return (out / totals.clamp(min=1.0)).float().numpy()


def pooled_pixels(images: torch.Tensor, side: int = POOLED_SIDE) -> np.ndarray:
    """(N, C, H, W) images average-pooled to at most side x side, flattened to (N, C * h * w)."""
    h, w = min(side, images.shape[-2]), min(side, images.shape[-1])
    pooled = F.adaptive_avg_pool2d(images.float(), (h, w))
    return pooled.reshape(images.shape[0], -1).numpy().astype(np.float32)


def code_counts(tokens: torch.Tensor, vocab_size: int) -> np.ndarray:
    """(N, 4, L) records tokens -> (N, vocab_size) log1p counts of each code token ([PAD], [CLS], [SEP] counted
    too: they carry the number of visits)."""
    codes = tokens[:, 0].long()
    counts = torch.zeros((codes.shape[0], vocab_size), dtype=torch.float64)
    counts.scatter_add_(1, codes, torch.ones_like(codes, dtype=torch.float64))
    counts[:, 0] = 0.0  # padding
    return np.log1p(counts.numpy()).astype(np.float32)


def pooled_voxels(volumes: torch.Tensor, side: int = POOLED_SIDE // 2) -> np.ndarray:
    """(N, C, D, H, W) volumes (cine: frames as C) average-pooled to at most side^3, flattened (N, C * d * h * w)."""
    size = tuple(min(side, n) for n in volumes.shape[-3:])
    pooled = F.adaptive_avg_pool3d(volumes.float(), size)
    return pooled.reshape(volumes.shape[0], -1).numpy().astype(np.float32)


def raw_features(samples: SampleSet) -> np.ndarray:
    """(N, F) float32: counts -> log-normalised or as is; dna -> 4-mer spectrum; images, spatial tiles, volumes,
    cines -> pooled pixels / voxels; records -> log1p code counts; series -> the values (N, C * T)."""
    modality = samples.info.modality
    if modality == "counts":
        x = samples.x.numpy().astype(np.float64)
        return log_normalise(x) if samples.info.is_counts else x.astype(np.float32)
    if modality == "dna":
        return kmer_spectrum(samples.x)
    if modality == "image2d" and isinstance(samples.x, torch.Tensor):
        return pooled_pixels(samples.x)
    if modality in ("image2d", "spatial"):  # tiles cut lazily (spatial, slides with data.lazy): chunk by chunk
        chunks = [pooled_pixels(samples.x[i : i + TILE_CHUNK]) for i in range(0, len(samples), TILE_CHUNK)]
        return np.concatenate(chunks)
    if modality in ("volume", "cine"):
        if isinstance(samples.x, torch.Tensor):
            return pooled_voxels(samples.x)
        # volumes read from their files (data.lazy): pooled chunk by chunk
        chunks = range(0, len(samples), TILE_CHUNK)
        return np.concatenate([pooled_voxels(samples.x[i : i + TILE_CHUNK]) for i in chunks])
    if modality == "series":  # one sample per series (N, C, T): the values themselves; one series' points: (T, 1)
        return samples.x.reshape(len(samples), -1).numpy().astype(np.float32)
    if modality == "records":
        return code_counts(samples.x, int(samples.info.vocab_size or int(samples.x[:, 0].max()) + 1))
    raise ValueError(f"no raw features for modality {modality!r}")
