"""The contract every view module follows, and seeded sampling helpers shared by the modalities.

A view draws all of its random parameters first (``sample_params``), then applies them
deterministically (``apply``); ``forward`` does both. The same ``torch.Generator`` seed gives the same
parameters and hence the same output, on whole batches at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]


def as_device(device: torch.device | str | None) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def _source_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Random numbers are drawn where the generator lives (a CPU generator cannot fill a CUDA tensor)."""
    return generator.device if generator is not None else device


def rand(shape: Sequence[int], device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """U[0, 1) float32 of ``shape`` on ``device``, drawn from ``generator`` (global RNG when None)."""
    out = torch.rand(tuple(shape), generator=generator, device=_source_device(generator, device))
    return out.to(device)


def randn(shape: Sequence[int], device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal float32 of ``shape`` on ``device``."""
    out = torch.randn(tuple(shape), generator=generator, device=_source_device(generator, device))
    return out.to(device)


def randint(
    low: int, high: int, shape: Sequence[int], device: torch.device, generator: torch.Generator | None = None
) -> Tensor:
    """Integers uniform in [low, high) as int64 of ``shape`` on ``device``."""
    source = _source_device(generator, device)
    out = torch.randint(low, high, tuple(shape), generator=generator, device=source)
    return out.to(device)


def uniform(
    low: float,
    high: float,
    shape: Sequence[int],
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Tensor:
    """U[low, high) float32 of ``shape`` on ``device``."""
    return low + (high - low) * rand(shape, device, generator)


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A 62-bit seed drawn from ``generator``: hands reproducible randomness to code that uses its own RNG."""
    source = _source_device(generator, torch.device("cpu"))
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=source))


def check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


class ViewModule(nn.Module):
    """Base class of the views: ``forward(x, generator) = apply(x, sample_params(len(x), ...))``.

    ``sample_shape`` (the per-sample shape, ``x.shape[1:]``) is passed by ``forward``; called directly,
    ``sample_params`` falls back to the shape the view was built for (from ``DataInfo``) where it needs one.
    """

    def sample_params(
        self,
        n: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
        *,
        sample_shape: Sequence[int] | None = None,
    ) -> Params:
        raise NotImplementedError

    def apply(self, x: Tensor, params: Params) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        params = self.sample_params(x.shape[0], x.device, generator, sample_shape=tuple(x.shape[1:]))
        return self.apply(x, params)
