"""Contrastive image-expression pre-training for spatial transcriptomics.

CLIP (Radford, Kim, Hallacy, Ramesh, Goh, Agarwal, Sastry, Askell, Mishkin, Clark, Krueger & Sutskever 2021,
ICML, "Learning transferable visual models from natural language supervision") applied to the (tile, spot
expression) pairs of a slide, as BLEEP does (Xie, Zhou, Li, Tang, Hu, Guo & Zhang 2023, NeurIPS, "Spatially
resolved gene expression prediction from H&E histology images via bi-modal contrastive learning").

The image encoder is the built encoder (``model:``) followed by a projection head (Linear, GELU, Linear) into a
joint space of ``embed_dim``; the expression encoder is an ``MLPEncoder`` over the spot's raw counts
(``log1p_normalize`` inside it) whose last linear layer maps into the same joint space. Both embeddings are
L2-normalised and compared by the symmetric InfoNCE loss of CLIP: logits = exp(t) * cos(image_i, expression_j),
cross-entropy of each image against the batch's expressions and of each expression against the images,
averaged. The temperature is learned through its log, t = log(1 / temperature), initialised at
``temperature_init`` (CLIP: 0.07) and clipped after every optimizer step so that exp(t) <= 100, as CLIP does.

``embed(x)`` returns the *projected* image embedding (the joint space, not normalised): it is what CLIP's
``encode_image`` returns, what linear probes of CLIP use, and what BLEEP's retrieval (``retrieval_predict``)
compares with the expression embeddings of ``embed_expression``, so ``embeddings.h5ad`` serves both.
Batches carry the tiles in ``x`` and the spot's raw expression in ``expression`` (the loader's field).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.methods.distributed import gather_with_grad
from biolatent.models.mlp import MLPEncoder
from biolatent.types import LossOutput

MAX_LOGIT_SCALE = 100.0  # CLIP clips the learned logit scale at 100


def paired_logits(a: torch.Tensor, b: torch.Tensor, all_a: torch.Tensor | None = None,
                  all_b: torch.Tensor | None = None, offset: int = 0,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cosine similarities of paired, L2-normalised embeddings for a symmetric InfoNCE -> (this process's ``a`` rows
    x every ``b``, its ``b`` rows x every ``a``, the positives' columns).

    ``all_a`` / ``all_b`` (M, d): every process's rows (``methods.distributed.gather_with_grad``), this process's
    from row ``offset``; default ``a`` and ``b`` themselves (one process). Weighted by share (n / M, as the
    training module weighs them), the processes' cross-entropies and gradients add up to those of one process.
    """
    all_a = a if all_a is None else all_a
    all_b = b if all_b is None else all_b
    targets = torch.arange(a.shape[0], device=a.device) + offset
    return a @ all_b.T, b @ all_a.T, targets


def gathered_paired_logits(a_emb: torch.Tensor, b_emb: torch.Tensor,
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``paired_logits`` of the normalised embeddings against those of every process (the whole global batch
    under DDP, the batch itself otherwise)."""
    a, b = F.normalize(a_emb, dim=1), F.normalize(b_emb, dim=1)
    all_a, offset = gather_with_grad(a)
    all_b, _ = gather_with_grad(b)
    return paired_logits(a, b, all_a, all_b, offset)


def clip_loss(
    image_emb: torch.Tensor, expression_emb: torch.Tensor, logit_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE of CLIP -> (loss, logits (B, M) image rows x every expression column, positives).

    ``logit_scale`` is exp(t); row i of both inputs is the same spot. Under DDP the columns are the global batch's
    (``gathered_paired_logits``), so the loss equals one process's.
    """
    image_rows, expression_rows, targets = gathered_paired_logits(image_emb, expression_emb)
    logits = logit_scale * image_rows
    loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logit_scale * expression_rows, targets)) / 2
    return loss, logits, targets


def clip_metrics(loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor,
                 logit_scale: torch.Tensor) -> dict[str, float]:
    """What a CLIP step logs: the loss, the rate at which a row's best match is its own pair, the temperature."""
    accuracy = (logits.detach().argmax(dim=1) == targets).float().mean()
    return {"loss": float(loss.detach()), "accuracy": float(accuracy),
            "temperature": float(1.0 / logit_scale.detach().exp())}


def clamp_logit_scale(logit_scale: torch.Tensor) -> None:
    """Clip a learned log logit scale at log(100) in place, as CLIP does after every optimizer step."""
    with torch.no_grad():
        logit_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))


def retrieval_predict(
    query_emb: torch.Tensor, reference_emb: torch.Tensor, reference_expression: torch.Tensor, k: int = 50,
    chunk: int = 1024,
) -> torch.Tensor:
    """BLEEP's prediction of the expression of query spots (Xie et al. 2023) -> (Q, G).

    ``query_emb`` (Q, E): image embeddings of the query spots (``CLIP.embed``); ``reference_emb`` (R, E): the
    joint-space embeddings of the reference spots (``CLIP.embed_expression`` of their expression, BLEEP's
    choice; image embeddings work too); ``reference_expression`` (R, G): the values to average. Each query
    takes its ``k`` nearest references by cosine similarity and averages their expression with BLEEP's
    weights exp(-||q - r||^2) over the k (on L2-normalised embeddings, i.e. a softmax of 2 * cosine).
    """
    n_ref = reference_emb.shape[0]
    if reference_expression.shape[0] != n_ref:
        raise DataError(f"retrieval: {n_ref} reference embeddings but {reference_expression.shape[0]} "
                        "reference expression rows")
    if not 1 <= k <= n_ref:
        raise ConfigError(f"retrieval: k must be in 1..{n_ref} (the number of reference spots), got {k}")
    reference = F.normalize(reference_emb.float(), dim=1)
    values = reference_expression.float()
    parts = []
    for start in range(0, query_emb.shape[0], chunk):
        query = F.normalize(query_emb[start : start + chunk].float(), dim=1)
        similarity, index = (query @ reference.T).topk(k, dim=1)
        weights = torch.softmax(2.0 * similarity, dim=1)  # exp(-(2 - 2 cos)) normalised over the k
        parts.append(torch.einsum("qk,qkg->qg", weights, values[index]))
    return torch.cat(parts) if parts else values.new_zeros(0, values.shape[1])


class CLIP(SSLMethod):
    """Image encoder + projection vs expression MLP, symmetric InfoNCE with a learned temperature."""

    name: ClassVar[str] = "clip"
    modalities: ClassVar[tuple[str, ...]] = ("spatial",)
    data_kwargs: ClassVar[dict[str, str]] = {"n_genes": "n_features"}

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        n_genes: int | None = None,
        embed_dim: int = 128,
        expression_hidden: tuple[int, ...] = (256,),
        expression_dropout: float = 0.1,
        expression_transform: Literal["log1p_normalize", "log1p", "none"] = "log1p_normalize",
        temperature_init: float = 0.07,
        use_views: bool = False,
    ) -> None:
        super().__init__(encoder, views=views)
        if n_genes is None or n_genes < 1:
            raise ConfigError("method clip needs the number of genes of the data (n_genes, filled from the data)")
        if temperature_init < 1.0 / MAX_LOGIT_SCALE:
            raise ConfigError(f"method.temperature_init must be >= {1 / MAX_LOGIT_SCALE}, got {temperature_init}")
        if embed_dim < 1:
            raise ConfigError(f"method.embed_dim must be >= 1, got {embed_dim}")
        self.n_genes, self.use_views = int(n_genes), use_views
        width = int(encoder.out_dim)
        self.image_projection = nn.Sequential(nn.Linear(width, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))
        self.expression_encoder = MLPEncoder(
            self.n_genes, hidden_dims=tuple(expression_hidden), out_dim=embed_dim, dropout=expression_dropout,
            input_transform=expression_transform,
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature_init)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Image embedding in the joint space (B, embed_dim), not normalised (see the module docstring)."""
        return self.image_projection(self.encoder(x.float()))

    def embed_expression(self, expression: torch.Tensor) -> torch.Tensor:
        """Expression embedding in the joint space (B, embed_dim) from the raw values (B, n_genes)."""
        return self.expression_encoder(expression)

    def check_data(self, info: Any) -> None:
        super().check_data(info)
        if info.n_features != self.n_genes:
            raise DataError(f"method clip was built for {self.n_genes} genes but the data have {info.n_features}")

    def check_samples(self, samples: Any) -> None:
        expression = samples.fields.get("expression")
        if expression is None:
            raise DataError("method clip needs the spots' expression (the data's 'expression' field)")
        if tuple(expression.shape[1:]) != (self.n_genes,):
            raise DataError(f"method clip: expression has shape {tuple(expression.shape)}, "
                            f"expected (spots, {self.n_genes})")

    def no_weight_decay(self) -> tuple[str, ...]:
        """The learned temperature is not weight-decayed (CLIP)."""
        return ("logit_scale",)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x, expression = batch["x"].float(), batch.get("expression")
        if expression is None:
            raise DataError("method clip needs batches with 'expression' (the spots' expression)")
        if x.shape[0] < 2:
            raise ConfigError("clip needs at least 2 samples per batch (train.batch_size)")
        if self.use_views and self.views is not None and self.training:
            x = self.views(x)
        loss, logits, targets = clip_loss(self.embed(x), self.embed_expression(expression), self.logit_scale.exp())
        return LossOutput(loss, clip_metrics(loss, logits, targets, self.logit_scale))

    def on_train_batch_end(self, step: int, total_steps: int) -> None:
        """Clip the learned logit scale at log(100) after every optimizer step, as CLIP does."""
        clamp_logit_scale(self.logit_scale)
