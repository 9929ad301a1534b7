"""The generic LightningModule: wraps any method (``forward(batch) -> LossOutput``) and trains it."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch

from biolatent.types import LossOutput

EpochEndHook = Callable[[int, dict[str, float], "MethodModule"], None]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to zero (Loshchilov & Hutter 2017)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    """``warmup_cosine``, or (``schedule="constant"``) the linear warm-up followed by a constant factor 1."""
    if schedule == "constant" and step >= warmup_steps:
        return 1.0
    return warmup_cosine(step, warmup_steps, total_steps)


def parameter_groups(method: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: every trainable parameter decays by ``weight_decay`` except those the method names in
    ``no_weight_decay()`` (e.g. CLIP's learned temperature, which decay would pull towards 1), as timm does."""
    exempt = set(getattr(method, "no_weight_decay", lambda: ())())
    named = [(name, p) for name, p in method.named_parameters() if p.requires_grad]
    unknown = exempt - {name for name, _ in named}
    if unknown:
        raise ValueError(f"no_weight_decay names unknown parameters: {sorted(unknown)}")
    groups = [{"params": [p for name, p in named if name not in exempt], "weight_decay": weight_decay}]
    if exempt:
        groups.append({"params": [p for name, p in named if name in exempt], "weight_decay": 0.0})
    return groups


class MethodModule(L.LightningModule):
    """Trains ``method`` with AdamW and the warm-up / cosine schedule; per-epoch means of its metrics go to
    ``on_epoch_end`` (on the first process).

    On several processes each one holds a share of the global batch (``train.loader.GlobalBatchSampler``;
    ``global_batch_sizes``: the global batch of each step of an epoch). Its loss is weighted by
    ``world_size x share / global batch`` before DDP averages the gradients, so a step follows the gradient of the
    loss's mean over the global batch even when the shares differ by a sample; the epoch means are sums over all
    processes. A method whose loss is a mean over samples therefore trains as on one process.
    """

    def __init__(
        self,
        method: torch.nn.Module,
        *,
        lr: float,
        weight_decay: float,
        warmup_steps: int,
        total_steps: int,
        step_offset: int = 0,
        epoch_offset: int = 0,
        resume_optimizer: dict | None = None,
        seed: int = 0,
        on_epoch_end: EpochEndHook | None = None,
        schedule: str = "cosine",
        global_batch_sizes: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.method = method
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.step_offset = step_offset
        self.epoch_offset = epoch_offset
        self._resume_optimizer = resume_optimizer
        self.seed = seed
        self._on_epoch_end = on_epoch_end
        self.schedule = schedule
        self.global_batch_sizes = global_batch_sizes
        self._sums: dict[str, float] = {}
        self._count = 0

    def configure_optimizers(self):  # type: ignore[override]
        optimizer = torch.optim.AdamW(parameter_groups(self.method, self.weight_decay), lr=self.lr)
        offset, warmup, total = self.step_offset, self.warmup_steps, self.total_steps
        schedule = self.schedule
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step + offset, warmup, total, schedule)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_start(self) -> None:
        if self._resume_optimizer is not None:
            self.trainer.optimizers[0].load_state_dict(self._resume_optimizer)
            self._resume_optimizer = None

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out: LossOutput = self.method(batch)
        size = int(batch["x"].shape[0])
        self.log("loss", out.loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        values = {"loss": float(out.loss.detach())} | {k: float(v) for k, v in out.metrics.items()}
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value * size
        self._count += size
        return out.loss * self.share_weight(batch_idx, size)

    def share_weight(self, batch_idx: int, size: int) -> float:
        """``world_size x size / global batch``: 1 on one process and for equal shares."""
        world = self.trainer.world_size
        if world == 1 or self.global_batch_sizes is None:
            return 1.0
        return world * size / self.global_batch_sizes[batch_idx]

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:  # type: ignore[override]
        hook = getattr(self.method, "on_train_batch_end", None)
        if hook is not None:
            hook(self.step_offset + self.global_step, self.total_steps)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:  # type: ignore[override]
        # Random views and dropout draw from a stream seeded by (seed, step, rank): a step's randomness does not
        # depend on what ran before it (data-loader internals included), so a resumed run repeats an unbroken one.
        step = self.step_offset + self.global_step
        torch.manual_seed((self.seed * 1_000_003 + step * 7_919 + self.global_rank * 104_729) % 2**63)

    def on_train_epoch_start(self) -> None:
        self._sums, self._count = {}, 0

    def on_train_epoch_end(self) -> None:
        count, sums = float(self._count), dict(self._sums)
        if self.trainer.world_size > 1:  # each process holds its share of the epoch: sum them all (in float64)
            keys = list(sums)  # the same keys in the same order on every process
            totals = torch.tensor([count] + [sums[k] for k in keys], dtype=torch.float64, device=self.device)
            totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
            count, sums = float(totals[0]), dict(zip(keys, totals[1:].tolist(), strict=True))
        means = {k: v / max(1.0, count) for k, v in sums.items()}
        means["lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        if self._on_epoch_end is not None and self.trainer.is_global_zero:
            self._on_epoch_end(self.epoch_offset + self.current_epoch + 1, means, self)
