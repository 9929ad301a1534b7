"""The supervised multi-task baseline of paired image + records data: both encoders trained from scratch.

The comparison the review makes for rare-disease classification from images and health records: a supervised
model that sees the same data (the image and the records of each labelled subject) and several labels at once
(the rare disease and the common conditions recorded for the same subjects), trained with the same budget rule
as the other supervised baselines (``train.early_stopping.train_with_early_stopping``: at most ``steps`` optimizer
steps, the learning rate from a grid and the step by early stopping on a validation part of the labelled subset,
the best weights kept; the test samples never looked at).

``MultiTaskPairedClassifier``: [f(x), g(records)] -> one linear head per task; the loss is the mean over tasks of
the cross-entropy of the labelled entries (label -1: unknown for that subject), each task's classes weighted by
the inverse of their counts in the batch's labels when ``balanced`` (a rare class is otherwise never predicted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from biolatent.config import TrainConfig
from biolatent.data.paired import RECORDS
from biolatent.errors import DataError
from biolatent.train.lr_grid import LR_MULTIPLIERS
from biolatent.types import LossOutput

UNKNOWN = -1


def balanced_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Per-class weights n / (k * count_c) of the known labels ``y`` (sklearn's "balanced"); 0 for absent classes."""
    known = y[y != UNKNOWN]
    counts = torch.bincount(known, minlength=n_classes).float()
    weights = torch.where(counts > 0, known.numel() / (n_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights


class MultiTaskPairedClassifier(nn.Module):
    """Image encoder + records encoder, concatenated features, one linear head per task (module docstring)."""

    def __init__(self, image_encoder: nn.Module, records_encoder: nn.Module, n_classes: Sequence[int], *,
                 views: nn.Module | None = None, balanced: bool = True) -> None:
        super().__init__()
        if not n_classes or min(n_classes) < 2:
            raise DataError(f"every task needs at least 2 classes, got {list(n_classes)}")
        self.image_encoder, self.records_encoder, self.views = image_encoder, records_encoder, views
        self.n_classes, self.balanced = [int(k) for k in n_classes], balanced
        width = int(image_encoder.out_dim) + int(records_encoder.out_dim)
        self.heads = nn.ModuleList(nn.Linear(width, k) for k in self.n_classes)

    def features(self, x: torch.Tensor, records: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.image_encoder(x.float()), self.records_encoder(records)], dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x, records, y = batch["x"], batch.get(RECORDS), batch["y"]
        if records is None:
            raise DataError("the multi-task model needs batches with the paired records ('records')")
        if self.views is not None and self.training:
            x = self.views(x)
        features = self.features(x, records)
        losses = []
        for task, (head, k) in enumerate(zip(self.heads, self.n_classes, strict=True)):
            labels = y[:, task]
            if not bool((labels != UNKNOWN).any()):
                continue
            weight = balanced_weights(labels, k) if self.balanced else None
            losses.append(F.cross_entropy(head(features), labels, weight=weight, ignore_index=UNKNOWN))
        loss = torch.stack(losses).mean() if losses else features.sum() * 0.0
        return LossOutput(loss, {"loss": float(loss.detach())})

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, records: torch.Tensor, task: int = 0,
                      batch_size: int = 256) -> np.ndarray:
        """Class probabilities of one task (n, n_classes[task])."""
        self.eval()
        parts = [torch.softmax(self.heads[task](self.features(x[i : i + batch_size], records[i : i + batch_size])),
                               dim=1) for i in range(0, x.shape[0], batch_size)]
        return torch.cat(parts).float().cpu().numpy()


def multitask_baseline(
    make_model: Callable[[], MultiTaskPairedClassifier],
    x: torch.Tensor,
    records: torch.Tensor,
    labels: np.ndarray,
    train: TrainConfig,
    steps: int,
    *,
    validation_split: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray] | None] | None = None,
    check_every: int = 10,
    patience: int = 5,
    lr_multipliers: Sequence[float] = LR_MULTIPLIERS,
    on_trained: Callable[[dict], None] | None = None,
) -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    """A ``finetune(train_idx, test_idx, seed) -> probabilities of task 0`` for the label-efficiency sweep
    (``evaluate.efficiency.run_label_efficiency``): ``labels`` (N, tasks) int class codes (-1 unknown), task 0
    the one scored; the other tasks' labels of the labelled subjects are the extra supervision. Budget rule as
    ``train.supervised.supervised_baseline`` (same ``steps``, validation part, learning-rate grid, early stopping,
    best weights)."""
    from biolatent.train.early_stopping import train_with_early_stopping

    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] != x.shape[0] or records.shape[0] != x.shape[0]:
        raise DataError(f"labels must be (subjects, tasks) for {x.shape[0]} subjects, got {labels.shape}")
    y = torch.as_tensor(labels, dtype=torch.long)

    def finetune(train_idx: np.ndarray, test_idx: np.ndarray, seed: int) -> np.ndarray:
        model = train_with_early_stopping(lambda _: make_model(), x, y, np.asarray(train_idx), train, steps, seed,
                                          fields={RECORDS: records}, validation_split=validation_split,
                                          check_every=check_every, patience=patience,
                                          lr_multipliers=lr_multipliers, on_trained=on_trained)
        test = torch.as_tensor(test_idx, dtype=torch.long)
        return model.predict_proba(x[test], records[test], task=0)

    return finetune
