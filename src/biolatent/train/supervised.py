"""The supervised baseline: the same encoder architecture, trained from scratch on the labelled samples only.

A classifier (cross-entropy) for class labels, a regressor (mean squared error on standardised targets) for
continuous ones. Each is a method like any other (``forward(batch) -> LossOutput``), so the generic trainer
drives it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from biolatent.config import TrainConfig
from biolatent.errors import DataError
from biolatent.train.lr_grid import LR_MULTIPLIERS
from biolatent.types import LossOutput


class SupervisedClassifier(nn.Module):
    """Encoder + linear head trained with cross-entropy; ``views`` (if given) augment the training inputs."""

    def __init__(self, encoder: nn.Module, n_classes: int, *, views: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, n_classes)
        self.views = views

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"]
        if self.views is not None and self.training:
            x = self.views(x)
        logits = self.head(self.encoder(x))
        loss = F.cross_entropy(logits, batch["y"])
        accuracy = (logits.argmax(dim=1) == batch["y"]).float().mean()
        return LossOutput(loss, {"accuracy": float(accuracy)})

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        self.eval()
        probs = [
            torch.softmax(self.head(self.encoder(x[i : i + batch_size])).float(), dim=1)
            for i in range(0, x.shape[0], batch_size)
        ]
        return torch.cat(probs).cpu().numpy()


class SupervisedRegressor(nn.Module):
    """Encoder + linear head trained with mean squared error on standardised targets.

    One target (``n_outputs=1``: predictions (n,)) or several at once (e.g. the expression of many genes:
    predictions (n, n_outputs)). The targets are standardised with ``target_mean`` / ``target_sd`` (scalars or one
    value per output; the labelled subset's, set by the caller) so that one learning rate suits targets in any unit
    (mL, years, a fraction, log counts); ``predict`` returns de-standardised values. ``views`` (if given) augment
    the training inputs.
    """

    def __init__(
        self, encoder: nn.Module, *, target_mean: float | np.ndarray = 0.0, target_sd: float | np.ndarray = 1.0,
        n_outputs: int = 1, views: nn.Module | None = None,
    ) -> None:
        super().__init__()
        mean = torch.as_tensor(np.asarray(target_mean, dtype=np.float32))
        sd = torch.as_tensor(np.asarray(target_sd, dtype=np.float32))
        if not bool((sd > 0).all()):
            raise DataError(f"target_sd must be positive, got {target_sd}")
        self.encoder = encoder
        self.n_outputs = int(n_outputs)
        self.head = nn.Linear(encoder.out_dim, self.n_outputs)
        self.views = views
        self.register_buffer("target_mean", mean)
        self.register_buffer("target_sd", sd)

    def _outputs(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.encoder(x)).float()
        return z.squeeze(1) if self.n_outputs == 1 else z

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"]
        if self.views is not None and self.training:
            x = self.views(x)
        z = self._outputs(x)
        target = (batch["y"].float() - self.target_mean) / self.target_sd
        loss = F.mse_loss(z, target)
        return LossOutput(loss, {"mse_standardised": float(loss.detach())})

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Predicted targets, (n,) or (n, n_outputs) float64, in the units of the training targets."""
        self.eval()
        out = [self._outputs(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return (torch.cat(out) * self.target_sd + self.target_mean).cpu().numpy().astype(np.float64)


ValidationSplit = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray] | None]
CHECK_EVERY = 10
PATIENCE = 5


def batches_per_epoch(n_samples: int, batch_size: int) -> int:
    """Optimizer steps per epoch of :func:`~biolatent.train.loader.training_loader` over ``n_samples`` samples
    (the last partial batch is dropped when it would hold a single sample)."""
    if n_samples < 1:
        raise DataError(f"no samples to count batches of (n_samples={n_samples})")
    batch_size = min(batch_size, n_samples)
    return n_samples // batch_size + int(n_samples % batch_size > 1)


def pretraining_steps(n_samples: int, train: TrainConfig) -> int:
    """The optimizer steps of a pre-training run of ``train.epochs`` epochs over ``n_samples`` samples in batches
    of ``train.batch_size`` (one device): the supervised baseline's default step budget (:func:`budget`)."""
    if train.batch_size is None:
        raise DataError("train.batch_size is not resolved")
    return train.epochs * batches_per_epoch(n_samples, train.batch_size)


def budget(train: TrainConfig, n_pretrain_samples: int, override: int | None = None,
           lr_multipliers: Sequence[float] = LR_MULTIPLIERS) -> dict:
    """The supervised baseline's budget, as recorded in ``evaluate.json["supervised"]``.

    One rule for every comparison: at most as many optimizer steps as the self-supervised pre-training took
    (``train.epochs`` x the batches per epoch of its ``n_pretrain_samples`` samples; :func:`pretraining_steps`),
    unless ``override`` (``--supervised-steps``) is given; the learning rate is picked from ``train.lr`` x
    ``lr_multipliers`` and the step (early stopping, best-validation weights) on the validation part of each
    labelled subset, never on the test samples.
    """
    rule_steps = pretraining_steps(n_pretrain_samples, train)
    max_steps = rule_steps if override is None else int(override)
    if max_steps < 1:
        raise DataError(f"the supervised baseline needs at least one step, got {max_steps}")
    rule = (f"max_steps = the SSL pre-training's optimizer steps: {train.epochs} epochs x "
            f"{batches_per_epoch(n_pretrain_samples, int(train.batch_size))} batches of {n_pretrain_samples} samples "
            f"(batch size {train.batch_size}) = {rule_steps}")
    return {
        "max_steps": max_steps,
        "max_steps_source": "pretraining_steps" if override is None else "--supervised-steps",
        "pretraining_steps": rule_steps,
        "rule": rule if override is None else f"max_steps = {max_steps} (--supervised-steps; the rule gives "
                                               f"{rule_steps}: {rule.split(': ', 1)[1]})",
        "lr_grid": [float(train.lr) * float(m) for m in lr_multipliers],
        "lr_multipliers": [float(m) for m in lr_multipliers],
        "selection": "learning rate with the lowest validation loss, weights of its best validation check "
                     f"(every {CHECK_EVERY} steps, patience {PATIENCE}); on the validation part of the labelled "
                     "subset only (with no validation part: train.lr and all max_steps)",
    }


def budget_sentence(record: dict) -> str:
    """One line about a recorded :func:`budget` for tables and reports."""
    grid = ", ".join(f"{lr:.3g}" for lr in record.get("lr_grid", []))
    return (f"Supervised baseline: at most {record.get('max_steps')} optimizer steps "
            f"({record.get('max_steps_source', 'fixed')}), learning rate from {{{grid}}} and step by early "
            "stopping, both chosen on a validation part of the labelled subset (never the test samples).")


def supervised_baseline(
    make_encoder: Callable[[], nn.Module],
    make_views: Callable[[], nn.Module | None],
    x: torch.Tensor,
    labels: np.ndarray,
    n_classes: int | None,
    train: TrainConfig,
    steps: int,
    *,
    task: str = "classification",
    validation_split: ValidationSplit | None = None,
    check_every: int = CHECK_EVERY,
    patience: int = PATIENCE,
    lr_multipliers: Sequence[float] = LR_MULTIPLIERS,
    on_trained: Callable[[dict], None] | None = None,
) -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    """A ``finetune(train_idx, test_idx, seed)`` callable for the label-efficiency sweep.

    Classification returns class probabilities (len(test_idx), n_classes); ``task="regression"`` returns
    predicted targets (len(test_idx),), or (len(test_idx), t) for 2-D ``labels`` (t targets at once), from a
    :class:`SupervisedRegressor` whose target standardisation uses the labels of the samples it trains on only
    (``n_classes`` is unused). Every call trains fresh encoders (seeded).

    Budget rule: at most ``steps`` optimizer steps. With ``validation_split(train_idx, seed) -> (fit_idx,
    val_idx)`` (positions into ``train_idx``; None when the labelled subset is too small to spare a validation
    part), one model per learning rate ``train.lr * m`` (``m`` in ``lr_multipliers``) trains on ``fit_idx`` only;
    its validation loss is checked every ``check_every`` steps and training stops after ``patience`` checks
    without improvement, keeping the best weights (:func:`~biolatent.train.early_stopping.train_with_early_stopping`);
    the
    learning rate with the lowest best validation loss wins (ties: the first in the grid). The test samples are
    only predicted, by the chosen model, after the choice. Without a validation part it trains once with
    ``train.lr`` for all ``steps``. ``on_trained`` receives ``{n_fit, n_validation, max_steps, steps, best_step,
    lr, validation_loss, lr_grid}`` of each call (``lr_grid``: one ``{lr, steps, best_step, validation_loss}``
    per learning rate tried).
    """
    from biolatent.train.early_stopping import train_with_early_stopping

    if task not in ("classification", "regression"):
        raise DataError(f"task must be classification or regression, got {task!r}")
    if not lr_multipliers or any(m <= 0 for m in lr_multipliers):
        raise DataError(f"lr_multipliers must be positive, got {list(lr_multipliers)}")
    regression = task == "regression"
    if not regression and n_classes is None:
        raise DataError("a supervised classifier needs n_classes")
    y = torch.as_tensor(labels, dtype=torch.float32 if regression else torch.long)

    def make_model(fit_idx: np.ndarray) -> SupervisedClassifier | SupervisedRegressor:
        if not regression:
            return SupervisedClassifier(make_encoder(), int(n_classes), views=make_views())
        targets = np.asarray(labels, dtype=np.float64)[fit_idx]
        sd = targets.std(axis=0)
        return SupervisedRegressor(make_encoder(), target_mean=targets.mean(axis=0),
                                   target_sd=np.where(sd > 0, sd, 1.0),
                                   n_outputs=1 if targets.ndim == 1 else targets.shape[1], views=make_views())

    def finetune(train_idx: np.ndarray, test_idx: np.ndarray, seed: int) -> np.ndarray:
        model = train_with_early_stopping(make_model, x, y, np.asarray(train_idx), train, steps, seed,
                                          validation_split=validation_split, check_every=check_every,
                                          patience=patience, lr_multipliers=lr_multipliers, on_trained=on_trained)
        x_test = x[torch.as_tensor(test_idx, dtype=torch.long)]
        return model.predict(x_test) if regression else model.predict_proba(x_test)

    return finetune
