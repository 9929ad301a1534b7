"""The supervised baseline: the same encoder architecture, trained from scratch on the labelled samples only.

It is a method like any other (``forward(batch) -> LossOutput``), so the generic trainer drives it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from biolatent.config import TrainConfig
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


def supervised_baseline(
    make_encoder: Callable[[], nn.Module],
    make_views: Callable[[], nn.Module | None],
    x: torch.Tensor,
    labels: np.ndarray,
    n_classes: int,
    train: TrainConfig,
    steps: int,
) -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    """A ``finetune(train_idx, test_idx, seed) -> proba`` callable for the label-efficiency sweep.

    Every call trains a fresh encoder (seeded) for a fixed budget of ``steps`` optimizer steps, whatever
    the number of labels, so that small label fractions are not starved of updates.
    """
    from biolatent.train.fit import fit

    y = torch.as_tensor(labels, dtype=torch.long)

    def finetune(train_idx: np.ndarray, test_idx: np.ndarray, seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        model = SupervisedClassifier(make_encoder(), n_classes, views=make_views())
        config = train.model_copy(update={"seed": seed, "warmup_epochs": 0})
        fit(model, x, config, y=y, indices=torch.as_tensor(train_idx, dtype=torch.long),
            max_steps=steps, progress=False)
        return model.predict_proba(x[torch.as_tensor(test_idx, dtype=torch.long)])

    return finetune
