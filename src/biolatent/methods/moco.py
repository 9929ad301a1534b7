"""Momentum contrast (MoCo).

* ``version=2``: He, Fan, Wu, Xie & Girshick 2020, CVPR, "Momentum contrast for unsupervised visual
  representation learning", with the improvements of Chen, Fan, Girshick & He 2020, arXiv:2003.04297,
  "Improved baselines with momentum contrastive learning" (MLP projection head, temperature 0.2). A query
  encoder and a momentum (EMA) key encoder; the keys of past batches wait in a queue of ``queue_size``
  negatives (a buffer with a write pointer; until it is full only its filled part is used). The momentum is
  fixed, as in the paper. The projection head is Linear, ReLU, Linear.
* ``version=3``: Chen, Xie & He 2021, ICCV, "An empirical study of training self-supervised vision
  transformers": a 3-layer projector with BatchNorm (also on its output, without affine) and a 2-layer predictor
  on the query branch, a symmetrised loss, the keys of the current batch as the only negatives (no queue), the
  loss scaled by ``2 * temperature``, and the momentum raised from ``momentum`` to 1 along a cosine.

Departures from the papers (chosen for small data and short runs; say so when comparing):

* version 2 also uses the other keys of the current batch as negatives, next to the queue, so the first steps
  (empty queue) already have negatives; the paper initialises the queue with random vectors instead.
* The paper's hyper-parameters are for ImageNet: ``momentum`` 0.999 (v2) / 0.99 (v3), queue 65536, heads
  4096 wide. Defaults here: momentum 0.99, queue 4096, hidden width 512, projection 128.
* MoCo v2's shuffling BatchNorm is not implemented; under DDP the keys are gathered over the ranks (so every
  rank's queue receives the same keys, and the BatchNorm of the key encoder sees the local batch only).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.methods.distributed import gather_all
from biolatent.methods.ema import check_momentum, cosine_momentum, ema_update, frozen_copy, mlp
from biolatent.methods.perturb import DefaultPerturbation
from biolatent.types import LossOutput


def contrastive_logits(
    q: torch.Tensor, keys: torch.Tensor, negatives: torch.Tensor | None, temperature: float, offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE logits of normalised queries (B, d) against the keys (M, d, the positive of query i at row
    ``offset + i``) and extra negatives (K, d) -> (logits (B, M + K), labels (B,))."""
    q, keys = F.normalize(q.float(), dim=1), F.normalize(keys.float(), dim=1)
    logits = q @ keys.T
    if negatives is not None and negatives.shape[0] > 0:
        logits = torch.cat([logits, q @ negatives.float().T], dim=1)
    labels = torch.arange(q.shape[0], device=q.device) + offset
    return logits / temperature, labels


class MoCo(SSLMethod):
    """Query encoder (+ projector [+ predictor]) against a momentum key encoder (+ projector).

    ``embed`` is the query encoder's output. ``version`` 2 (queue) or 3 (predictor, symmetric, no queue).
    """

    name: ClassVar[str] = "moco"
    modalities: ClassVar[tuple[str, ...]] = ("counts", "image2d", "volume", "cine")

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        version: int = 2,
        projection_dim: int = 128,
        hidden_dim: int = 512,
        temperature: float = 0.2,
        momentum: float = 0.99,
        queue_size: int = 4096,
    ) -> None:
        super().__init__(encoder, views=views if views is not None else DefaultPerturbation())
        if version not in (2, 3):
            raise ConfigError(f"method.version must be 2 or 3, got {version}")
        if temperature <= 0:
            raise ConfigError(f"method.temperature must be > 0, got {temperature}")
        if version == 2 and queue_size < 1:
            raise ConfigError(f"method.queue_size must be >= 1, got {queue_size}")
        check_momentum(momentum)
        self.version, self.temperature, self.base_momentum = version, temperature, momentum
        self.momentum = momentum
        width = int(encoder.out_dim)
        if version == 2:
            self.projector = mlp(width, hidden_dim, projection_dim, layers=2, batch_norm=False)
        else:
            self.projector = mlp(width, hidden_dim, projection_dim, layers=3, last_batch_norm=True)
            self.predictor = mlp(projection_dim, hidden_dim, projection_dim, layers=2)
        self.key_encoder = frozen_copy(encoder)
        self.key_projector = frozen_copy(self.projector)
        if version == 2:
            self.queue_size = int(queue_size)
            self.register_buffer("queue", torch.zeros(self.queue_size, projection_dim))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
            self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))

    def check_samples(self, samples: object) -> None:
        """A queue as long as the data set would hold each sample's own earlier keys as its negatives."""
        n = len(samples)  # type: ignore[arg-type]
        if self.version == 2 and self.queue_size >= n:
            raise DataError(f"method.queue_size {self.queue_size} must be smaller than the number of samples ({n}): "
                            "the queue would hold every sample's own earlier keys as negatives")

    # --- the queue (version 2) ---
    def queued(self) -> torch.Tensor:
        """The filled part of the queue (K', d), K' <= queue_size."""
        return self.queue[: int(self.queue_filled)]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` at the pointer (wrapping around), move the pointer, grow the filled count."""
        keys = F.normalize(keys.detach().float(), dim=1).to(self.queue.dtype)
        size, n = self.queue_size, keys.shape[0]
        if n >= size:
            self.queue.copy_(keys[-size:])
            self.queue_ptr.fill_(0)
            self.queue_filled.fill_(size)
            return
        ptr = int(self.queue_ptr)
        rows = (ptr + torch.arange(n, device=self.queue.device)) % size
        self.queue[rows] = keys
        self.queue_ptr.fill_((ptr + n) % size)
        self.queue_filled.fill_(min(size, int(self.queue_filled) + n))

    # --- forward ---
    def _query(self, x: torch.Tensor) -> torch.Tensor:
        z = self.projector(self.encoder(x))
        return self.predictor(z) if self.version == 3 else z

    @torch.no_grad()
    def _key(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.key_projector(self.key_encoder(x)).float(), dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"]
        if x.shape[0] < 2:
            raise ConfigError("moco needs at least 2 samples per batch (train.batch_size)")
        assert self.views is not None
        x1, x2 = self.views(x), self.views(x)
        if self.version == 2:
            keys, offset = gather_all(self._key(x2))
            logits, labels = contrastive_logits(self._query(x1), keys, self.queued().clone(), self.temperature,
                                                offset)
            loss = F.cross_entropy(logits, labels)
            if self.training:
                self.enqueue(keys)
            fill = float(self.queue_filled) / self.queue_size
            return LossOutput(loss, {"loss": float(loss.detach()), "accuracy": _accuracy(logits, labels),
                                     "queue_fill": fill})
        k1, offset = gather_all(self._key(x1))
        k2, _ = gather_all(self._key(x2))
        logits1, labels = contrastive_logits(self._query(x1), k2, None, self.temperature, offset)
        logits2, _ = contrastive_logits(self._query(x2), k1, None, self.temperature, offset)
        scale = 2.0 * self.temperature
        loss = (F.cross_entropy(logits1, labels) + F.cross_entropy(logits2, labels)) * scale
        accuracy = (_accuracy(logits1, labels) + _accuracy(logits2, labels)) / 2
        return LossOutput(loss, {"loss": float(loss.detach()), "accuracy": accuracy, "momentum": self.momentum})

    def on_train_batch_end(self, step: int, total_steps: int) -> None:
        """EMA update of the key encoder and projector: fixed momentum (v2), cosine to 1 (v3)."""
        if self.version == 3:
            self.momentum = cosine_momentum(self.base_momentum, step, total_steps)
        ema_update(self.key_encoder, self.encoder, self.momentum)
        ema_update(self.key_projector, self.projector, self.momentum)

    def extra_repr(self) -> str:
        return f"version={self.version}, temperature={self.temperature}, momentum={self.base_momentum}"


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.detach().argmax(dim=1) == labels).float().mean())
