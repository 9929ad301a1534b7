"""``fit``: train any method on an in-memory tensor with the trainer settings of a config."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from biolatent.config import TrainConfig
from biolatent.errors import ConfigError, DataError
from biolatent.rundir import atomic_path
from biolatent.train.checkpoint import load_training_state, save_training_state
from biolatent.train.device import uses_cuda
from biolatent.train.loader import IndexedDataset, training_loader

LAST_CHECKPOINT = Path("checkpoints") / "last.safetensors"


def fit(
    method: torch.nn.Module,
    x: torch.Tensor,
    train: TrainConfig,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    y: torch.Tensor | None = None,
    indices: torch.Tensor | None = None,
    max_steps: int | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    fields: dict[str, torch.Tensor] | None = None,
    groups: torch.Tensor | None = None,
) -> pd.DataFrame:
    """Train ``method`` in place; returns the per-epoch history.

    With ``run_dir``, each epoch appends to ``history.tsv`` and writes a resumable checkpoint
    (``checkpoints/last.safetensors``); ``resume=True`` continues from it. ``max_steps`` trains for a
    fixed number of optimizer steps instead of ``train.epochs`` epochs (supervised baselines). ``fields`` and
    ``groups`` go to the batches (``IndexedDataset``).

    On several processes (``train.strategy: ddp``, ``devices`` x ``num_nodes``; Lightning re-runs the command for
    the others, or torchrun / srun started them) ``train.batch_size`` is the global batch: every process runs this
    function, trains on its share of the one-process batches (``GlobalBatchSampler``) and the first one writes the
    history and checkpoints. ``check_world_size`` refuses a batch or data set that cannot be shared.
    """
    import lightning as L

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    from biolatent.train.module import MethodModule
    from biolatent.train.progress import EpochProgressBar

    assert train.batch_size is not None, "resolve the config first (build.resolve_sections fills train.batch_size)"
    L.seed_everything(train.seed, workers=True, verbose=False)
    dataset = IndexedDataset(x, y, indices, fields=fields, groups=groups)
    history: list[dict[str, float]] = []
    epoch_offset = step_offset = 0
    resume_optimizer = None
    if resume:
        assert run_dir is not None, "resume needs a run directory"
        model_state, resume_optimizer, meta = load_training_state(run_dir / LAST_CHECKPOINT)
        method.load_state_dict(model_state, strict=True)
        epoch_offset, step_offset = int(meta["epoch"]), int(meta["global_step"])
        history = _read_history(run_dir)[:epoch_offset]

    world = world_size(train)
    check_world_size(len(dataset), train.batch_size, world)
    loader = training_loader(dataset, train.batch_size, train.seed, epoch_offset, train.num_workers, world)
    steps_per_epoch = len(loader)
    total_steps = max_steps if max_steps is not None else train.epochs * steps_per_epoch
    remaining_epochs = train.epochs - epoch_offset
    if max_steps is None and remaining_epochs <= 0:
        return pd.DataFrame(history)

    started = time.perf_counter()

    def on_epoch_end(epoch: int, metrics: dict[str, float], module: MethodModule) -> None:
        history.append({"epoch": epoch, **metrics, "time_s": time.perf_counter() - started})
        if run_dir is None:
            return
        _write_history(run_dir, history)
        global_step = step_offset + module.global_step
        optimizer = module.trainer.optimizers[0]
        save_training_state(run_dir / LAST_CHECKPOINT, module.method, optimizer,
                            {"epoch": epoch, "global_step": global_step, "seed": train.seed})

    module = MethodModule(
        method,
        lr=train.lr,
        weight_decay=train.weight_decay,
        warmup_steps=train.warmup_epochs * steps_per_epoch,
        total_steps=total_steps,
        step_offset=step_offset,
        epoch_offset=epoch_offset,
        resume_optimizer=resume_optimizer,
        seed=train.seed,
        on_epoch_end=on_epoch_end,
        schedule=train.lr_schedule,
        global_batch_sizes=loader.batch_sampler.sizes,  # type: ignore[union-attr]
    )
    trainer = L.Trainer(
        **_trainer_settings(train),
        sync_batchnorm=world > 1 and uses_cuda(train),
        max_epochs=-1 if max_steps is not None else remaining_epochs,
        max_steps=max_steps if max_steps is not None else -1,
        gradient_clip_val=train.gradient_clip,
        logger=False,
        enable_progress_bar=progress,
        log_every_n_steps=max(1, min(50, steps_per_epoch)),
        callbacks=[*callbacks, *([EpochProgressBar(epoch_offset, None if max_steps else train.epochs)]
                                 if progress else [])],
        deterministic=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*num_workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(module, train_dataloaders=loader)
    method.eval()
    return pd.DataFrame(history)


def _trainer_settings(train: TrainConfig) -> dict[str, Any]:
    """The Lightning ``Trainer`` arguments that place the run: accelerator, devices, nodes, strategy, precision.

    The loader shards the global batches itself (``GlobalBatchSampler``), so Lightning's distributed sampler is
    off.
    """
    return {
        "accelerator": train.accelerator,
        "devices": train.devices,
        "num_nodes": train.num_nodes,
        "strategy": train.strategy,
        "precision": train.precision,
        "use_distributed_sampler": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }


def world_size(train: TrainConfig) -> int:
    """The number of training processes of ``train`` on this machine or cluster (devices x nodes, as Lightning
    resolves ``devices: auto`` and a torchrun / Slurm environment)."""
    import lightning as L

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    return int(L.Trainer(**_trainer_settings(train), logger=False, enable_progress_bar=False).world_size)


def check_world_size(n_samples: int, batch_size: int, world: int) -> None:
    """A one-line error when the global ``batch_size`` or the ``n_samples`` samples cannot be split over ``world``
    processes with at least 2 samples each (ConfigError / DataError); nothing to check on one process."""
    if world <= 1:
        return
    if batch_size % world:
        raise ConfigError(f"train.batch_size {batch_size} is the global batch, split over {world} processes: it "
                          f"must be a multiple of {world}")
    if batch_size // world < 2:
        raise ConfigError(f"train.batch_size {batch_size} over {world} processes leaves {batch_size // world} "
                          f"sample per process: use at least {2 * world}")
    if n_samples < 2 * world:
        raise DataError(f"{n_samples} samples cannot feed {world} training processes (each needs at least 2 "
                        f"samples per step): use at most {max(1, n_samples // 2)} devices x nodes")


def _write_history(run_dir: Path, history: list[dict[str, float]]) -> None:
    with atomic_path(run_dir / "history.tsv") as tmp:
        pd.DataFrame(history).to_csv(tmp, sep="\t", index=False)


def _read_history(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "history.tsv"
    if not path.is_file():
        return []
    return pd.read_csv(path, sep="\t").to_dict("records")
