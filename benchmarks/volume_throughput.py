"""3D pre-training throughput (volumes/s) of every example config, the loader's share, and 3D views vs TorchIO.

    python benchmarks/volume_throughput.py [--quick] [--steps N] [--warmup W] [--batch-size B] [--size S]
                                           [--num-workers W] [--repeats R] [--configs NAME ...]
                                           [--device cpu|cuda] [--out-dir DIR]

Part 1, training. For every example config in ``configs/volume`` and ``configs/cine`` the method is built the
way ``biolatent pretrain`` builds it: the YAML's ``method``, ``model`` and ``views`` sections with a synthetic
``data`` section of the same modality (``load_config`` -> ``biolatent.build.build_method``, after
``torch.manual_seed(train.seed)``, then ``method.check_samples``), and trained by the real trainer
(``biolatent.train.fit.fit``: Lightning, the epoch-seeded DataLoader, AdamW, the learning-rate schedule and
gradient clipping of the YAML's ``train`` section) for ``--warmup + --steps`` optimizer steps, with
``--batch-size`` and ``--num-workers`` replacing the YAML's values. The data are seeded synthetic tensors of
side ``--size`` (default 32; the cine configs keep their ``data.frames``): a soft ellipsoidal head with smooth
Gaussian "tissue" blobs for volumes (N, 1, S, S, S); for cines (N, T, S, S, S) a static body with a bright
cavity and a wall that contract and relax over the T frames. MICLe gets ``groups`` (every two consecutive
samples are one subject), so its batches carry ``x_pair`` as in a real run with ``data.group_column``. The
data hold ``batch_size x (warmup + steps)`` samples: all steps run in one epoch (no epoch-boundary overhead).

The timer is ``biolatent.train.timing.LoaderWaitTimer`` (the callback ``pretrain`` uses), restarted after the
``--warmup`` first steps so that the numbers are steady-state (the first step carries lazy initialisation,
allocator warm-up and, with workers, their start): ``wait`` = end of one step to the start of the next (the
DataLoader producing and collating the batch, plus the host -> device copy), ``compute`` = one training step
(the views, which every method applies inside its forward, forward, backward, clipping, optimizer).

* ``step_ms = (wait + compute) / steps``; ``samples_per_s = batch_size / step``; for cines ``frames_per_s =
  samples_per_s x T`` (3D frames per second).
* ``loader_wait_fraction = wait / (wait + compute)`` over the timed steps (``timer.wait_fraction``).
* ``fit_s`` (JSON only): the whole ``fit`` call, Lightning's start-up and the warm-up steps included.

Part 2, views vs the reference tool. ``VolumeViews`` with its default settings (one call on the whole batch of
``B`` volumes (B, 1, S, S, S), and a cine batch (B, T, S, S, S)) against TorchIO (Pérez-García et al. 2021,
"TorchIO: a Python library for efficient loading, preprocessing, augmentation and patch-based sampling of
medical images in deep learning", Computer Methods and Programs in Biomedicine 208) applying the equivalent
random pipeline to one subject at a time in a Python loop, as a TorchIO ``SubjectsLoader`` does per sample:
``Compose([RandomFlip, RandomAffine, RandomElasticDeformation, RandomBiasField, RandomGamma, RandomMotion,
RandomGhosting, RandomNoise])`` in VolumeViews' order with its default probabilities and ranges (the random
resized crop folded into the affine's scales and translation; displacements converted from normalised units
to voxels at 1 mm spacing); a cine goes to TorchIO as one 4D multi-channel image (C = T, W, H, D). Timed:
the median of ``--repeats`` batches after one untimed batch, on the CPU for TorchIO; ``torchio_over_biolatent``
is the ratio of the two (> 1: the batched views are faster).

Results are printed and written to ``<out-dir>/volume_throughput-<device>.{json,md}`` with the host's
provenance.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.build import build_method, load_config
from biolatent.config import TrainConfig, read_yaml
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.data.views.volume import VolumeViews, identity_grid
from biolatent.train.timing import LoaderWaitTimer

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIRS = (ROOT / "configs" / "volume", ROOT / "configs" / "cine")
COLUMNS = (
    "config", "method", "modality", "encoder", "batch_size", "size", "frames", "params_M", "samples_per_s",
    "frames_per_s", "step_ms", "loader_wait_fraction", "num_workers",
)
VIEWS_COLUMNS = ("modality", "batch_size", "input_shape", "biolatent_ms", "torchio_ms", "torchio_over_biolatent")
DEFAULT_FRAMES = 10  # a cine config without data.frames
GENETIC_WIDTH = 5000  # variants of the synthetic genotypes of a config that pairs images with genotypes


# -- synthetic data ---------------------------------------------------------------------------------------
def _soft_inside(distance: torch.Tensor, width: float) -> torch.Tensor:
    """1 inside (distance < 1), 0 outside, a sigmoid edge of ``width`` (normalised radius units)."""
    return torch.sigmoid((1.0 - distance) / width)


def _uniform(low: float, high: float, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def synthetic_volumes(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, S, S, S) float32 in [0, 1]: a soft ellipsoidal head (random axes) with 4 smooth Gaussian blobs."""
    generator = torch.Generator().manual_seed(seed)
    grid = identity_grid((size,) * 3, torch.device("cpu"), torch.float32)  # (S, S, S, 3)
    out = torch.empty(n, 1, size, size, size)
    for start in range(0, n, 16):  # chunks keep the (chunk, S, S, S, k) intermediates small
        m = min(16, n - start)
        axes = _uniform(0.75, 0.95, (m, 1, 1, 1, 3), generator)
        head = _soft_inside((grid / axes).norm(dim=-1), 0.05)  # (m, S, S, S)
        centres = _uniform(-0.4, 0.4, (m, 4, 1, 1, 1, 3), generator)
        sigma = _uniform(0.1, 0.3, (m, 4, 1, 1, 1), generator)
        amplitude = _uniform(-0.1, 0.4, (m, 4, 1, 1, 1), generator)
        blobs = (amplitude * torch.exp(-((grid - centres) ** 2).sum(-1) / (2 * sigma**2))).sum(1)
        out[start : start + m, 0] = (head * (0.5 + blobs)).clamp(0.0, 1.0)
    return out


def synthetic_cines(n: int, size: int, frames: int, seed: int = 0) -> torch.Tensor:
    """(n, T, S, S, S) float32 in [0, 1]: a static body, a bright cavity and its wall contracting over the cycle."""
    generator = torch.Generator().manual_seed(seed)
    grid = identity_grid((size,) * 3, torch.device("cpu"), torch.float32)
    t = torch.arange(frames, dtype=torch.float32) / frames
    contraction = 0.5 * (1.0 - torch.cos(2.0 * math.pi * t))  # 0 at end-diastole, 1 at end-systole
    out = torch.empty(n, frames, size, size, size)
    for i in range(n):
        body_axes = _uniform(0.7, 0.9, (3,), generator)
        body = _soft_inside((grid / body_axes).norm(dim=-1), 0.05)  # (S, S, S)
        centre = _uniform(-0.15, 0.15, (3,), generator)
        radius = (float(_uniform(0.25, 0.4, (1,), generator)) * (1.0 - 0.35 * contraction)).view(-1, 1, 1, 1)
        wall = float(_uniform(0.08, 0.15, (1,), generator))
        distance = (grid - centre).norm(dim=-1)  # (S, S, S)
        cavity = _soft_inside(distance / radius, 0.08)  # (T, S, S, S)
        myocardium = _soft_inside(distance / (radius + wall), 0.08) - cavity
        out[i] = (0.25 * body + 0.7 * cavity + 0.45 * myocardium).clamp(0.0, 1.0)
    return out


def synthetic_samples(modality: str, n: int, size: int, frames: int, seed: int = 0,
                      genetic_width: int | None = None) -> SampleSet:
    """A SampleSet the way the volume / cine loaders return it (MICLe's groups: two scans per subject); with
    ``genetic_width``, each sample paired with standardised genotypes of that many variants (ContIG)."""
    if modality == "volume":
        x = synthetic_volumes(n, size, seed)
        info = DataInfo("volume", channels=1, image_size=size, spatial_dims=3)
    elif modality == "cine":
        x = synthetic_cines(n, size, frames, seed)
        info = DataInfo("cine", channels=1, image_size=size, spatial_dims=3, frames=frames)
    else:
        raise ValueError(f"no synthetic 3D data for modality {modality!r}")
    obs = pd.DataFrame({"subject": [f"s{i // 2}" for i in range(n)]}, index=[f"v{i}" for i in range(n)])
    fields = {}
    if genetic_width:
        info = replace(info, genetic_parts={"genotypes": genetic_width})
        fields["genotypes"] = torch.randn(n, genetic_width, generator=torch.Generator().manual_seed(seed))
    return SampleSet(info, x, obs, fields=fields, groups=torch.arange(n) // 2)


# -- part 1: training ---------------------------------------------------------------------------------------
class SteadyStateTimer(LoaderWaitTimer):
    """``LoaderWaitTimer`` whose counters restart after the first ``warmup`` steps (their wall time is kept
    in ``warmup_s``): ``wait_fraction`` and ``steps`` then describe the steady state only."""

    def __init__(self, warmup: int) -> None:
        super().__init__()
        self.warmup = warmup
        self.warmup_s = 0.0

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.warmup and self.steps == self.warmup:
            self.warmup_s = self.wait_s + self.compute_s
            self.wait_s = self.compute_s = 0.0
            self.steps = self.warmup = 0


def example_configs(names: list[str] | None = None) -> list[Path]:
    """The YAML files of configs/volume and configs/cine (or those whose stem is in ``names``)."""
    paths = [path for folder in CONFIG_DIRS for path in sorted(folder.glob("*.yaml"))]
    if not names:
        return paths
    known = {path.stem: path for path in paths}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown config(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[name] for name in names]


def benchmark_config(
    path: Path, *, size: int, batch_size: int, steps: int, warmup: int, num_workers: int, device: str,
) -> dict[str, Any]:
    """Build ``path``'s method on synthetic data, train it with ``fit`` and measure one row of the table."""
    from biolatent.train.fit import fit

    raw = read_yaml(path)
    modality = raw["data"]["modality"]
    frames = int(raw["data"].get("frames") or DEFAULT_FRAMES)
    data: dict[str, Any] = {"modality": modality, "path": "synthetic", "image_size": size}
    if modality == "cine":
        data["frames"] = frames
    config = load_config({"data": data, **{key: raw[key] for key in ("method", "model", "views") if key in raw}})
    train = TrainConfig(**{**raw.get("train", {}), "batch_size": batch_size, "num_workers": num_workers,
                           "accelerator": "gpu" if device == "cuda" else "cpu", "devices": 1})
    # one sample per step (each seen once), and more than a MoCo queue holds (check_samples refuses fewer)
    n = max(batch_size * (warmup + steps), int(raw["method"].get("queue_size", 0)) + 1)
    genetic_width = GENETIC_WIDTH if raw["data"].get("genotypes") else None  # contig: images + genotypes
    samples = synthetic_samples(modality, n, size, frames, seed=train.seed, genetic_width=genetic_width)
    torch.manual_seed(train.seed)  # as pretrain: the initial weights are part of a seeded run
    method = build_method(config, samples.info)
    method.check_samples(samples)
    groups = samples.groups if config.method.name == "micle" else None
    timer = SteadyStateTimer(warmup)
    started = time.perf_counter()
    fit(method, samples.x, train, callbacks=[timer], max_steps=warmup + steps, progress=False,
        fields=samples.fields, groups=groups)
    fit_s = time.perf_counter() - started
    if timer.steps != steps:
        raise RuntimeError(f"{path.name}: timed {timer.steps} steps, expected {steps}")
    step_s = (timer.wait_s + timer.compute_s) / steps
    samples_per_s = batch_size / step_s
    return {
        "config": f"{path.parent.name}/{path.name}",
        "method": config.method.name,
        "modality": modality,
        "encoder": config.model.name,
        "batch_size": batch_size,
        "size": size,
        "frames": frames if modality == "cine" else None,
        "params_M": sum(p.numel() for p in method.parameters()) / 1e6,
        "samples_per_s": samples_per_s,
        "frames_per_s": samples_per_s * frames if modality == "cine" else None,
        "step_ms": step_s * 1e3,
        "compute_ms": timer.compute_s / steps * 1e3,
        "wait_ms": timer.wait_s / steps * 1e3,
        "loader_wait_fraction": timer.wait_fraction,
        "num_workers": num_workers,
        "steps": steps,
        "warmup_steps_s": timer.warmup_s,
        "fit_s": fit_s,
    }


# -- part 2: views vs TorchIO --------------------------------------------------------------------------------
def torchio_pipeline(views: VolumeViews, size: int) -> Any:
    """TorchIO's transforms with ``views``' probabilities and ranges, in the same order (module docstring).

    Voxel spacing 1 mm, so a fraction ``f`` of the field of view is ``f * size`` mm. The random resized crop
    (side ``fraction ** (1/3)`` of the volume, centre within the volume) becomes a zoom ``1 / side`` folded into
    RandomAffine's scales and a translation of up to ``(1 - side) / 2`` of the field of view.
    """
    import torchio as tio

    smallest_side = views.crop_scale[0] ** (1.0 / 3.0)
    shift = (1.0 - smallest_side) / 2.0 * size + views.translate * size
    return tio.Compose([
        tio.RandomFlip(axes=tuple(views.flip_axes) or (0,), flip_probability=0.5 if views.flip_axes else 0.0),
        tio.RandomAffine(scales=(views.scale[0], views.scale[1] / smallest_side), degrees=views.rotate_degrees,
                         translation=shift, default_pad_value=0.0),
        tio.RandomElasticDeformation(num_control_points=views.elastic_control_points,
                                     max_displacement=views.elastic_magnitude / 2.0 * size, p=views.elastic_prob),
        tio.RandomBiasField(coefficients=views.bias_coefficient, order=views.bias_order, p=views.bias_field_prob),
        tio.RandomGamma(log_gamma=views.log_gamma, p=views.gamma_prob),
        tio.RandomMotion(degrees=views.motion_degrees, translation=views.motion_translation * size,
                         num_transforms=views.motion_transforms, p=views.motion_prob),
        tio.RandomGhosting(num_ghosts=views.ghosting_every, axes=(0, 1, 2), intensity=views.ghosting_intensity,
                           p=views.ghosting_prob),
        tio.RandomNoise(std=views.noise_std, p=views.noise_prob),
    ])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Median wall milliseconds of ``fn()`` over ``repeats`` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def compare_views(x: torch.Tensor, modality: str, repeats: int, device: torch.device) -> dict[str, Any]:
    """ms per batch of ``VolumeViews`` (one batched call) and of TorchIO (a loop over the samples)."""
    import warnings

    import torchio as tio

    size = int(x.shape[-1])
    views = VolumeViews(image_size=size).to(device)
    transform = torchio_pipeline(views, size)
    generator = torch.Generator(device=device).manual_seed(0)
    x_device = x.to(device)

    def biolatent_batch() -> torch.Tensor:
        with torch.no_grad():
            return views(x_device, generator=generator)

    def torchio_batch() -> torch.Tensor:
        outputs = [transform(tio.Subject(image=tio.ScalarImage(tensor=volume)))["image"].data for volume in x]
        return torch.stack(outputs)

    torch.manual_seed(0)  # TorchIO draws from the global torch generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. RandomGamma on the few negative values the motion ringing leaves
        shapes = {tuple(biolatent_batch().shape), tuple(torchio_batch().shape)}
        if shapes != {tuple(x.shape)}:
            raise RuntimeError(f"views changed the batch shape {tuple(x.shape)}: {sorted(shapes)}")
        biolatent_ms = median_ms(biolatent_batch, repeats, device)
        torchio_ms = median_ms(torchio_batch, repeats, torch.device("cpu"))
    return {
        "modality": modality,
        "batch_size": int(x.shape[0]),
        "input_shape": "x".join(str(s) for s in x.shape[1:]),
        "biolatent_ms": biolatent_ms,
        "torchio_ms": torchio_ms,
        "torchio_over_biolatent": torchio_ms / biolatent_ms,
        "biolatent_device": device.type,
        "torchio_device": "cpu",
    }


# -- command line -------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="timed steps per config (default 10, quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 16, quick 4")
    parser.add_argument("--size", type=int, default=None, help="cube side in voxels (default 32, quick 16)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (default 0, the trainer's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed view batches (default 5, quick 1)")
    parser.add_argument("--configs", nargs="*", default=None, help="subset by file stem, e.g. brain_mae heart_mae")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="16^3, batch 4, 2 steps: a smoke run")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    quick = args.quick
    args.steps = args.steps or (2 if quick else 10)
    args.warmup = args.warmup if args.warmup is not None else 1
    args.batch_size = args.batch_size or (4 if quick else 16)
    args.size = args.size or (16 if quick else 32)
    args.repeats = args.repeats or (1 if quick else 5)
    if args.steps < 1 or args.batch_size < 2 or args.warmup < 0 or args.num_workers < 0:
        parser.error("--steps must be >= 1, --batch-size >= 2, --warmup and --num-workers >= 0")
    if args.size < 8 or args.size % 8:
        parser.error("--size must be a multiple of 8 (the ViT configs use 8^3 patches)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both parts, print the tables, write JSON + markdown; return the payload."""
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    load_before = os.getloadavg()
    rows = []
    for path in example_configs(args.configs):
        row = benchmark_config(path, size=args.size, batch_size=args.batch_size, steps=args.steps,
                               warmup=args.warmup, num_workers=args.num_workers, device=args.device)
        gc.collect()
        print(f"  {row['config']:<32} {row['samples_per_s']:8.2f} samples/s {row['step_ms']:9.1f} ms/step  "
              f"loader wait {row['loader_wait_fraction']:.3f}", flush=True)
        rows.append(row)

    frames = DEFAULT_FRAMES
    with contextlib.suppress(StopIteration):
        frames = next(r["frames"] for r in rows if r["frames"])
    views_rows = [
        compare_views(synthetic_volumes(args.batch_size, args.size, seed=1), "volume", args.repeats, device),
        compare_views(synthetic_cines(args.batch_size, args.size, frames, seed=1), "cine", args.repeats, device),
    ]
    for row in views_rows:
        print(f"  views {row['modality']:<6} biolatent {row['biolatent_ms']:8.1f} ms  torchio "
              f"{row['torchio_ms']:8.1f} ms  ratio {row['torchio_over_biolatent']:.2f}", flush=True)

    meta = {
        "device": args.device,
        "steps": args.steps,
        "warmup": args.warmup,
        "batch_size": args.batch_size,
        "size": args.size,
        "num_workers": args.num_workers,
        "views_repeats": args.repeats,
        "quick": args.quick,
        "torchio": _torchio_version(),
        "loadavg_1_5_15_before": load_before,
        "loadavg_1_5_15_after": os.getloadavg(),
        "host": host_info(),
    }
    table, views_table = markdown_table(rows, COLUMNS), markdown_table(views_rows, VIEWS_COLUMNS)
    title = (f"# 3D pre-training throughput and views vs TorchIO: {args.device}\n\n"
             f"Every config of configs/volume and configs/cine trained by `biolatent.train.fit.fit` on synthetic "
             f"{args.size}^3 data, batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up, "
             f"{args.num_workers} DataLoader workers; torch {torch.__version__}, {torch.get_num_threads()} threads, "
             f"torchio {meta['torchio']}, load average {load_before[0]:.2f} before. Generated by "
             f"`python benchmarks/volume_throughput.py` on {meta['host']['timestamp']}.\n")
    views_title = (f"## Views: VolumeViews (one batched call) vs TorchIO (per-sample loop), median of "
                   f"{args.repeats} batches\n")
    print()
    print(table)
    print()
    print(views_table)
    payload = {"meta": meta, "columns": list(COLUMNS), "rows": rows, "views_columns": list(VIEWS_COLUMNS),
               "views": views_rows}
    json_path, md_path = write_results(args.out_dir, f"volume_throughput-{args.device}", payload,
                                       f"{title}\n{table}\n\n{views_title}\n{views_table}\n", args=args)
    print(f"\nwrote {json_path} and {md_path}")
    return payload


def _torchio_version() -> str:
    import torchio

    return str(torchio.__version__)


if __name__ == "__main__":
    main()
