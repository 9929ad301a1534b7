"""ContIG: contrastive alignment of medical images with the same subjects' genetics.

Taleb, Kirchler, Monti & Lippert 2022, CVPR, "ContIG: self-supervised multimodal contrastive learning for
medical imaging with genetics". Each genetic modality m (raw variants, polygenic scores, burden scores: here
every genetic part of the paired data, ``biolatent.data.paired``) has its own genetic encoder g_m and its own
projection head h_m on the shared image encoder f. For a batch of subjects, with u_i = h_m(f(image_i)) and
v_i = g_m(genetics_i) L2-normalised and the fixed temperature tau (ContIG: 0.1),

    L_m = alpha * CE(u v^T / tau, diag) + (1 - alpha) * CE(v u^T / tau, diag)   (ContIG: alpha = 0.75)

(image-to-genetics and genetics-to-image cross-entropies, no intra-modal negatives) and the loss is the mean of
L_m over the modalities, ContIG's aggregation of several genetic modalities (each weighted 1 / M). Only
subjects with every modality are paired (ContIG's "inner" aggregation; the loader drops the others).
A genetic encoder is the standardised genetic features through an MLP (Linear, ReLU, Linear) into the joint
space; with ``variant_window`` > 0 the raw-variant part (``genotypes``) gets a locally connected encoder over
windows of that many neighbouring variants instead (``models.variant_windows``); burden or polygenic-score
tables (``data.genetic_tables``) keep the MLP. The image side gets the modality's augmentation views during
training (``use_views``).

``embed(x)`` is the image encoder's output f(x), the representation ContIG transfers downstream (the
projections are dropped after pre-training).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.data.paired import GENOTYPES
from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.methods.clip import gathered_paired_logits
from biolatent.models.variant_windows import VariantWindowEncoder
from biolatent.types import LossOutput


def contig_loss(image_emb: torch.Tensor, genetic_emb: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    """ContIG's cross-modal NT-Xent of one genetic modality: alpha * image->genetics + (1 - alpha) * genetics->image
    cross-entropy over the batch, positives on the diagonal, cosine similarities over ``temperature``; under DDP
    against the whole global batch (``clip.gathered_paired_logits``), so the loss equals one process's."""
    image_rows, genetic_rows, targets = gathered_paired_logits(image_emb, genetic_emb)
    return (alpha * F.cross_entropy(image_rows / temperature, targets)
            + (1 - alpha) * F.cross_entropy(genetic_rows / temperature, targets))


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class ContIG(SSLMethod):
    """Shared image encoder, one projection head and one genetic encoder per genetic part; mean of ContIG losses."""

    name: ClassVar[str] = "contig"
    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume", "cine")
    data_kwargs: ClassVar[dict[str, str]] = {"genetic_parts": "genetic_parts"}

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        genetic_parts: dict[str, int] | None = None,
        parts: tuple[str, ...] | None = None,
        embed_dim: int = 128,
        genetic_hidden: int = 256,
        temperature: float = 0.1,
        alpha: float = 0.75,
        use_views: bool = True,
        variant_window: int = 0,
        window_features: int = 4,
    ) -> None:
        super().__init__(encoder, views=views)
        if not genetic_parts:
            raise ConfigError("method contig needs genetics paired with the images: set data.genotypes and/or "
                              "data.genetic_tables")
        chosen = tuple(parts) if parts else tuple(genetic_parts)
        unknown = [p for p in chosen if p not in genetic_parts]
        if unknown:
            raise ConfigError(f"method.parts: {', '.join(unknown)} not among the data's genetic parts "
                              f"({', '.join(genetic_parts)})")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"method.alpha must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ConfigError(f"method.temperature must be > 0, got {temperature}")
        if embed_dim < 1 or genetic_hidden < 1:
            raise ConfigError("method.embed_dim and method.genetic_hidden must be >= 1")
        if variant_window < 0 or window_features < 1:
            raise ConfigError("method.variant_window must be >= 0 (0: an MLP over all variants) and "
                              "method.window_features >= 1")
        if variant_window and GENOTYPES not in chosen:
            raise ConfigError("method.variant_window needs raw variants (data.genotypes) among the genetic parts")
        self.parts, self.temperature, self.alpha, self.use_views = chosen, float(temperature), float(alpha), use_views
        self.widths = {p: int(genetic_parts[p]) for p in chosen}
        width = int(encoder.out_dim)
        self.image_heads = nn.ModuleDict({p: _mlp(width, width, embed_dim) for p in chosen})
        self.genetic_encoders = nn.ModuleDict({
            p: VariantWindowEncoder(self.widths[p], embed_dim, window=variant_window, window_features=window_features,
                                    hidden=genetic_hidden) if variant_window and p == GENOTYPES
            else _mlp(self.widths[p], genetic_hidden, embed_dim) for p in chosen})

    def check_samples(self, samples: Any) -> None:
        for part, width in self.widths.items():
            values = samples.fields.get(part)
            if values is None:
                raise DataError(f"method contig needs the genetic part {part!r} in the data")
            if tuple(values.shape[1:]) != (width,):
                raise DataError(f"method contig: {part} has shape {tuple(values.shape)}, expected (subjects, {width})")

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"].float()
        if x.shape[0] < 2:
            raise ConfigError("contig needs at least 2 subjects per batch (train.batch_size)")
        if self.use_views and self.views is not None and self.training:
            x = self.views(x)
        features = self.encoder(x)
        metrics: dict[str, float] = {}
        losses = []
        targets = torch.arange(x.shape[0], device=x.device)
        for part in self.parts:
            genetics = batch.get(part)
            if genetics is None:
                raise DataError(f"method contig needs batches with {part!r} (the paired genetics)")
            image_emb = self.image_heads[part](features)
            genetic_emb = self.genetic_encoders[part](genetics.float())
            loss = contig_loss(image_emb, genetic_emb, self.temperature, self.alpha)
            losses.append(loss)
            with torch.no_grad():
                logits = F.normalize(image_emb, dim=1) @ F.normalize(genetic_emb, dim=1).T
                metrics[f"accuracy_{part}"] = float((logits.argmax(dim=1) == targets).float().mean())
            metrics[f"loss_{part}"] = float(loss.detach())
        total = torch.stack(losses).mean()
        metrics["loss"] = float(total.detach())
        return LossOutput(total, metrics)
