"""Early stopping on a held-out validation part: the budget rule of the supervised baselines.

Every ``every`` optimizer steps the method's loss on the validation batch is computed (eval mode, no
gradients); the weights with the lowest validation loss are kept, and training stops once ``patience``
evaluations in a row brought no improvement of at least ``min_delta``. After training, ``restore(method)``
loads the best weights. This is the "early stopping" of Prechelt (1998), "Early stopping - but when?", in
Neural Networks: Tricks of the Trade (LNCS 1524), with the simplest of his criteria (no improvement for a
fixed number of checks).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import lightning as L
import numpy as np
import torch

from biolatent.config import TrainConfig


class EarlyStopping(L.Callback):
    """A Lightning callback for ``train.fit(..., callbacks=[...])``; see the module docstring."""

    def __init__(self, validation: dict[str, torch.Tensor], *, every: int = 10, patience: int = 5,
                 min_delta: float = 1e-4) -> None:
        if every < 1 or patience < 1:
            raise ValueError(f"every and patience must be at least 1, got {every} and {patience}")
        self.validation = validation
        self.every, self.patience, self.min_delta = every, patience, min_delta
        self.best_loss = math.inf
        self.best_step = 0
        self.stopped_step: int | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self._bad_checks = 0

    @torch.no_grad()
    def validation_loss(self, method: torch.nn.Module) -> float:
        was_training = method.training
        method.eval()
        try:
            device = next(method.parameters()).device
            batch = {key: value.to(device) for key, value in self.validation.items()}
            return float(method(batch).loss)
        finally:
            method.train(was_training)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every:
            return
        loss = self.validation_loss(pl_module.method)
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_step, self._bad_checks = loss, step, 0
            self._best_state = copy.deepcopy(pl_module.method.state_dict())
            return
        self._bad_checks += 1
        if self._bad_checks >= self.patience:
            self.stopped_step = step
            trainer.should_stop = True

    def restore(self, method: torch.nn.Module) -> None:
        """Load the weights of the best validation check (no-op when no check ran)."""
        if self._best_state is not None:
            method.load_state_dict(self._best_state)


def train_with_early_stopping(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    train_idx: np.ndarray,
    train: TrainConfig,
    steps: int,
    seed: int,
    *,
    fields: dict[str, torch.Tensor] | None = None,
    validation_split: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray] | None] | None = None,
    check_every: int = 10,
    patience: int = 5,
    on_trained: Callable[[dict], None] | None = None,
) -> torch.nn.Module:
    """The supervised baselines' budget rule: train ``model`` (``forward(batch) -> LossOutput``) with
    ``train.fit`` for at most ``steps`` optimizer steps on the labelled ``train_idx``; with
    ``validation_split(train_idx, seed) -> (fit, validation)`` positions (None: no part to spare), on the fit part
    only, stopping early on the validation loss and keeping the best weights. ``fields`` (per-sample tensors,
    e.g. paired records) go to the batches and to the validation batch. ``on_trained`` receives ``{n_fit,
    n_validation, steps, best_step}``. Returns the model in eval mode when it early-stopped."""
    from biolatent.train.fit import fit

    parts = validation_split(train_idx, seed) if validation_split is not None else None
    fit_idx = train_idx if parts is None else train_idx[parts[0]]
    config = train.model_copy(update={"seed": seed, "warmup_epochs": 0})
    callbacks = []
    if parts is not None:
        val = torch.as_tensor(train_idx[parts[1]], dtype=torch.long)
        batch = {"x": x[val], "y": y[val], **{key: value[val] for key, value in (fields or {}).items()}}
        callbacks.append(EarlyStopping(batch, every=check_every, patience=patience))
    fit(model, x, config, y=y, indices=torch.as_tensor(fit_idx, dtype=torch.long), max_steps=steps, progress=False,
        callbacks=callbacks, fields=fields)
    if callbacks:
        callbacks[0].restore(model)
        model.eval()
    if on_trained is not None:
        stopper = callbacks[0] if callbacks else None
        on_trained({"n_fit": int(fit_idx.size), "n_validation": int(train_idx.size - fit_idx.size),
                    "steps": steps if stopper is None or stopper.stopped_step is None else stopper.stopped_step,
                    "best_step": None if stopper is None else stopper.best_step})
    return model
