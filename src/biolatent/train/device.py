"""Where a trained model is applied: on the accelerator its ``train`` section trains on (a visible GPU for
``accelerator: auto``, ``gpu`` or ``cuda``), else on the CPU. Lightning hands a model back on the CPU after
training; scoring and prediction move it here, so a run trained on a GPU is also scored there."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from biolatent.config import TrainConfig


def uses_cuda(train: TrainConfig) -> bool:
    """Whether ``train`` trains on a CUDA GPU on this machine (asked for, or ``auto`` and one is visible)."""
    return train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def inference_device(train: TrainConfig | None) -> torch.device:
    """The first CUDA device when ``train`` trains on one (:func:`uses_cuda`), else the CPU (also for None)."""
    return torch.device("cuda") if train is not None and uses_cuda(train) else torch.device("cpu")
