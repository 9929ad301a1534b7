"""The collectives of methods whose loss couples the samples of a batch, for multi-process (DDP) training.

Each process holds its share of the global batch (``train.loader.GlobalBatchSampler``; the shares may differ by
one sample). A contrastive loss with in-batch negatives needs every process's embeddings:

* :func:`gather_all` (no gradient): the keys of MoCo's momentum encoder.
* :func:`gather_with_grad`: SimCLR's projections. The backward pass sums the gradients that every process's
  loss sends to this process's rows, so that with DDP's gradient averaging (and the loss weighting of
  ``train.module.MethodModule``) a step follows the gradient of the loss over the whole global batch, as on one
  process (the approach of SimCLR's own TPU code, Chen et al. 2020).
* :func:`mean_all`: DINO's centre.

Without an initialised process group (or with one process) each returns its input unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def distributed() -> bool:
    """Whether a ``torch.distributed`` process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _row_counts(x: torch.Tensor) -> list[int]:
    """The number of rows of ``x`` on every process, in rank order."""
    size = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s) for s in sizes]


def _gather_rows(x: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Every process's ``x`` (``counts`` rows each, which may differ) concatenated in rank order."""
    longest = max(counts)
    padded = x.contiguous()
    if x.shape[0] < longest:
        padded = torch.cat([padded, padded.new_zeros((longest - x.shape[0], *x.shape[1:]))])
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])


@torch.no_grad()
def gather_all(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``x`` (no gradient) over the processes -> (all rows, the row of this process's first one).

    Without a process group (or with one process) it returns ``(x, 0)``.
    """
    if not distributed():
        return x, 0
    counts = _row_counts(x)
    return _gather_rows(x, counts), sum(counts[: dist.get_rank()])


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward pass sums the incoming gradients over the processes and keeps this process's
    rows (gloo has no reduce-scatter; an all-reduce of the (N, d) gradient is cheap next to the encoder)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, counts: list[int]) -> torch.Tensor:  # type: ignore[override]
        ctx.start = sum(counts[: dist.get_rank()])
        ctx.stop = ctx.start + x.shape[0]
        return _gather_rows(x.detach(), counts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total[ctx.start:ctx.stop], None


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``x`` over the processes, differentiably -> (all rows, the row of this process's first one).

    Gradients flow back to this process's rows from every process's loss. Without a process group (or with one
    process) it returns ``(x, 0)``.
    """
    if not distributed():
        return x, 0
    counts = _row_counts(x)
    return _GatherWithGrad.apply(x, counts), sum(counts[: dist.get_rank()])


@torch.no_grad()
def mean_all(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over the processes (``x`` itself without a process group)."""
    if not distributed():
        return x
    out = x.clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()
