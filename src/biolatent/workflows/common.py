"""Pieces shared by the workflows: run-directory files, the data facts a run was trained on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from biolatent import provenance
from biolatent.config import RunConfig, dump_config
from biolatent.errors import BiolatentError
from biolatent.rundir import read_json, write_json, write_text

# what a run directory records lives one layer down (biolatent.runs), where analysis modules may read it too
from biolatent.runs import CONFIG_FILE as CONFIG_FILE
from biolatent.runs import DATA_INFO_FILE as DATA_INFO_FILE
from biolatent.runs import WEIGHTS_FILE as WEIGHTS_FILE
from biolatent.runs import load_data_info as load_data_info
from biolatent.runs import load_run_config as load_run_config
from biolatent.runs import save_data_info as save_data_info

EMBEDDINGS_FILE = "embeddings.h5ad"
SEEDS_DIR = "seeds"  # extra pre-training seeds: RUN/seeds/<seed>/, each a complete run directory of its own
HOLDOUT_FILE = "holdout.json"  # the test ids every split keeps out of pre-training (the inductive protocol)

C = TypeVar("C", bound=Any)


def check_run_dir(run_dir: Path, config: C, resume: bool, load: Callable[[Path], C] = load_run_config) -> C:
    """A new run needs an empty folder; a resumed run needs a training checkpoint (``train.fit``'s
    ``checkpoints/last.safetensors``) and must use the config it started with (``load(run_dir)``; only
    ``train.epochs`` may change)."""
    from biolatent.train.fit import LAST_CHECKPOINT

    if not resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise BiolatentError(f"run directory {run_dir} is not empty: pass --resume to continue it or another --out")
        return config
    if not (run_dir / LAST_CHECKPOINT).is_file():
        raise BiolatentError(f"nothing to resume in {run_dir}: no checkpoint (checkpoints/last.safetensors)")
    saved = load(run_dir)
    comparable = {"train": {"epochs"}}
    if config.model_dump(exclude=comparable) != saved.model_dump(exclude=comparable):
        raise BiolatentError(
            f"the config differs from the one {run_dir} was started with (only train.epochs may change on resume)"
        )
    return config


def write_run_header(run_dir: Path, command: str, config: RunConfig, **extra: object) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / CONFIG_FILE, dump_config(config))
    write_json(
        run_dir / "provenance.json",
        provenance.collect(command, config_hash=config.hash(), seed=config.train.seed, **extra),
    )


def seed_run_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """``(pre-training seed, run directory)`` of every seed of a run: the run itself first (``train.seed``), then
    ``RUN/seeds/<seed>/`` in increasing seed order (``pretrain --seeds K``). A single-seed run gives one entry."""
    dirs = [(load_run_config(run_dir).train.seed, run_dir)]
    root = run_dir / SEEDS_DIR
    if root.is_dir():
        extra = [p for p in root.iterdir()
                 if p.is_dir() and p.name.lstrip("-").isdigit() and (p / CONFIG_FILE).is_file()]
        dirs += sorted(((int(p.name), p) for p in extra), key=lambda item: item[0])
    return dirs


def read_holdout(run_dir: Path) -> dict | None:
    """The run's ``holdout.json`` (``test_fraction``, ``stratify_by``, ``splits``: one list of test ids per split),
    or None when pre-training saw every sample."""
    path = run_dir / HOLDOUT_FILE
    if not path.is_file():
        return None
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("splits"), list) or not record["splits"]:
        raise BiolatentError(f"{path} is not a holdout record (no list of splits)")
    return record
