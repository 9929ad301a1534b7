"""Checkpoints as safetensors (weights only, never pickle) + a JSON sidecar of plain metadata.

``save_state`` / ``load_state`` are the one weights-only format of the project: a ``.safetensors`` file of named
tensors (torch tensors or numpy arrays) beside a ``.json`` of plain metadata (what to rebuild). Pretrained
models (``save_weights``), every anomaly detector (``anomaly.detectors``: networks, and the arrays of the
non-torch detectors) and the lesion segmenters are written and read through them.

A resumable checkpoint also carries the optimizer's tensors; with the per-epoch random streams of the
trainer, a killed run that resumes continues exactly where an unbroken run would have been.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from biolatent.errors import BiolatentError
from biolatent.rundir import atomic_path, read_json, write_json

_MODEL = "model."
_OPTIM = "optim."


def save_state(path: Path, tensors: Mapping[str, torch.Tensor | np.ndarray], metadata: dict[str, Any]) -> Path:
    """Named tensors (torch or numpy, any dtype) -> ``path`` (.safetensors) and ``metadata`` ->
    ``path.with_suffix('.json')``, each written atomically (the JSON last); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v.detach().cpu())
             .contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(plain, str(tmp))
    write_json(path.with_suffix(".json"), metadata)
    return path


def load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) written by ``save_state``; a missing file is a one-line BiolatentError."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise BiolatentError(f"no saved weights at {path} (needs {path.name} and {meta_path.name})")
    return load_file(str(path)), read_json(meta_path)


def save_weights(path: Path, module: torch.nn.Module, metadata: dict[str, Any]) -> None:
    """Final weights: ``path`` (.safetensors) + ``path.with_suffix('.json')`` (what to rebuild)."""
    save_state(path, module.state_dict(), metadata)


def load_weights(path: Path, module: torch.nn.Module) -> None:
    if not path.is_file():
        raise BiolatentError(f"no weights at {path}: run `biolatent pretrain` first")
    module.load_state_dict(load_file(str(path)), strict=True)


def save_training_state(
    path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Weights + optimizer tensors (safetensors) and ``state`` (epoch, step, ...) as JSON, atomically.

    The JSON is written last: a checkpoint counts only when its JSON names the tensor file's epoch.
    """
    tensors = {_MODEL + k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    optim_state = optimizer.state_dict()
    for param_id, param_state in optim_state["state"].items():
        for key, value in param_state.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{_OPTIM}{param_id}.{key}"] = tensor.detach().cpu().contiguous()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    write_json(path.with_suffix(".json"), {**state, "param_groups": optim_state["param_groups"]})


def load_training_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict]:
    """-> (model state dict, optimizer state dict, metadata)."""
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise BiolatentError(f"nothing to resume: no checkpoint at {path}")
    tensors = load_file(str(path))
    meta = read_json(meta_path)
    model_state = {k[len(_MODEL):]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    optim: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(_OPTIM):
            param_id, name = key[len(_OPTIM):].split(".", 1)
            optim.setdefault(int(param_id), {})[name] = value
    optim_state = {"state": optim, "param_groups": meta.pop("param_groups")}
    return model_state, optim_state, meta
