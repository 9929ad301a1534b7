"""Pre-training throughput of every method x modality, with FLOPs and model-FLOP utilisation (MFU).

    python benchmarks/throughput.py [--device cpu|cuda] [--precision 32-true|bf16-mixed] [--steps N]
                                    [--batch-size B] [--warmup W] [--quick] [--out-dir DIR]

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
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import os
import time
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

COLUMNS = (
    "method", "modality", "encoder", "batch_size", "params_M", "samples_per_s", "step_ms",
    "gflop_per_step", "achieved_tflops", "peak_tflops", "mfu", "views_ms", "pipeline_share",
)
N_GENES, DNA_LENGTH, KMER, IMAGE_SIZE = 2000, 200, 6, 64
LR, WEIGHT_DECAY = 1e-3, 1e-4  # the trainer's AdamW defaults (biolatent.config.TrainConfig)
DEFAULT_BATCH_SIZE = 128  # the trainer's default (biolatent.config.TrainConfig)
POOL_BATCHES = 2  # distinct batches cycled through (different data each step, no host -> device copy)


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


def benchmark_case(
    case: Case, *, device: torch.device, precision: str, batch_size: int, steps: int, warmup: int,
    peak_tflops: float, seed: int = 0,
) -> dict[str, Any]:
    """Build ``case``'s method on synthetic data and measure one row of the throughput table."""
    torch.manual_seed(seed)
    info, data, x = synthetic_data(case.modality, batch_size * POOL_BATCHES, seed)
    config = load_config({"data": data, "method": {"name": case.method}, "model": {"name": case.encoder}})
    method = build_method(config, info).to(device).train()
    optimizer = torch.optim.AdamW(
        [p for p in method.parameters() if p.requires_grad], lr=LR, weight_decay=WEIGHT_DECAY
    )
    x = x.to(device)
    batches = [
        {"x": chunk, "index": torch.arange(i * batch_size, i * batch_size + len(chunk), device=device)}
        for i, chunk in enumerate(x.split(batch_size))
    ]
    pool: Iterator[dict[str, torch.Tensor]] = itertools.cycle(batches)

    def forward_backward() -> None:
        with autocast_context(device, precision):
            out = method(next(pool))
        out.loss.backward()

    def step() -> None:
        forward_backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # FLOPs of forward + backward (and how often the method calls its views), on an untimed step
    view_calls, remove_hook = count_view_calls(method)
    with FlopCounterMode(display=False) as counter:
        forward_backward()
    remove_hook()
    optimizer.zero_grad(set_to_none=True)
    flops = float(counter.get_total_flops())
    views_per_step = view_calls[0]

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

    achieved = flops / step_s / 1e12
    row = {
        "method": case.method,
        "modality": case.modality,
        "encoder": case.encoder,
        "batch_size": batch_size,
        "params_M": sum(p.numel() for p in method.parameters()) / 1e6,
        "samples_per_s": batch_size / step_s,
        "step_ms": step_s * 1e3,
        "gflop_per_step": flops / 1e9,
        "achieved_tflops": achieved,
        "peak_tflops": peak_tflops,
        "mfu": achieved / peak_tflops,
        "views_ms": views_s * 1e3,
        "pipeline_share": views_s / step_s,
        "views_per_step": views_per_step,
    }
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
    args = parser.parse_args(argv)
    quick = args.quick
    args.steps = args.steps or (2 if quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    args.batch_size = args.batch_size or (8 if quick else DEFAULT_BATCH_SIZE)
    args.peak_size = args.peak_size or (256 if quick else (8192 if args.device == "cuda" else 2048))
    if args.steps < 1 or args.batch_size < 2:
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
