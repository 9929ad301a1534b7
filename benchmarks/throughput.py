"""Pre-training throughput of every method x modality, with FLOPs and model-FLOP utilisation (MFU).

    python benchmarks/throughput.py [--device cpu|cuda] [--precision 32-true|bf16-mixed] [--steps N]
                                    [--batch-size B] [--warmup W] [--quick] [--out-dir DIR]
                                    [--realistic [--channels-last] [--compile] [--realistic-cases NAME ...]]

For each case (counts: vae, simclr with the mlp encoder, 2000 genes; dna: mlm, simclr with the bert
encoder, 200 bp, k = 6; image2d: simclr with resnet, mae with vit, 64 x 64 RGB) the real method object is
built the way ``biolatent pretrain`` builds it (``load_config`` -> ``biolatent.build.build_method``, default
encoder sizes and default views) on tiny seeded synthetic data of the right type
(``biolatent.data.simulate``), moved to the device, and trained with AdamW (lr 1e-3, weight decay 1e-4, as
the trainer does) on a small pool of batches already on the device.

Measured per case:

* ``step_ms``: wall time of one full optimizer step (views + forward + backward + ``AdamW.step`` +
  ``zero_grad``), mean over ``--steps`` steps after ``--warmup`` steps, with ``torch.cuda.synchronize``
  around the timed loop on CUDA; forward under ``torch.autocast(dtype=bfloat16)`` with ``bf16-mixed``.
  ``samples_per_s = batch_size / step``. Not included: host -> device copies, the DataLoader, Lightning's
  own per-step overhead, gradient clipping.
* ``gflop_per_step``: FLOPs of one forward + backward counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matmuls, convolutions, attention; element-wise ops, norms, the optimizer and the views count 0).
* ``peak_tflops``: the best rate of large square matmuls (``torch.mm``) measured in the same run, in the
  compute dtype of the step (fp32 for ``32-true``, bf16 for ``bf16-mixed``); ``mfu = achieved / peak``.
* ``views_ms``: time of the augmentation calls the method makes per step (counted with a forward hook on
  ``method.views`` during the FLOP-counting step), timed alone; ``pipeline_share = views_ms / step_ms``.
  Methods that use no views (vae, mlm, mae with its default ``use_views=False``) show 0; the k-mer
  tokenisation and masking of mlm run inside its forward and count as step time.

Results are printed and written to ``<out-dir>/throughput-<device>[-bf16][-b<batch>].{json,md}`` (the
batch size is named when it is not the default 128).

``--realistic`` measures the encoders of published pre-training instead of the small defaults, with the same
step, FLOP, peak and MFU measurements (``measure_training``):

* ``simclr-resnet50-224``: SimCLR with ResNet-50 (He et al. 2016: bottleneck blocks, 7x7 stride-2 stem and
  max-pool; 23.5M encoder parameters as torchvision's) on 224 x 224 RGB images, batch 256;
* ``mae-vitb16-224``: MAE (He et al. 2022; decoder 512 wide, 8 deep, 16 heads, normalised-pixel loss, as the MAE
  paper's ViT-B setting) with ViT-B/16 (Dosovitskiy et al. 2021: dim 768, depth 12, 12 heads, 16 x 16 patches;
  85.6M parameters with the fixed sin-cos positions) on 224 x 224 RGB images, batch 256;
* ``simclr-resnet18_3d-96``: SimCLR with an 18-layer 3D ResNet (basic blocks (2, 2, 2, 2), widths 64..512,
  7x7x7 stride-2 stem and max-pool) on 96^3 one-channel volumes (``configs/volume`` pre-trains volumes with
  SimCLR), batch 32.

``--batch-size`` overrides every case's batch; ``--quick`` shrinks the inputs (32 px, 16^3 voxels), the batch
(2) and the peak matmul, keeping the real architectures: a CPU smoke run. The inputs are seeded uniform noise
in [0, 1] (the content changes neither the FLOPs nor the kernels). Options of the realistic cases:

* ``--precision bf16-mixed``: forward under bf16 autocast (as for the default cases);
* ``--channels-last``: the method's parameters and the input batches in ``torch.channels_last``
  (``channels_last_3d`` for volumes), so that cuDNN runs NHWC / NDHWC convolution kernels;
* ``--compile``: ``torch.compile`` of the encoder (``compile_encoder``: its ``forward`` and ``forward_tokens``,
  where the FLOPs are; the views draw new random parameters every step and stay eager); FLOPs are counted on
  the eager method, ``compile_s`` is the first (compiling) step. A compile failure is recorded in ``status``
  and the case is measured eagerly instead;
* pinned-memory loading: ``h2d_ms_pageable`` and ``h2d_ms_pinned`` are the median times of copying one batch
  (``float32``, the case's layout) from pageable and from pinned host memory to the GPU
  (``.to(device, non_blocking=True)`` then a synchronize); ``h2d_ms_pinned`` / ``step_ms`` is the loading
  share a pinned-memory DataLoader would add without overlap (none on the CPU);
* a CUDA out-of-memory error (or any other error, or a case running past ``--case-timeout`` seconds) is caught
  per case and recorded in ``status`` (``oom``, ``error: ...``, ``timeout after ...``) with empty numbers, and
  the run goes on with the next case; the result files are rewritten after every case (``meta.complete``);
  ``peak_mem_GB`` is ``torch.cuda.max_memory_allocated`` of the case; ``params_M`` counts the whole method
  (projection head, MAE decoder), ``encoder_params_M`` the encoder alone.

The peers' published throughput (``PEER_THROUGHPUT``: lightly, solo-learn, MONAI; each with its source URL and
hardware) is printed under the table and stored in the JSON; they are end-to-end figures on other GPUs, for
context only. Realistic results go to ``<out-dir>/throughput-realistic-<device>[-bf16][-channels-last]
[-compile][-b<batch>][-quick].{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from _report import RESULTS_DIR, host_info, markdown_table, write_results
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from biolatent.build import build_method, load_config
from biolatent.data.samples import DataInfo
from biolatent.data.sequence import encode_bases, pad_bases
from biolatent.data.simulate import simulate_counts, simulate_dna, simulate_images
from biolatent.models.resnet import RESNET18_KWARGS, RESNET50_KWARGS

COLUMNS = (
    "method", "modality", "encoder", "batch_size", "params_M", "samples_per_s", "step_ms",
    "gflop_per_step", "achieved_tflops", "peak_tflops", "mfu", "views_ms", "pipeline_share",
)
N_GENES, DNA_LENGTH, KMER, IMAGE_SIZE = 2000, 200, 6, 64
LR, WEIGHT_DECAY = 1e-3, 1e-4  # the trainer's AdamW defaults (biolatent.config.TrainConfig)
DEFAULT_BATCH_SIZE = 128  # the trainer's default (biolatent.config.TrainConfig)
POOL_BATCHES = 2  # distinct batches cycled through (different data each step, no host -> device copy)
REALISTIC_COLUMNS = (
    "case", "method", "encoder", "input", "batch_size", "params_M", "encoder_params_M", "samples_per_s", "step_ms",
    "gflop_per_step", "achieved_tflops", "peak_tflops", "mfu", "views_ms", "h2d_ms_pageable", "h2d_ms_pinned",
    "memory_format", "compiled", "compile_s", "peak_mem_GB", "status",
)
H2D_REPEATS = 5


@dataclass(frozen=True)
class Case:
    """One benchmarked combination of a method, a data modality and an encoder."""

    method: str
    modality: str
    encoder: str


CASES = (
    Case("vae", "counts", "mlp"),
    Case("simclr", "counts", "mlp"),
    Case("mlm", "dna", "bert"),
    Case("simclr", "dna", "bert"),
    Case("simclr", "image2d", "resnet"),
    Case("mae", "image2d", "vit"),
)


@dataclass(frozen=True)
class RealisticCase:
    """One published-scale encoder: its method, modality, hyper-parameters, input and default batch size."""

    name: str
    method: str
    modality: str
    encoder: str
    model: dict[str, Any]
    method_kwargs: dict[str, Any]
    channels: int
    image_size: int
    quick_size: int
    batch_size: int  # on an H200 (141 GB) in bf16: 2D at 224 px ~ the papers' per-GPU batch, 3D at 96^3 ~ MONAI's

    @property
    def spatial_dims(self) -> int:
        return 3 if self.modality == "volume" else 2


VIT_B16 = {"patch_size": 16, "dim": 768, "depth": 12, "heads": 12}  # Dosovitskiy et al. 2021, Table 1
MAE_BASE = {"decoder_dim": 512, "decoder_depth": 8, "decoder_heads": 16, "norm_pix_loss": True}  # He et al. 2022
REALISTIC_CASES = (
    RealisticCase("simclr-resnet50-224", "simclr", "image2d", "resnet", dict(RESNET50_KWARGS), {}, 3, 224, 32, 256),
    RealisticCase("mae-vitb16-224", "mae", "image2d", "vit", dict(VIT_B16), dict(MAE_BASE), 3, 224, 32, 256),
    RealisticCase("simclr-resnet18_3d-96", "simclr", "volume", "resnet", dict(RESNET18_KWARGS), {}, 1, 96, 16, 32),
)

# Published pre-training throughput of the peers, with the source and the hardware. Only figures found in the
# peers' own documentation are listed; ``samples_per_s`` is derived from the published time where the number of
# images is stated (ImageNet-1k train: 1,281,167 images), else None. They are end-to-end (data loading and
# augmentation included, several GPUs of another kind), not a like-for-like comparison with the step above.
PEER_THROUGHPUT: tuple[dict[str, Any], ...] = (
    {
        "peer": "lightly",
        "setting": "SimCLR, ResNet-50, ImageNet-1k, batch 256, 100 epochs",
        "published": "about two days for 100 epochs",
        "samples_per_s": round(1_281_167 * 100 / (2 * 86_400)),
        "hardware": "2x GeForce RTX 4090 (not an H200; two GPUs)",
        "source": "https://docs.lightly.ai/self-supervised-learning/getting_started/benchmarks.html",
        "note": "derived: 1,281,167 images x 100 epochs / 2 days; approximate ('about'), end to end; a later "
                "version of the page gives 'around four days for 100 epochs (35 min per epoch)' with evaluation "
                "for its ImageNet models on 2x 4090, i.e. about 610 images/s",
    },
    {
        "peer": "solo-learn",
        "setting": "BYOL, ResNet-18 (not ResNet-50), with NVIDIA DALI, 4 workers per GPU",
        "published": "2m 31s per epoch (4m 56s without DALI)",
        "samples_per_s": None,
        "hardware": "2x RTX 2080 Ti, Intel i9-9820X (not an H200)",
        "source": "https://github.com/vturrisi/solo-learn#training-efficiency-for-dali",
        "note": "the README section does not name the dataset's size, so no samples/s is derived; ResNet-18 only",
    },
    {
        "peer": "MONAI",
        "setting": "3D self-supervised pre-training at 96^3",
        "published": None,
        "samples_per_s": None,
        "hardware": None,
        "source": None,
        "note": "no comparable published samples/s figure was found for MONAI (NVIDIA's MONAI Toolkit page "
                "https://docs.nvidia.com/clara/monai/performance.html reports self-supervised workflow times on "
                "A100 80GB, but no per-sample figure could be read from it)",
    },
)
PEER_COLUMNS = ("peer", "setting", "published", "samples_per_s", "hardware", "source", "note")


def synthetic_data(modality: str, n: int, seed: int = 0) -> tuple[DataInfo, dict[str, Any], torch.Tensor]:
    """Seeded synthetic samples of ``modality`` in the loader's layout -> (DataInfo, data config, x)."""
    if modality == "counts":
        adata = simulate_counts(n_cells=n, n_genes=N_GENES, n_types=5, seed=seed)
        x = torch.as_tensor(adata.X, dtype=torch.float32)
        info = DataInfo("counts", n_features=N_GENES, is_counts=True)
        return info, {"modality": "counts", "path": "synthetic"}, x
    if modality == "dna":
        records, _ = simulate_dna(n=n, length=DNA_LENGTH, seed=seed)
        x = pad_bases([encode_bases(seq) for _, seq in records], DNA_LENGTH)
        info = DataInfo("dna", max_length=DNA_LENGTH, kmer=KMER)
        data = {"modality": "dna", "path": "synthetic", "kmer": KMER, "max_length": DNA_LENGTH}
        return info, data, x
    if modality == "image2d":
        images, _ = simulate_images(n=n, size=IMAGE_SIZE, seed=seed)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).contiguous()
        info = DataInfo("image2d", channels=3, image_size=IMAGE_SIZE)
        return info, {"modality": "image2d", "path": "synthetic", "image_size": IMAGE_SIZE}, x
    raise ValueError(f"unknown modality {modality!r}")


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], Any], calls: int, device: torch.device) -> float:
    """Mean wall seconds of ``fn()`` over ``calls`` calls, device work included."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / calls


def measure_peak_tflops(device: torch.device, dtype: torch.dtype, size: int, trials: int = 5) -> float:
    """Best TFLOP/s of ``size x size`` matmuls (2 size^3 FLOPs each) in ``dtype`` on ``device``."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    # enough calls per trial for ~tens of ms on a GPU; 1 call on a CPU (already ~0.1 s)
    calls = 20 if device.type == "cuda" else 1
    for _ in range(3):
        torch.mm(a, b, out=out)
    best = min(seconds_per_call(lambda: torch.mm(a, b, out=out), calls, device) for _ in range(trials))
    return 2.0 * size**3 / best / 1e12


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bf16 for ``bf16-mixed``; nothing for ``32-true``."""
    if precision == "bf16-mixed":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def count_view_calls(method: nn.Module) -> tuple[list[int], Callable[[], None]]:
    """A counter of ``method.views`` calls (a one-element list) and the function removing the hook."""
    calls = [0]
    views = getattr(method, "views", None)
    if not isinstance(views, nn.Module):
        return calls, lambda: None

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        calls[0] += 1

    handle = views.register_forward_hook(hook)
    return calls, handle.remove


def compile_encoder(method: nn.Module) -> Callable[[], None]:
    """Replace ``method.encoder``'s ``forward`` (and ``forward_tokens``, what MAE calls) by ``torch.compile`` of
    them, on the instance (parameter names and the state dict stay as they are); return the function undoing it.

    The encoder is where the FLOPs are; the views draw new random parameters every step, which would make
    a compiled whole method recompile."""
    encoder = method.encoder
    names = [name for name in ("forward", "forward_tokens") if callable(getattr(encoder, name, None))]
    for name in names:
        setattr(encoder, name, torch.compile(getattr(encoder, name)))

    def restore() -> None:
        for name in names:
            encoder.__dict__.pop(name, None)

    return restore


@dataclass
class Measured:
    """What ``measure_training`` measured of one method on one pool of batches."""

    step_s: float
    flops: float
    views_s: float
    views_per_step: int
    compiled: bool = False
    compile_s: float | None = None
    compile_error: str | None = None


def measure_training(
    method: nn.Module, batches: list[dict[str, torch.Tensor]], *, device: torch.device, precision: str,
    steps: int, warmup: int, compile_method: bool = False,
) -> Measured:
    """Train ``method`` with AdamW on ``batches`` (cycled): FLOPs of one forward + backward (eager), the mean
    step time over ``steps`` steps after ``warmup`` steps, and the time of the views it calls per step.

    ``compile_method``: the timed steps run the encoder compiled (``compile_encoder``); ``compile_s`` is the first
    compiled step (the compilation), and a failure there is kept in ``compile_error`` and the steps run eagerly.
    """
    optimizer = torch.optim.AdamW(
        [p for p in method.parameters() if p.requires_grad], lr=LR, weight_decay=WEIGHT_DECAY
    )
    pool: Iterator[dict[str, torch.Tensor]] = itertools.cycle(batches)

    def forward_backward() -> None:
        with autocast_context(device, precision):
            out = method(next(pool))
        out.loss.backward()

    def step() -> None:
        forward_backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # FLOPs of forward + backward (and how often the method calls its views), on an untimed eager step
    view_calls, remove_hook = count_view_calls(method)
    with FlopCounterMode(display=False) as counter:
        forward_backward()
    remove_hook()
    optimizer.zero_grad(set_to_none=True)
    flops = float(counter.get_total_flops())
    views_per_step = view_calls[0]

    compiled, compile_s, compile_error = False, None, None
    if compile_method:
        restore = compile_encoder(method)
        try:
            compile_s = seconds_per_call(step, 1, device)
            compiled = True
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # a compiler error of this case: recorded, the case runs eagerly
            message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            compile_error = f"{type(exc).__name__}: {message}"
            restore()
            optimizer.zero_grad(set_to_none=True)
    for _ in range(warmup):
        step()
    step_s = seconds_per_call(step, steps, device)

    views_s = 0.0
    if views_per_step:
        views = method.views

        def run_views() -> None:
            with torch.no_grad(), autocast_context(device, precision):
                views(next(pool)["x"])

        for _ in range(max(1, warmup)):
            run_views()
        views_s = views_per_step * seconds_per_call(run_views, steps, device)
    return Measured(step_s, flops, views_s, views_per_step, compiled, compile_s, compile_error)


def device_batches(x: torch.Tensor, batch_size: int, device: torch.device,
                   memory_format: torch.memory_format = torch.contiguous_format) -> list[dict[str, torch.Tensor]]:
    """``x`` split into batches of ``batch_size`` on ``device`` (``{"x", "index"}``, as the loader yields)."""
    x = x.to(device)
    return [
        {"x": chunk.contiguous(memory_format=memory_format),
         "index": torch.arange(i * batch_size, i * batch_size + len(chunk), device=device)}
        for i, chunk in enumerate(x.split(batch_size))
    ]


def benchmark_case(
    case: Case, *, device: torch.device, precision: str, batch_size: int, steps: int, warmup: int,
    peak_tflops: float, seed: int = 0,
) -> dict[str, Any]:
    """Build ``case``'s method on synthetic data and measure one row of the throughput table."""
    torch.manual_seed(seed)
    info, data, x = synthetic_data(case.modality, batch_size * POOL_BATCHES, seed)
    config = load_config({"data": data, "method": {"name": case.method}, "model": {"name": case.encoder}})
    method = build_method(config, info).to(device).train()
    m = measure_training(method, device_batches(x, batch_size, device), device=device, precision=precision,
                         steps=steps, warmup=warmup)
    achieved = m.flops / m.step_s / 1e12
    row = {
        "method": case.method,
        "modality": case.modality,
        "encoder": case.encoder,
        "batch_size": batch_size,
        "params_M": sum(p.numel() for p in method.parameters()) / 1e6,
        "samples_per_s": batch_size / m.step_s,
        "step_ms": m.step_s * 1e3,
        "gflop_per_step": m.flops / 1e9,
        "achieved_tflops": achieved,
        "peak_tflops": peak_tflops,
        "mfu": achieved / peak_tflops,
        "views_ms": m.views_s * 1e3,
        "pipeline_share": m.views_s / m.step_s,
        "views_per_step": m.views_per_step,
    }
    return row


def realistic_method(case: RealisticCase, size: int) -> tuple[nn.Module, DataInfo]:
    """``case``'s method built the way ``biolatent pretrain`` builds it (``load_config`` -> ``build_method``)."""
    info = DataInfo(case.modality, channels=case.channels, image_size=size, spatial_dims=case.spatial_dims)
    config = load_config({
        "data": {"modality": case.modality, "path": "synthetic", "image_size": size},
        "method": {"name": case.method, **case.method_kwargs},
        "model": {"name": case.encoder, **case.model},
    })
    return build_method(config, info), info


def host_to_device_ms(x: torch.Tensor, device: torch.device, repeats: int = H2D_REPEATS) -> tuple[float, float]:
    """Median ms of copying ``x`` from pageable and from pinned host memory to ``device`` (``non_blocking``)."""
    pinned = x.pin_memory()

    def copy_ms(source: torch.Tensor) -> float:
        times = []
        for _ in range(repeats + 1):  # the first copy is a warm-up
            synchronize(device)
            start = time.perf_counter()
            source.to(device, non_blocking=True)
            synchronize(device)
            times.append((time.perf_counter() - start) * 1e3)
        return sorted(times[1:])[len(times[1:]) // 2]

    return copy_ms(x), copy_ms(pinned)


def benchmark_realistic(
    case: RealisticCase, *, device: torch.device, precision: str, batch_size: int, size: int, steps: int,
    warmup: int, peak_tflops: float, channels_last: bool, compile_method: bool, seed: int = 0,
) -> dict[str, Any]:
    """One row of the realistic table; a CUDA out-of-memory error gives a row with ``status`` ``oom``, any other
    error one with ``status`` ``error: ...`` (and its traceback on stderr)."""
    memory_format = torch.contiguous_format
    if channels_last:
        memory_format = torch.channels_last_3d if case.spatial_dims == 3 else torch.channels_last
    shape = (case.channels, *[size] * case.spatial_dims)
    row: dict[str, Any] = {
        "case": case.name, "method": case.method, "encoder": case.encoder,
        "input": "x".join(str(n) for n in shape), "batch_size": batch_size,
        "memory_format": str(memory_format).removeprefix("torch."), "compiled": False, "status": "ok",
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    method = None
    try:
        torch.manual_seed(seed)
        method, _ = realistic_method(case, size)
        row["params_M"] = sum(p.numel() for p in method.parameters()) / 1e6
        row["encoder_params_M"] = sum(p.numel() for p in method.encoder.parameters()) / 1e6
        method = method.to(device, memory_format=memory_format).train()
        generator = torch.Generator(device="cpu").manual_seed(seed)
        x = torch.rand(batch_size * POOL_BATCHES, *shape, generator=generator)
        if device.type == "cuda":
            row["h2d_ms_pageable"], row["h2d_ms_pinned"] = host_to_device_ms(x[:batch_size].contiguous(), device)
        batches = device_batches(x, batch_size, device, memory_format)
        del x
        m = measure_training(method, batches, device=device, precision=precision, steps=steps, warmup=warmup,
                             compile_method=compile_method)
    except torch.OutOfMemoryError as exc:
        row["status"] = "oom: " + str(exc).strip().splitlines()[0][:120]
        return row
    except Exception as exc:  # any other failure of this case: recorded (traceback on stderr), the run goes on
        traceback.print_exc()
        message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        row["status"] = f"error: {type(exc).__name__}: {message}"
        return row
    finally:
        del method
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    achieved = m.flops / m.step_s / 1e12
    row.update({
        "samples_per_s": batch_size / m.step_s,
        "step_ms": m.step_s * 1e3,
        "gflop_per_step": m.flops / 1e9,
        "achieved_tflops": achieved,
        "peak_tflops": peak_tflops,
        "mfu": achieved / peak_tflops,
        "views_ms": m.views_s * 1e3,
        "views_per_step": m.views_per_step,
        "compiled": m.compiled,
        "compile_s": m.compile_s,
    })
    if m.compile_error:
        row["status"] = f"compile failed, eager: {m.compile_error}"
    if device.type == "cuda":
        row["peak_mem_GB"] = torch.cuda.max_memory_allocated(device) / 1e9
    return row


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (``/proc/cpuinfo`` where there is one)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return str(host_info()["processor"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per case (default 20, quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3, quick 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (the trainer's), quick 8")
    parser.add_argument("--peak-size", type=int, default=None,
                        help="side of the peak-measuring matmuls (default 2048 cpu, 8192 cuda; quick 256)")
    parser.add_argument("--cases", nargs="*", default=None,
                        help="subset as method:modality, e.g. vae:counts mae:image2d (default all)")
    parser.add_argument("--quick", action="store_true", help="tiny batch, 2 steps: a smoke run")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--realistic", action="store_true",
                        help="ResNet-50 / ViT-B/16 at 224 px and a 3D ResNet-18 at 96^3 instead of the default "
                             "cases (default 10 steps, each case's own batch size; quick: 1 step, batch 2)")
    parser.add_argument("--realistic-cases", nargs="*", default=None,
                        help=f"subset of the realistic cases (default all: "
                             f"{', '.join(c.name for c in REALISTIC_CASES)})")
    parser.add_argument("--channels-last", action="store_true",
                        help="realistic: parameters and inputs in channels_last (channels_last_3d for volumes)")
    parser.add_argument("--compile", action="store_true", help="realistic: torch.compile the encoder")
    parser.add_argument("--case-timeout", type=float, default=300.0,
                        help="realistic: seconds one case may take before it is recorded as a timeout and the "
                             "run goes on (0: no limit; default 300)")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.realistic:
        args.steps = args.steps or (1 if quick else 10)
        args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
        args.batch_size = args.batch_size or (2 if quick else None)  # None: each case's own
    else:
        if args.channels_last or args.compile or args.realistic_cases:
            parser.error("--channels-last, --compile and --realistic-cases go with --realistic")
        args.steps = args.steps or (2 if quick else 20)
        args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
        args.batch_size = args.batch_size or (8 if quick else DEFAULT_BATCH_SIZE)
    args.peak_size = args.peak_size or (256 if quick else (8192 if args.device == "cuda" else 2048))
    if args.steps < 1 or (args.batch_size is not None and args.batch_size < 2):
        parser.error("--steps must be >= 1 and --batch-size >= 2")
    return args


def select_cases(names: list[str] | None) -> list[Case]:
    """All cases, or those named ``method:modality``."""
    if not names:
        return list(CASES)
    known = {f"{c.method}:{c.modality}": c for c in CASES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[n] for n in names]


def select_realistic(names: list[str] | None) -> list[RealisticCase]:
    """All realistic cases, or those named."""
    known = {c.name: c for c in REALISTIC_CASES}
    if not names:
        return list(REALISTIC_CASES)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown realistic case(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[n] for n in names]


class CaseTimeout(BaseException):
    """A realistic case ran past ``--case-timeout`` (a BaseException: no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``CaseTimeout`` in the main thread after ``seconds`` (SIGALRM; nothing where there is none or 0)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"timeout after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def realistic_main(args: argparse.Namespace, device: torch.device, peak: float,
                   meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``--realistic`` run: one row per case, the peers' published figures, JSON + markdown (rewritten after
    every case, so that a run stopped from outside keeps the cases done; ``meta.complete`` says whether all ran)."""
    cases = select_realistic(args.realistic_cases)
    meta = {**meta, "channels_last": args.channels_last, "compile": args.compile, "case_timeout_s": args.case_timeout,
            "cases": {c.name: {"method": c.method, "modality": c.modality, "encoder": c.encoder, "model": c.model,
                               "method_kwargs": c.method_kwargs} for c in cases}}
    options = ", ".join([args.precision] + ["channels-last"] * args.channels_last + ["torch.compile"] * args.compile)
    title = (f"# Pre-training throughput of published-scale encoders: {args.device} ({meta['device_name']}), "
             f"{options}\n\n{args.steps} timed steps after {args.warmup} warm-up, "
             f"torch {torch.__version__}; peak = best {args.peak_size}x{args.peak_size} {meta['peak_dtype']} matmul "
             f"of the same run. Generated by `python benchmarks/throughput.py --realistic` on "
             f"{meta['host']['timestamp']}.\n")
    peers_text = ("## Published throughput of the peers (end to end, other hardware: context, not a like-for-like "
                  "comparison)\n\n" + markdown_table(list(PEER_THROUGHPUT), PEER_COLUMNS))
    stem = f"throughput-realistic-{args.device}" + ("-bf16" if args.precision == "bf16-mixed" else "")
    stem += "-channels-last" * args.channels_last + "-compile" * args.compile
    if args.batch_size and not args.quick:
        stem += f"-b{args.batch_size}"
    stem += "-quick" * args.quick
    rows: list[dict[str, Any]] = []

    def write(complete: bool) -> tuple[Path, Path]:
        payload = {"meta": {**meta, "complete": complete}, "columns": list(REALISTIC_COLUMNS), "rows": rows,
                   "peers": list(PEER_THROUGHPUT)}
        table = markdown_table(rows, REALISTIC_COLUMNS)
        return write_results(args.out_dir, stem, payload, f"{title}\n{table}\n\n{peers_text}\n", args=args)

    for case in cases:
        batch_size = args.batch_size or case.batch_size
        size = case.quick_size if args.quick else case.image_size
        try:
            with time_limit(args.case_timeout):
                row = benchmark_realistic(case, device=device, precision=args.precision, batch_size=batch_size,
                                          size=size, steps=args.steps, warmup=args.warmup, peak_tflops=peak,
                                          channels_last=args.channels_last, compile_method=args.compile)
        except CaseTimeout as exc:
            row = {"case": case.name, "method": case.method, "encoder": case.encoder, "batch_size": batch_size,
                   "status": str(exc)}
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        if "samples_per_s" in row:
            print(f"  {case.name:<22} {row['samples_per_s']:10.1f} samples/s {row['step_ms']:9.2f} ms/step  "
                  f"mfu {row['mfu']:.3f}  {row['status']}", flush=True)
        else:
            print(f"  {case.name:<22} {row['status']}", flush=True)
        rows.append(row)
        write(complete=False)
    json_path, md_path = write(complete=True)
    print()
    print(markdown_table(rows, REALISTIC_COLUMNS))
    print()
    print(peers_text)
    print(f"\nwrote {json_path} and {md_path}")
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print the table, write JSON + markdown; return the rows."""
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    peak_dtype = torch.bfloat16 if args.precision == "bf16-mixed" else torch.float32
    load_before = os.getloadavg()
    peak = measure_peak_tflops(device, peak_dtype, args.peak_size)
    print(f"peak {str(peak_dtype).removeprefix('torch.')} matmul ({args.peak_size}^2) on {args.device}: "
          f"{peak:.3f} TFLOP/s", flush=True)
    if args.realistic:
        meta = {
            "device": args.device, "device_name": device_name(device), "precision": args.precision,
            "peak_dtype": str(peak_dtype).removeprefix("torch."), "peak_matmul_size": args.peak_size,
            "steps": args.steps, "warmup": args.warmup, "quick": args.quick, "loadavg_1_5_15_before": load_before,
            "host": host_info(),
        }
        rows = realistic_main(args, device, peak, meta)
        return rows
    rows = []
    for case in select_cases(args.cases):
        row = benchmark_case(case, device=device, precision=args.precision, batch_size=args.batch_size,
                             steps=args.steps, warmup=args.warmup, peak_tflops=peak)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"  {case.method:>6} {case.modality:<8} {row['samples_per_s']:10.1f} samples/s "
              f"{row['step_ms']:9.2f} ms/step  mfu {row['mfu']:.3f}", flush=True)
        rows.append(row)

    meta = {
        "device": args.device,
        "device_name": device_name(device),
        "precision": args.precision,
        "peak_dtype": str(peak_dtype).removeprefix("torch."),
        "peak_matmul_size": args.peak_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "quick": args.quick,
        "loadavg_1_5_15_before": load_before,
        "loadavg_1_5_15_after": os.getloadavg(),
        "sizes": {"n_genes": N_GENES, "dna_length": DNA_LENGTH, "kmer": KMER, "image_size": IMAGE_SIZE},
        "host": host_info(),
    }
    table = markdown_table(rows, COLUMNS)
    title = (f"# Pre-training throughput: {args.device} ({meta['device_name']}), {args.precision}\n\n"
             f"{args.steps} timed steps after {args.warmup} warm-up, batch size {args.batch_size}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads; peak = best "
             f"{args.peak_size}x{args.peak_size} {meta['peak_dtype']} matmul of the same run. "
             f"Generated by `python benchmarks/throughput.py` on {meta['host']['timestamp']}.\n")
    print()
    print(table)
    stem = f"throughput-{args.device}" + ("-bf16" if args.precision == "bf16-mixed" else "")
    if not args.quick and args.batch_size != DEFAULT_BATCH_SIZE:
        stem += f"-b{args.batch_size}"
    json_path, md_path = write_results(args.out_dir, stem, {"meta": meta, "columns": list(COLUMNS),
                                                            "rows": rows}, f"{title}\n{table}\n", args=args)
    print(f"\nwrote {json_path} and {md_path}")
    return rows


if __name__ == "__main__":
    main()
