"""Training settings per image detector shared by the anomaly benchmarks (2D slices and 3D volumes).

Reconstruction models train for the benchmark's epoch budget at lr 1e-2 (their default benchmark setting);
the diffusion models and reverse distillation train at lr 1e-3 (the helpers' CPU sweeps: higher rates diverge);
PatchCore is not trained (memory bank of a random frozen ResNet, the weak baseline; an SSL encoder is an
option of the detector, see ``configs/anomaly/slices_patchcore.yaml``).
"""

from __future__ import annotations

from typing import Any

LR = {"ae": 0.01, "vae": 0.01, "cevae": 0.01, "ddpm": 1e-3, "masked_diffusion": 1e-3, "reverse_distillation": 1e-3,
      "patchcore": 1e-3}
EPOCH_FACTOR = {"ddpm": 2.0, "masked_diffusion": 2.0, "reverse_distillation": 0.67, "patchcore": 1.0}


def train_settings(name: str, epochs: int) -> dict[str, Any]:
    """The ``train`` section of the detector's anomaly config for a benchmark budget of ``epochs``."""
    return {"epochs": max(1, round(epochs * EPOCH_FACTOR.get(name, 1.0))), "batch_size": 16, "lr": LR.get(name, 0.01)}
