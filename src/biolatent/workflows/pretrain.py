"""``biolatent pretrain``: config -> data -> method -> training -> weights, in a run directory."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from biolatent.build import build_method
from biolatent.config import RunConfig
from biolatent.errors import BiolatentError
from biolatent.rundir import update_json, write_json
from biolatent.train.checkpoint import save_weights
from biolatent.workflows.common import (
    WEIGHTS_FILE,
    load_run_config,
    save_data_info,
    write_run_header,
)


def check_run_dir(run_dir: Path, config: RunConfig, resume: bool) -> RunConfig:
    """A new run needs an empty folder; a resumed run must use the config it started with."""
    from biolatent.train.fit import LAST_CHECKPOINT

    if not resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise BiolatentError(f"run directory {run_dir} is not empty: pass --resume to continue it or another --out")
        return config
    if not (run_dir / LAST_CHECKPOINT).is_file():
        raise BiolatentError(f"nothing to resume in {run_dir}: no checkpoint (checkpoints/last.safetensors)")
    saved = load_run_config(run_dir)
    comparable = {"train": {"epochs"}}
    if config.model_dump(exclude=comparable) != saved.model_dump(exclude=comparable):
        raise BiolatentError(
            f"the config differs from the one {run_dir} was started with (only train.epochs may change on resume)"
        )
    return config


def pretrain(
    config: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    say=print,
) -> dict[str, float]:
    from biolatent.data.loaders import load_samples
    from biolatent.train.fit import fit
    from biolatent.train.memory import check_step_memory, estimate_step_memory
    from biolatent.train.timing import LoaderWaitTimer

    primary = launched_rank() == 0  # DDP launches one process per device; only the first writes files
    if primary:
        config = check_run_dir(run_dir, config, resume)
    say(f"loading {config.data.modality} data ...")
    samples = load_samples(config.data)
    torch.manual_seed(config.train.seed)  # the initial weights are part of a seeded run
    method = build_method(config, samples.info)
    method.check_samples(samples)  # before anything is written: bad data leaves no half run
    n_params = sum(p.numel() for p in method.parameters())
    say(f"{len(samples)} samples; method {config.method.name} with encoder {config.model.name} "
        f"({n_params / 1e6:.2f} M parameters)")
    # a step that does not fit is refused here, with the batch that does, before the kernel's OOM killer takes the
    # machine down mid-run (and before anything is written)
    step_memory = check_step_memory(estimate_step_memory(method, samples.x, fields=samples.fields,
                                                         groups=samples.groups), config.train)
    say(f"a training step with batch {config.train.batch_size} needs about {step_memory / 1e9:.2f} GB")
    if primary:
        write_run_header(run_dir, "pretrain", config, n_samples=len(samples))
        save_data_info(run_dir, samples.info)
        if samples.feature_names is not None:
            write_json(run_dir / "features.json", list(samples.feature_names))

    epochs_before = _completed_epochs(run_dir) if resume else 0
    started = time.perf_counter()
    timer = LoaderWaitTimer()
    history = fit(method, samples.x, config.train, run_dir=run_dir, resume=resume,
                  callbacks=[*callbacks, timer], progress=progress, fields=samples.fields, groups=samples.groups)
    seconds = time.perf_counter() - started
    if not primary:
        return {}
    save_weights(run_dir / WEIGHTS_FILE, method, {"method": config.method.name, "encoder": config.model.name,
                                                  "config_hash": config.hash()})
    final = history.iloc[-1].to_dict() if len(history) else {}
    metrics = {f"final_{k}": float(v) for k, v in final.items() if k not in {"epoch", "time_s"}}
    epochs_run = config.train.epochs - epochs_before
    metrics.update({
        "epochs": float(config.train.epochs),
        "n_samples": float(len(samples)),
        "n_parameters": float(n_params),
        "train_seconds": seconds,
        "samples_per_second": len(samples) * max(epochs_run, 1) / max(seconds, 1e-9),
        "loader_wait_fraction": timer.wait_fraction,
        "step_memory_gb": step_memory / 1e9,  # estimated peak of one training step (train.memory)
    })
    update_json(run_dir / "metrics.json", "pretrain", metrics)
    return metrics


def _completed_epochs(run_dir: Path) -> int:
    from biolatent.rundir import read_json
    from biolatent.train.fit import LAST_CHECKPOINT

    return int(read_json((run_dir / LAST_CHECKPOINT).with_suffix(".json"))["epoch"])


def launched_rank() -> int:
    """This process's rank when a distributed launcher (Lightning, torchrun) started it, else 0."""
    for variable in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        value = os.environ.get(variable, "0")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0
