"""Early stopping on a held-out validation part: the budget rule of the supervised baselines.

Every ``every`` optimizer steps the method's loss on the validation batch is computed (eval mode, no
gradients); the weights with the lowest validation loss are kept, and training stops once ``patience``
evaluations in a row brought no improvement of at least ``min_delta``. After training, ``restore(method)``
loads the best weights. This is the "early stopping" of Prechelt (1998), "Early stopping - but when?", in
Neural Networks: Tricks of the Trade (LNCS 1524), with the simplest of his criteria (no improvement for a
fixed number of checks).

:func:`train_with_early_stopping` is the whole rule, shared by every supervised baseline: the learning rate is
picked from ``train.lr`` x ``LR_MULTIPLIERS`` (``train.supervised``) and the step by early stopping, both on the
validation part of the labelled subset only.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import lightning as L
import numpy as np
import torch

from biolatent.config import TrainConfig
from biolatent.train.lr_grid import LR_MULTIPLIERS


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
    make_model: Callable[[np.ndarray], torch.nn.Module],
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
    lr_multipliers: Sequence[float] = LR_MULTIPLIERS,
    on_trained: Callable[[dict], None] | None = None,
) -> torch.nn.Module:
    """The supervised baselines' budget rule; returns the chosen model (eval mode when it early-stopped).

    ``make_model(fit_idx)`` builds a fresh model (``forward(batch) -> LossOutput``; ``fit_idx``: the samples it
    trains on, e.g. for target standardisation), seeded with ``seed``. With ``validation_split(train_idx, seed)
    -> (fit, validation)`` positions (None: no part to spare), one model per learning rate ``train.lr * m`` (``m``
    in ``lr_multipliers``) trains with ``train.fit`` for at most ``steps`` optimizer steps on the fit part only,
    stops early on the validation loss (checked every ``check_every`` steps, ``patience`` checks) and keeps its
    best weights; the learning rate with the lowest validation loss wins (ties: the first). Without a validation
    part one model trains with ``train.lr`` for all ``steps``. Only ``train_idx`` is ever looked at. ``fields``
    (per-sample tensors, e.g. paired records) go to the batches and to the validation batch. ``on_trained``
    receives ``{n_fit, n_validation, max_steps, steps, best_step, lr, validation_loss, lr_grid}`` (``lr_grid``:
    ``{lr, steps, best_step, validation_loss}`` of every learning rate tried).
    """
    from biolatent.errors import DataError
    from biolatent.train.fit import fit

    if not lr_multipliers or any(m <= 0 for m in lr_multipliers):
        raise DataError(f"lr_multipliers must be positive, got {list(lr_multipliers)}")
    train_idx = np.asarray(train_idx)
    parts = validation_split(train_idx, seed) if validation_split is not None else None
    fit_idx = train_idx if parts is None else train_idx[parts[0]]
    validation = None
    if parts is not None:
        val = torch.as_tensor(train_idx[parts[1]], dtype=torch.long)
        validation = {"x": x[val], "y": y[val], **{key: value[val] for key, value in (fields or {}).items()}}
    grid = [float(train.lr)] if parts is None else [float(train.lr) * float(m) for m in lr_multipliers]
    best_model, best_loss, chosen, trials = None, math.inf, None, []
    for lr in grid:
        torch.manual_seed(seed)
        model = make_model(fit_idx)
        stopper = None if validation is None else EarlyStopping(validation, every=check_every, patience=patience)
        fit(model, x, train.model_copy(update={"seed": seed, "warmup_epochs": 0, "lr": lr}), y=y,
            indices=torch.as_tensor(fit_idx, dtype=torch.long), max_steps=steps, progress=False,
            callbacks=[] if stopper is None else [stopper], fields=fields)
        loss = None
        if stopper is not None:
            stopper.restore(model)
            model.eval()
            # no check ran (fewer steps than check_every) or none was finite: the final weights' validation loss
            value = stopper.best_loss if math.isfinite(stopper.best_loss) else stopper.validation_loss(model)
            loss = float(value) if math.isfinite(value) else None
        trial = {"lr": lr, "steps": steps if stopper is None or stopper.stopped_step is None else stopper.stopped_step,
                 "best_step": None if stopper is None else stopper.best_step, "validation_loss": loss}
        trials.append(trial)
        if chosen is None or (loss is not None and loss < best_loss):
            best_model, best_loss, chosen = model, math.inf if loss is None else loss, trial
    assert best_model is not None and chosen is not None
    if on_trained is not None:
        on_trained({"n_fit": int(fit_idx.size), "n_validation": int(train_idx.size - fit_idx.size),
                    "max_steps": steps, "steps": chosen["steps"], "best_step": chosen["best_step"],
                    "lr": chosen["lr"], "validation_loss": chosen["validation_loss"], "lr_grid": trials})
    return best_model
