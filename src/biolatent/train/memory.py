"""Will a training step fit in memory? Estimate it on two samples, refuse a run that would not, before it starts.

A training step holds the weights, their gradients and AdamW's two moments (4 x the parameters), plus the
activations that autograd saves in the forward pass for the backward pass; only the latter grow with the batch,
and on 3D / 3D+time data they are what takes a machine down (a cine batch of 128 at 10 x 32^3 saves tens of GB).

The activations are counted exactly, without allocator statistics (which the CPU does not keep): the forward
pass of a 2-sample batch runs under ``torch.autograd.graph.saved_tensors_hooks`` and every distinct storage
autograd saves is summed once (parameters and buffers excluded). Saved activations grow linearly with the batch
(a contrastive loss's N x N similarities are the one quadratic term, negligible next to the feature maps), so
``bytes(B) = B * bytes(2) / 2``; counting the 2-sample constants as per-sample costs makes this an upper bound.
The peak of a step is above the saved activations: the backward pass holds gradients of the activations and the
views their temporaries. Measured here (peak RSS growth of forward + backward + AdamW steps over the estimate, on
3D ResNets and cine encoders with simclr, byol, dino and mae at batch 4-48) the ratio was 1.24-1.61, so the check
uses ``PEAK_FACTOR`` x the saved activations.
The probe runs on a deep copy of the method under a forked RNG: the run's weights, buffers (BatchNorm statistics,
MoCo queues) and random stream are untouched, so a checked run is the same run as an unchecked one.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch

from biolatent.config import TrainConfig
from biolatent.errors import ConfigError
from biolatent.train.device import uses_cuda

GB = 1e9
AVAILABLE_ENV = "BIOLATENT_MEMORY_GB"  # overrides the memory a training step may use (tests, shared machines)
PROBE_SAMPLES = 2
PEAK_FACTOR = 1.75  # peak of a step / saved activations: measured 1.24-1.61 (module docstring), with a margin


@dataclass(frozen=True)
class StepMemory:
    """Bytes of one training step: ``per_sample`` saved activations, ``fixed`` weights + gradients + AdamW."""

    per_sample: float
    fixed: float

    def activations(self, batch_size: int) -> float:
        return self.per_sample * batch_size

    def peak(self, batch_size: int) -> float:
        """Estimated peak bytes of a step: the fixed part + ``PEAK_FACTOR`` x the saved activations."""
        return self.fixed + PEAK_FACTOR * self.activations(batch_size)

    def largest_batch(self, available: float) -> int:
        """The largest batch whose ``peak`` fits in ``available`` bytes (0 if none)."""
        if self.per_sample <= 0:
            return 1 << 30
        return max(0, int((available - self.fixed) // (PEAK_FACTOR * self.per_sample)))


def saved_activation_bytes(module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    """Bytes autograd saves for backward in ``module(batch)``: distinct storages, parameters and buffers excluded.

    ``module`` is run as given (call it on a copy when its state must not change).
    """
    own = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = module(batch)
    del out
    return sum(seen.values())


def estimate_step_memory(
    method: torch.nn.Module,
    x: torch.Tensor,
    *,
    fields: dict[str, torch.Tensor] | None = None,
    groups: torch.Tensor | None = None,
) -> StepMemory:
    """Memory of a training step of ``method`` on rows of ``x`` (module docstring); ``method`` is not changed.

    The probe runs in float32 on the CPU: an upper bound for mixed precision, the same bytes on any device.
    """
    from torch.utils.data import default_collate

    from biolatent.train.loader import IndexedDataset

    n = min(PROBE_SAMPLES, int(x.shape[0]))
    if n < 1:
        return StepMemory(per_sample=0.0, fixed=0.0)
    probe = copy.deepcopy(method).cpu().float().train()
    dataset = IndexedDataset(x, fields=fields, groups=groups)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        batch = default_collate([dataset[i] for i in range(n)])
        saved = saved_activation_bytes(probe, batch)
    params = sum(p.numel() * p.element_size() for p in method.parameters() if p.requires_grad)
    return StepMemory(per_sample=saved / n, fixed=4.0 * params)


def available_memory(train: TrainConfig) -> tuple[float, str]:
    """(bytes a training step may use, where): ``$BIOLATENT_MEMORY_GB``, else the free memory of the GPU the
    trainer will use, else the machine's available RAM (psutil: MemAvailable on Linux)."""
    override = os.environ.get(AVAILABLE_ENV)
    if override:
        try:
            return float(override) * GB, f"${AVAILABLE_ENV}"
        except ValueError:
            raise ConfigError(f"${AVAILABLE_ENV} must be a number of GB, got {override!r}") from None
    if uses_cuda(train):
        free, _ = torch.cuda.mem_get_info()
        return float(free), "GPU"
    return _available_ram(), "RAM"


def _available_ram() -> float:
    """Bytes of RAM available without swapping: psutil if installed, else /proc/meminfo, else free pages."""
    try:
        import psutil
    except ImportError:
        pass
    else:
        return float(psutil.virtual_memory().available)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_step_memory(estimate: StepMemory, train: TrainConfig, available: float | None = None,
                      processes: int = 1) -> float:
    """Estimated peak bytes of a step at ``train.batch_size`` on the memory it needs; a ``ConfigError`` that names
    the largest batch that fits when it is above ``available`` (default: ``available_memory(train)``).

    With several ``processes`` (DDP, ``train.batch_size`` the global batch) each one steps on its share
    ``batch_size / processes``: on a GPU each process has its own device, on the CPU the processes of one node
    (``processes / train.num_nodes``) share its RAM.
    """
    assert train.batch_size is not None, "resolve the config first (build.resolve_sections)"
    where = "given"
    if available is None:
        available, where = available_memory(train)
    share = max(1, train.batch_size // processes)
    sharing = 1 if uses_cuda(train) else max(1, processes // train.num_nodes)
    needed = sharing * estimate.peak(share)
    if needed <= available:
        return needed
    fits = estimate.largest_batch(available / sharing) * processes
    advice = (f"use train.batch_size: {fits} or less" if fits >= 2 * processes else
              "even a batch of 2 does not fit: use a smaller data.image_size or model.widths, or model.stem_stride: 2")
    split = f" ({share} on each of {processes} processes)" if processes > 1 else ""
    raise ConfigError(
        f"a training step with batch {train.batch_size}{split} needs about {needed / GB:.1f} GB "
        f"({sharing * estimate.activations(share) / GB:.1f} GB of saved activations); "
        f"{available / GB:.1f} GB are available ({where}): {advice}"
    )
