"""What a run directory records about its training, read back: the resolved config, the data facts the encoder
was trained on, the weights file. Below the analysis modules and the workflows, so that both can read a run
(e.g. the anomaly feature pyramid on the encoder of a pretrain run) without an analysis module importing
``workflows``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from biolatent.build import load_config
from biolatent.config import RunConfig
from biolatent.data.samples import DataInfo
from biolatent.errors import BiolatentError
from biolatent.rundir import read_json, write_json

CONFIG_FILE = "config.yaml"
DATA_INFO_FILE = "data_info.json"
WEIGHTS_FILE = "model.safetensors"


def load_run_config(run_dir: Path) -> RunConfig:
    """The run's resolved config. Runs written before methods without views got an empty ``views`` section
    (vae, mlm saved the unused count views) load with that section dropped: nothing ever read it."""
    from biolatent.config import read_yaml
    from biolatent.methods.registry import METHODS

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise BiolatentError(f"{run_dir} is not a biolatent run directory (no {CONFIG_FILE})")
    raw = read_yaml(path)
    method = raw.get("method", {}).get("name") if isinstance(raw.get("method"), dict) else None
    if method in METHODS and not METHODS[method].uses_views and raw.get("views"):
        raw = {key: value for key, value in raw.items() if key != "views"}
    return load_config(raw, base_dir=run_dir.resolve())


def save_data_info(run_dir: Path, info: DataInfo) -> None:
    write_json(run_dir / DATA_INFO_FILE, dataclasses.asdict(info))


def load_data_info(run_dir: Path) -> DataInfo:
    path = run_dir / DATA_INFO_FILE
    if not path.is_file():
        raise BiolatentError(f"{run_dir} has no {DATA_INFO_FILE}: run `biolatent pretrain` first")
    return DataInfo(**read_json(path))
