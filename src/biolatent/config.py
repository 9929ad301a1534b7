"""Configs: one pydantic model per YAML section, unknown keys and bad values rejected before any work.

A run config has four sections. ``data`` is a discriminated union on ``modality``; ``method`` and ``model``
name a registered class and their other keys are validated against that class's keyword arguments (so a
YAML section maps 1:1 onto a constructor); ``train`` drives the generic trainer.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from biolatent.config_data import (  # noqa: F401 - the data sections stay importable from biolatent.config
    _STRICT,
    DATA_SECTIONS,
    MODALITIES,
    CineData,
    CountsData,
    DataConfig,
    DnaData,
    FeaturesData,
    Image2dData,
    RecordsData,
    SeriesData,
    SpatialData,
    VolumeData,
)
from biolatent.errors import ConfigError


class MethodSection(BaseModel):
    """``name`` picks a registered method; every other key is one of its keyword hyper-parameters."""

    model_config = ConfigDict(extra="allow")
    name: str


class ModelSection(BaseModel):
    """``name`` picks a registered encoder (default per modality and method); other keys are its kwargs.
    ``from_pretrained``: a local Hugging Face folder (BERT or ESM architecture: DNABERT, Nucleotide Transformer)
    whose architecture and weights initialise the encoder (``models.huggingface``; never a download)."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None
    from_pretrained: Path | None = None


class ViewsSection(BaseModel):
    """Keyword arguments of the data modality's augmentation views (``biolatent.data.views.VIEWS``), e.g.
    ``views: {crop_scale: [1.0, 1.0]}`` when the size of the anatomy is what the features must keep."""

    model_config = ConfigDict(extra="allow")


# train.batch_size when the config leaves it out: 3D and 3D+time steps hold ~100x the activations of a 2D one, so
# their default keeps a step of the default encoder (strided stem, models.registry) to a few GB (train.memory)
DEFAULT_BATCH_SIZE = 128
MODALITY_BATCH_SIZE = {"volume": 32, "cine": 32}


def default_batch_size(modality: str) -> int:
    return MODALITY_BATCH_SIZE.get(modality, DEFAULT_BATCH_SIZE)


class TrainConfig(BaseModel):
    model_config = _STRICT

    epochs: int = Field(10, ge=1)
    batch_size: int | None = Field(None, ge=2, description="the global batch, split over the processes of a "
                                                          "multi-process (DDP) run; None = the modality's default "
                                                          "(default_batch_size), filled in when the config is "
                                                          "resolved")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: int = Field(0, ge=0)
    lr_schedule: Literal["cosine", "constant"] = Field("cosine", description="after the warm-up: cosine decay to "
                                                                           "zero, or a constant learning rate")
    seed: int = 0
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | Literal["auto"] = Field("auto", description="devices per node (Lightning's Trainer devices)")
    num_nodes: int = Field(1, ge=1, description="machines of a multi-node run (Slurm, torchrun): the processes are "
                                                "devices x num_nodes, train.batch_size is split over all of them")
    # no ddp_spawn: it pickles the trainer's per-epoch hook (checkpoint, history) into new processes; ddp re-runs
    # the command instead, as torchrun and srun do
    strategy: Literal["auto", "ddp", "ddp_find_unused_parameters_true", "fsdp"] = "auto"
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "32-true"
    num_workers: int = Field(0, ge=0)
    gradient_clip: float | None = Field(1.0, gt=0)


class RunConfig(BaseModel):
    model_config = _STRICT

    data: DataConfig
    method: MethodSection
    model: ModelSection = Field(default_factory=ModelSection)
    views: ViewsSection = Field(default_factory=ViewsSection)
    train: TrainConfig = Field(default_factory=TrainConfig)

    def hash(self) -> str:
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class ValidationSection(BaseModel):
    """Anomaly detection: the healthy data held out to set the threshold, and the false-positive rate it aims at."""

    model_config = _STRICT

    fraction: float = Field(0.2, gt=0.0, lt=1.0, description="healthy data held out to set the threshold")
    target_fpr: float = Field(0.01, ge=0.0, lt=1.0, description="false-positive rate on healthy validation data")


class WindowSection(BaseModel):
    """Anomaly detection on a series: the windows its points are cut into."""

    model_config = _STRICT

    size: int = Field(64, ge=2)
    stride: int = Field(1, ge=1)


class MapsSection(BaseModel):
    """Anomaly detection on volumes: whether they are scored natively in 3D or slice-wise, and where the voxel maps
    are kept."""

    model_config = _STRICT

    brain_erosion: int = Field(0, ge=0, description="keep maps only inside the brain (nonzero voxels) eroded by "
                                                    "this many voxels; 0: the brain dilated by one voxel")
    volume_mode: Literal["3d", "slicewise"] = Field(
        "3d", description="3d: the detector is built with spatial_dims=3 and trains on and scores whole volumes; "
                          "slicewise: a 2D detector on the axial slices (Baur et al. 2021, MedIA 69:101952)")


class AnomalyRunConfig(RunConfig):
    """``biolatent anomaly fit``: a run config (the same data, method, train sections as ``pretrain``; ``method``
    names a detector) plus the anomaly-only sections. ``model`` and ``views`` must stay empty: a detector builds
    its own network from its ``method`` hyper-parameters and trains without augmentation views."""

    validation: ValidationSection = Field(default_factory=ValidationSection)
    window: WindowSection = Field(default_factory=WindowSection)
    maps: MapsSection = Field(default_factory=MapsSection)


# keys of the former anomaly config (anomaly/config.py) -> the one-line error that names their new place
_RENAMED_ANOMALY_KEYS = {
    ("seed",): "seed: moved to train.seed",
    ("data", "brain_erosion"): "data.brain_erosion: moved to maps.brain_erosion",
    ("data", "mask_column"): "data.mask_column: lesion masks are data.lesion_column now (data.mask_column is a "
                             "volume's anatomy mask)",
}


def check_old_anomaly_keys(raw: dict[str, Any]) -> None:
    """A ConfigError naming the new key for a key of the former anomaly config (``modality: volume3d``, top-level
    ``seed``, ``data.brain_erosion``, image ``data.mask_column``)."""
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    if data.get("modality") == "volume3d":
        raise ConfigError("data.modality: volume3d is now 'volume' (the same volume data section as pretrain)")
    for keys, message in _RENAMED_ANOMALY_KEYS.items():
        node: Any = raw
        for key in keys:
            node = node.get(key, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            continue
        if keys == ("data", "mask_column") and data.get("modality") == "volume":
            continue  # a volume's anatomy mask: a valid key of the volume section
        raise ConfigError(message)
    if "label_column" in data and data.get("modality") in ("image2d", "volume"):
        raise ConfigError("data.label_column: image and volume labels are the is_anomaly column of meta.tsv; name "
                          "another with `biolatent anomaly evaluate --label COLUMN`")


_MISSING = object()


def keyword_model(cls: type, *, skip: tuple[str, ...] = ()) -> type[BaseModel]:
    """A strict pydantic model of ``cls.__init__``'s keyword-only arguments (types and defaults)."""
    fields: dict[str, Any] = {}
    hints = _resolved_hints(cls.__init__)
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY or param.name in skip:
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    return create_model(f"{cls.__name__}Kwargs", __config__=_STRICT, **fields)


def _resolved_hints(func: Any) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: fall back to no type check
        return {}


def validate_kwargs(section: str, name: str, cls: type, values: dict[str, Any], skip: tuple[str, ...]) -> dict:
    """Check ``values`` against ``cls``'s keyword arguments; return them with defaults filled in."""
    model = keyword_model(cls, skip=skip)
    try:
        return model(**values).model_dump()
    except ValidationError as exc:
        valid = ", ".join(sorted(model.model_fields)) or "(none)"
        raise ConfigError(f"{_first_error(exc, prefix=section)} (valid keys for {name!r}: {valid})") from None


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """``["train.epochs=3", "method.temperature=0.2"]`` -> nested dict; values parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        if len(keys) < 2 or not all(keys):
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        node = nested
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = _parse_scalar(raw)
    return nested


def _parse_scalar(raw: str) -> Any:
    """YAML scalar parsing, plus floats such as ``1e-4`` that YAML 1.1 reads as strings."""
    if raw == "":
        return None
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping with the sections data, method, model, train")
    return raw


ModelT = TypeVar("ModelT", bound=BaseModel)


def validated_config(model: type[ModelT], source: str | Path | dict[str, Any], overrides: list[str] | None = None,
                     base_dir: Path | None = None) -> tuple[ModelT, Path | None]:
    """Read a YAML file (or a dict), apply ``--set`` overrides and validate it as ``model`` (one-line
    ``ConfigError``) -> (config, the folder relative paths are taken from: ``base_dir`` or the YAML file's)."""
    if isinstance(source, dict):
        raw = source
    else:
        raw = read_yaml(source)
        base_dir = base_dir or Path(source).resolve().parent
    raw = deep_merge(raw, parse_overrides(overrides))
    try:
        return model(**raw), base_dir
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    except TypeError as exc:
        raise ConfigError(f"config must be a mapping of sections: {exc}") from None


def resolve_path(value: str | Path, base_dir: Path) -> Path:
    """``value`` (``~`` expanded) as an absolute path, relative ones taken from ``base_dir``."""
    value = Path(value).expanduser()
    return value if value.is_absolute() else (base_dir / value).resolve()


def resolve_paths(section: BaseModel, keys: tuple[str, ...], base_dir: Path | None) -> None:
    """Make the relative paths of ``section``'s ``keys`` absolute against ``base_dir`` (in place; None: as given)."""
    if base_dir is None:
        return
    for key in keys:
        value = getattr(section, key, None)
        if value is not None:
            setattr(section, key, resolve_path(value, base_dir))


RunT = TypeVar("RunT", bound=RunConfig)


def parse_config(
    source: str | Path | dict[str, Any], overrides: list[str] | None = None, base_dir: Path | None = None,
    model: type[RunT] = RunConfig,  # type: ignore[assignment]
) -> RunT:
    """Read a YAML file (or a dict), apply ``--set`` overrides, validate every section's keys and types.

    Relative data paths are resolved against the YAML file's folder (or ``base_dir``). The method, model and train
    sections are not yet filled with their defaults: ``build.load_config`` does that (the registries live above
    this module). ``model``: ``RunConfig`` (pretrain) or ``AnomalyRunConfig`` (anomaly fit: the same sections and
    the anomaly-only ones; a key of the former anomaly config is a one-line error naming its new place).
    """
    if model is AnomalyRunConfig:
        raw = source if isinstance(source, dict) else read_yaml(source)
        check_old_anomaly_keys(deep_merge(raw, parse_overrides(overrides)))
    config, base_dir = validated_config(model, source, overrides, base_dir)
    resolve_paths(config.data, ("path", "metadata", "image", "positions", "genotypes", "births", "template"), base_dir)
    tables = getattr(config.data, "genetic_tables", None)
    if tables and base_dir is not None:
        config.data.genetic_tables = {name: resolve_path(path, base_dir) for name, path in tables.items()}
    records = getattr(config.data, "records", None)
    if records is not None:
        resolve_paths(records, ("path", "metadata", "births"), base_dir)
    resolve_paths(config.model, ("from_pretrained",), base_dir)
    return config


def _first_error(exc: ValidationError, prefix: str | None = None) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-after")]
    # a discriminated union puts the tag ("counts") into the location: drop it
    loc = [p for p in loc if p not in MODALITIES] or loc
    where = ".".join(([prefix] if prefix else []) + loc) or (prefix or "config")
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key{_valid_keys_hint(loc)}"
    if err["type"] == "union_tag_invalid":
        return f"{where}.modality: must be one of {', '.join(MODALITIES)}"
    if err["type"] == "union_tag_not_found":
        return f"{where}.modality is required (one of {', '.join(MODALITIES)})"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}"


def _valid_keys_hint(loc: list[str]) -> str:
    models: dict[str, type[BaseModel]] = {"train": TrainConfig, "validation": ValidationSection,
                                          "window": WindowSection, "maps": MapsSection}
    if len(loc) == 2 and loc[0] in models:
        return f" (valid keys: {', '.join(models[loc[0]].model_fields)})"
    if len(loc) == 2 and loc[0] == "data":
        keys = sorted(set().union(*(section.model_fields for section in DATA_SECTIONS)))
        return f" (valid keys across modalities: {', '.join(keys)})"
    if len(loc) == 1:
        return f" (valid sections: {', '.join(RunConfig.model_fields)}; `anomaly fit` adds validation, window, maps)"
    return ""


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
