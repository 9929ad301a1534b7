"""The supervised baseline: the same encoder architecture, trained from scratch on the labelled samples only.

A classifier (cross-entropy) for class labels, a regressor (mean squared error on standardised targets) for
continuous ones. Each is a method like any other (``forward(batch) -> LossOutput``), so the generic trainer
drives it.
"""

from __future__ import annotations

from collections.abc import Callable

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
    check_every: int = 10,
    patience: int = 5,
    on_trained: Callable[[dict], None] | None = None,
) -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    """A ``finetune(train_idx, test_idx, seed)`` callable for the label-efficiency sweep.

    Classification returns class probabilities (len(test_idx), n_classes); ``task="regression"`` returns
    predicted targets (len(test_idx),), or (len(test_idx), t) for 2-D ``labels`` (t targets at once), from a
    :class:`SupervisedRegressor` whose target standardisation uses ``labels[train_idx]`` only (``n_classes`` is
    unused). Every call trains a fresh encoder (seeded).

    Budget rule: at most ``steps`` optimizer steps. With ``validation_split(train_idx, seed) -> (fit_idx,
    val_idx)`` (positions into ``train_idx``; None when the labelled subset is too small to spare a validation
    part), the model trains on ``fit_idx`` only, its validation loss is checked every ``check_every`` steps and
    training stops after ``patience`` checks without improvement, keeping the best weights
    (:class:`~biolatent.train.early_stopping.EarlyStopping`); the test samples are never looked at. Without a
    validation part it trains for all ``steps``. ``on_trained`` receives ``{n_fit, n_validation, steps,
    best_step}`` of each call.
    """
    from biolatent.train.early_stopping import EarlyStopping
    from biolatent.train.fit import fit

    if task not in ("classification", "regression"):
        raise DataError(f"task must be classification or regression, got {task!r}")
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

    def finetune(train_idx: np.ndarray, test_idx: np.ndarray, seed: int) -> np.ndarray:
        train_idx = np.asarray(train_idx)
        parts = validation_split(train_idx, seed) if validation_split is not None else None
        fit_idx = train_idx if parts is None else train_idx[parts[0]]
        torch.manual_seed(seed)
        model = make_model(fit_idx)
        config = train.model_copy(update={"seed": seed, "warmup_epochs": 0})
        callbacks = []
        if parts is not None:
            val = torch.as_tensor(train_idx[parts[1]], dtype=torch.long)
            callbacks.append(EarlyStopping({"x": x[val], "y": y[val]}, every=check_every, patience=patience))
        fit(model, x, config, y=y, indices=torch.as_tensor(fit_idx, dtype=torch.long),
            max_steps=steps, progress=False, callbacks=callbacks)
        if callbacks:
            callbacks[0].restore(model)
            model.eval()
        if on_trained is not None:
            stopper = callbacks[0] if callbacks else None
            on_trained({"n_fit": int(fit_idx.size), "n_validation": int(train_idx.size - fit_idx.size),
                        "steps": steps if stopper is None or stopper.stopped_step is None else stopper.stopped_step,
                        "best_step": None if stopper is None else stopper.best_step})
        x_test = x[torch.as_tensor(test_idx, dtype=torch.long)]
        return model.predict(x_test) if regression else model.predict_proba(x_test)

    return finetune
