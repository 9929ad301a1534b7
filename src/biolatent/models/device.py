"""Where a network lives: inputs of a trained network go to the device of its parameters (a network left on a GPU
by training is applied there), results come back to the CPU."""

from __future__ import annotations

import torch


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (else its first buffer; the CPU for a module with neither)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")
