"""How long training waits for data: a Lightning callback splitting wall time into data wait and step compute.

Wait is the time from the end of one training step (or the start of an epoch) to the start of the next step: the
data loader producing and collating the batch, plus the host -> device copy. Compute is the time from the start
to the end of a step (views, forward, backward, optimizer). ``wait_fraction = wait / (wait + compute)``: a loader
that keeps up leaves it near 0.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class LoaderWaitTimer(L.Callback):
    """Accumulates ``wait_s`` and ``compute_s`` over every training step of a run (module docstring)."""

    def __init__(self) -> None:
        self.wait_s = 0.0
        self.compute_s = 0.0
        self.steps = 0
        self._ready: float | None = None
        self._started = 0.0

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._ready = time.perf_counter()

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._started = time.perf_counter()
        if self._ready is not None:
            self.wait_s += self._started - self._ready

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._ready = time.perf_counter()
        self.compute_s += self._ready - self._started
        self.steps += 1

    @property
    def wait_fraction(self) -> float:
        total = self.wait_s + self.compute_s
        return self.wait_s / total if total > 0 else 0.0
