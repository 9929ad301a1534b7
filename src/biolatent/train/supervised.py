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

    The targets are standardised with ``target_mean`` / ``target_sd`` (the labelled subset's, set by the
    caller) so that one learning rate suits targets in any unit (mL, years, a fraction); ``predict``
    returns de-standardised values. ``views`` (if given) augment the training inputs.
    """

    def __init__(
        self, encoder: nn.Module, *, target_mean: float = 0.0, target_sd: float = 1.0, views: nn.Module | None = None
    ) -> None:
        super().__init__()
        if not target_sd > 0:
            raise DataError(f"target_sd must be positive, got {target_sd}")
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, 1)
        self.views = views
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_sd", torch.tensor(float(target_sd)))

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"]
        if self.views is not None and self.training:
            x = self.views(x)
        z = self.head(self.encoder(x)).squeeze(1).float()
        target = (batch["y"].float() - self.target_mean) / self.target_sd
        loss = F.mse_loss(z, target)
        return LossOutput(loss, {"mse_standardised": float(loss.detach())})

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Predicted targets (n,) float64, in the units of the training targets."""
        self.eval()
        out = [self.head(self.encoder(x[i : i + batch_size])).squeeze(1).float()
               for i in range(0, x.shape[0], batch_size)]
        return (torch.cat(out) * self.target_sd + self.target_mean).cpu().numpy().astype(np.float64)


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
) -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    """A ``finetune(train_idx, test_idx, seed)`` callable for the label-efficiency sweep.

    Classification returns class probabilities (len(test_idx), n_classes); ``task="regression"`` returns
    predicted targets (len(test_idx),) from a :class:`SupervisedRegressor` whose target standardisation
    uses ``labels[train_idx]`` only (``n_classes`` is unused). Every call trains a fresh encoder (seeded)
    for a fixed budget of ``steps`` optimizer steps, whatever the number of labels, so that small label
    fractions are not starved of updates.
    """
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
        sd = float(targets.std())
        return SupervisedRegressor(make_encoder(), target_mean=float(targets.mean()), target_sd=sd if sd > 0 else 1.0,
                                   views=make_views())

    def finetune(train_idx: np.ndarray, test_idx: np.ndarray, seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        model = make_model(train_idx)
        config = train.model_copy(update={"seed": seed, "warmup_epochs": 0})
        fit(model, x, config, y=y, indices=torch.as_tensor(train_idx, dtype=torch.long),
            max_steps=steps, progress=False)
        x_test = x[torch.as_tensor(test_idx, dtype=torch.long)]
        return model.predict(x_test) if regression else model.predict_proba(x_test)

    return finetune
