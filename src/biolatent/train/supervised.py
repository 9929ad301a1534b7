"""The supervised baseline: the same encoder architecture, trained from scratch on the labelled samples only.

A classifier (cross-entropy) for class labels, a regressor (mean squared error on standardised targets) for
continuous ones. Each is a method like any other (``forward(batch) -> LossOutput``), so the generic trainer
drives it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from biolatent.config import TrainConfig
from biolatent.errors import DataError
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

LR_MULTIPLIERS = (0.3, 1.0, 3.0)
"""The supervised baseline's learning-rate grid, as multiples of the run's ``train.lr``."""
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
    :class:`SupervisedRegressor` whose target standardisation uses ``labels[train_idx]`` only (``n_classes`` is
    unused). Every call trains fresh encoders (seeded).

    Budget rule: at most ``steps`` optimizer steps. With ``validation_split(train_idx, seed) -> (fit_idx,
    val_idx)`` (positions into ``train_idx``; None when the labelled subset is too small to spare a validation
    part), one model per learning rate ``train.lr * m`` (``m`` in ``lr_multipliers``) trains on ``fit_idx`` only;
    its validation loss is checked every ``check_every`` steps and training stops after ``patience`` checks
    without improvement, keeping the best weights (:class:`~biolatent.train.early_stopping.EarlyStopping`); the
    learning rate with the lowest best validation loss wins (ties: the first in the grid). The test samples are
    only predicted, by the chosen model, after the choice. Without a validation part it trains once with
    ``train.lr`` for all ``steps``. ``on_trained`` receives ``{n_fit, n_validation, max_steps, steps, best_step,
    lr, validation_loss, lr_grid}`` of each call (``lr_grid``: one ``{lr, steps, best_step, validation_loss}``
    per learning rate tried).
    """
    from biolatent.train.early_stopping import EarlyStopping
    from biolatent.train.fit import fit

    if task not in ("classification", "regression"):
        raise DataError(f"task must be classification or regression, got {task!r}")
    if not lr_multipliers or any(m <= 0 for m in lr_multipliers):
        raise DataError(f"lr_multipliers must be positive, got {list(lr_multipliers)}")
    regression = task == "regression"
    if not regression and n_classes is None:
        raise DataError("a supervised classifier needs n_classes")
    y = torch.as_tensor(labels, dtype=torch.float32 if regression else torch.long)

    def make_model(train_idx: np.ndarray) -> SupervisedClassifier | SupervisedRegressor:
        if not regression:
            return SupervisedClassifier(make_encoder(), int(n_classes), views=make_views())
        targets = np.asarray(labels, dtype=np.float64)[train_idx]
        sd = targets.std(axis=0)
        return SupervisedRegressor(make_encoder(), target_mean=targets.mean(axis=0),
                                   target_sd=np.where(sd > 0, sd, 1.0),
                                   n_outputs=1 if targets.ndim == 1 else targets.shape[1], views=make_views())

    def train_one(lr: float, fit_idx: np.ndarray, val_idx: np.ndarray | None, seed: int,
                  ) -> tuple[nn.Module, dict]:
        torch.manual_seed(seed)
        model = make_model(fit_idx)
        config = train.model_copy(update={"seed": seed, "warmup_epochs": 0, "lr": lr})
        stopper = None
        if val_idx is not None:
            val = torch.as_tensor(val_idx, dtype=torch.long)
            stopper = EarlyStopping({"x": x[val], "y": y[val]}, every=check_every, patience=patience)
        fit(model, x, config, y=y, indices=torch.as_tensor(fit_idx, dtype=torch.long),
            max_steps=steps, progress=False, callbacks=[] if stopper is None else [stopper])
        loss = None
        if stopper is not None:
            stopper.restore(model)
            model.eval()
            # no check ran (fewer steps than check_every) or none was finite: the final weights' validation loss
            loss = stopper.best_loss if math.isfinite(stopper.best_loss) else stopper.validation_loss(model)
            loss = float(loss) if math.isfinite(loss) else None
        return model, {"lr": lr,
                       "steps": steps if stopper is None or stopper.stopped_step is None else stopper.stopped_step,
                       "best_step": None if stopper is None else stopper.best_step, "validation_loss": loss}

    def finetune(train_idx: np.ndarray, test_idx: np.ndarray, seed: int) -> np.ndarray:
        train_idx = np.asarray(train_idx)
        parts = validation_split(train_idx, seed) if validation_split is not None else None
        fit_idx = train_idx if parts is None else train_idx[parts[0]]
        val_idx = None if parts is None else train_idx[parts[1]]
        grid = [float(train.lr)] if parts is None else [float(train.lr) * float(m) for m in lr_multipliers]
        best_model, best, trials = None, None, []
        for lr in grid:
            model, trial = train_one(lr, fit_idx, val_idx, seed)
            trials.append(trial)
            loss = math.inf if trial["validation_loss"] is None else trial["validation_loss"]
            if best is None or loss < best[0]:
                best_model, best = model, (loss, trial)
            else:
                del model
        assert best_model is not None and best is not None
        chosen = best[1]
        if on_trained is not None:
            on_trained({"n_fit": int(fit_idx.size), "n_validation": int(train_idx.size - fit_idx.size),
                        "max_steps": steps, "steps": chosen["steps"], "best_step": chosen["best_step"],
                        "lr": chosen["lr"], "validation_loss": chosen["validation_loss"], "lr_grid": trials})
        x_test = x[torch.as_tensor(test_idx, dtype=torch.long)]
        return best_model.predict(x_test) if regression else best_model.predict_proba(x_test)

    return finetune
