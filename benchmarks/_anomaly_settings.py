"""Training settings per image detector shared by the anomaly benchmarks (2D slices and 3D volumes).

Reconstruction models train for the benchmark's epoch budget at lr 1e-2; the diffusion models for 10/3 of it
at lr 5e-3 (their CPU sweeps on 32-px slices: 30 epochs left ddpm at pixel AUROC 0.76, 100 epochs reached 0.92)
and reverse distillation for 2/3 of it at lr 1e-3 (20 epochs sufficed, higher rates were unstable);
PatchCore is not trained (memory bank of a random frozen ResNet, the weak baseline; an SSL encoder is an
option of the detector, see ``configs/anomaly/slices_patchcore.yaml``).
"""

from __future__ import annotations

from typing import Any

LR = {"ae": 0.01, "vae": 0.01, "cevae": 0.01, "ddpm": 5e-3, "masked_diffusion": 5e-3, "reverse_distillation": 1e-3,
      "patchcore": 1e-3}
EPOCH_FACTOR = {"ddpm": 10 / 3, "masked_diffusion": 10 / 3, "reverse_distillation": 2 / 3, "patchcore": 1.0}


def train_settings(name: str, epochs: int) -> dict[str, Any]:
    """The ``train`` section of the detector's anomaly config for a benchmark budget of ``epochs``."""
    return {"epochs": max(1, round(epochs * EPOCH_FACTOR.get(name, 1.0))), "batch_size": 16, "lr": LR.get(name, 0.01)}
