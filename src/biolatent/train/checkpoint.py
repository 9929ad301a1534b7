"""Checkpoints as safetensors (weights only, never pickle) + a JSON sidecar of plain metadata.

A resumable checkpoint also carries the optimizer's tensors; with the per-epoch random streams of the
trainer, a killed run that resumes continues exactly where an unbroken run would have been.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from biolatent.errors import BiolatentError
from biolatent.rundir import atomic_path, read_json, write_json

_MODEL = "model."
_OPTIM = "optim."


def save_weights(path: Path, module: torch.nn.Module, metadata: dict[str, Any]) -> None:
    """Final weights: ``path`` (.safetensors) + ``path.with_suffix('.json')`` (what to rebuild)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    write_json(path.with_suffix(".json"), metadata)


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
