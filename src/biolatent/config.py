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
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from biolatent.errors import ConfigError

_STRICT = ConfigDict(extra="forbid")


class _DataBase(BaseModel):
    model_config = _STRICT

    path: Path | None = Field(None, description="input file or folder")
    dataset: str | None = Field(None, description="name in the dataset registry, instead of a path")
    metadata: Path | None = Field(None, description="table (tsv/csv) with an id column + any columns")
    id_column: str = "id"

    @model_validator(mode="after")
    def _path_or_dataset(self) -> _DataBase:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of data.path or data.dataset")
        return self


class CountsData(_DataBase):
    """Single-cell or bulk expression in an AnnData .h5ad file."""

    modality: Literal["counts"] = "counts"
    layer: str | None = Field(None, description="layer holding the values; None = X, 'raw' = raw.X")
    values: Literal["auto", "counts", "continuous"] = "auto"
    min_total: float = Field(0.0, ge=0, description="drop samples whose total is <= this")


class DnaData(_DataBase):
    """DNA sequences in FASTA, tokenised as overlapping k-mers (DNABERT)."""

    modality: Literal["dna"] = "dna"
    kmer: int = Field(6, ge=3, le=6)
    max_length: int | None = Field(None, ge=8, description="bases per sequence; None = the longest")


class RecordsData(_DataBase):
    """Longitudinal health records (``biolatent.data.records``): one sample per patient, a sequence of dated coded
    events. ``path`` is a long table (csv/tsv/parquet: patient, time, code[, value]) or an OMOP CDM folder of CSV
    files (PERSON required). Times are dates or numbers of days; events after the prediction time are dropped."""

    modality: Literal["records"] = "records"
    patient_column: str = "patient"
    time_column: str = "time"
    code_column: str = "code"
    value_column: str | None = Field("value", description="optional numeric value per event (used by value_bins)")
    births: Path | None = Field(None, description="long tables: table with patient_column + birth_column (a date or "
                                                  "days, in the units of time_column); None = no ages (all 0)")
    birth_column: str = "birth"
    prediction_time: str | float | None = Field(None, description="events after this date (or day) are never seen")
    prediction_time_column: str | None = Field(None, description="metadata column with each patient's prediction "
                                                                 "time (e.g. a landmark); patients without one see "
                                                                 "nothing after data_end")
    data_end: str | float | None = Field(None, description="end of the data: an event after it is an error")
    value_bins: int = Field(0, ge=0, le=20, description="> 0: numeric values become per-code quantile tokens "
                                                        "code:q1..qK")
    min_count: int = Field(1, ge=1, description="codes seen fewer times become [UNK]")
    max_length: int = Field(256, ge=8, description="tokens per patient; the most recent events are kept")


class _PairedGenetics(BaseModel):
    """Genetics of the same subjects, paired with the images by id (``biolatent.data.paired``): batches carry
    each part under its name; images of subjects without every part are reported and dropped for training
    (``embed`` still embeds every image)."""

    genotypes: Path | None = Field(None, description="PLINK prefix (.bed/.bim/.fam) or VCF of the same subjects: "
                                                     "standardised dosages in batch['genotypes']")
    genetic_tables: dict[str, Path] = Field(
        default_factory=dict, description="name -> table (id column + numeric columns, e.g. polygenic or burden "
                                          "scores): standardised values in batch[name]")
    max_variants: int | None = Field(None, ge=1, description="genotypes: keep at most this many variants, evenly "
                                                             "spaced along the genome")

    @property
    def paired_parts(self) -> list[str]:
        return (["genotypes"] if self.genotypes is not None else []) + list(self.genetic_tables)


class _PairedRecords(BaseModel):
    """Health records of the same subjects, paired with the images by id (``data.paired.attach_records``): batches
    carry each subject's records tokens under ``records`` (int64 (B, 4, L), as ``modality: records`` packs them);
    images of subjects without records are reported and dropped. The section is a records data section without
    ``modality`` (its ``path`` the long table or OMOP folder, its ``metadata`` e.g. the prediction times)."""

    records: RecordsData | None = Field(None, description="records of the same subjects (a records data section): "
                                                          "tokens in batch['records']")


class Image2dData(_PairedRecords, _PairedGenetics, _DataBase):
    """A folder of PNG/TIFF images (every image of it, or those ``meta.tsv`` lists: columns ``id``, ``path``
    relative to the folder, any metadata) or a whole-slide crop (SVS/TIFF) cut into tiles."""

    modality: Literal["image2d"] = "image2d"
    lesion_column: str | None = Field(None, description="meta.tsv column with a lesion-mask PNG per image (empty: "
                                                        "no lesion), same size as its image: SampleSet.fields"
                                                        "['lesion'] (anomaly evaluation)")
    image_size: int = Field(64, ge=8, description="side of the square images given to the encoder")
    tile_size: int = Field(64, ge=8, description="slides: tile side in pixels at level 0")
    min_tissue_fraction: float = Field(0.5, ge=0, le=1, description="slides: drop background tiles")
    max_samples: int | None = Field(None, ge=1)


class _VolumeBase(_PairedRecords, _PairedGenetics, _DataBase):
    """NIfTI volumes in a folder: ``meta.tsv`` (columns ``id``, ``path`` relative to the folder, any metadata) or
    every ``*.nii`` / ``*.nii.gz`` of the folder; resampled to one grid, intensities normalised per volume."""

    image_size: int = Field(32, ge=8, description="side of the cube (voxels) given to the encoder")
    spacing: float | None = Field(
        None, gt=0, description="resample to this isotropic spacing (mm), then centre crop/pad to image_size; "
                                "None = every volume must share one spacing and is resized to image_size")
    normalise: Literal["mri", "ct", "minmax", "none"] = Field(
        "mri", description="intensities to [0, 1]: mri = 0.5-99.5 percentiles of the foreground, ct = HU window "
                           "(ct_center, ct_width), minmax, none")
    ct_center: float = 40.0
    ct_width: float = Field(400.0, gt=0)
    group_column: str | None = Field(None, description="metadata column naming each sample's subject/patient: "
                                                       "batches carry another sample of the same subject (micle)")
    max_samples: int | None = Field(None, ge=1)


class VolumeData(_VolumeBase):
    """3D volumes (MRI, CT): ``(N, 1, S, S, S)``."""

    modality: Literal["volume"] = "volume"
    mask_column: str | None = Field(None, description="metadata column with an anatomy-mask NIfTI per volume "
                                                      "(anatomy-aware masking); an empty mask is an error")
    lesion_column: str | None = Field(None, description="meta.tsv column with a lesion-mask NIfTI per volume "
                                                        "(empty: no lesion), on its volume's grid: SampleSet."
                                                        "fields['lesion'] (anomaly evaluation)")


class CineData(_VolumeBase):
    """3D+time cines (4D NIfTI, e.g. cardiac MRI over one cycle): ``(N, T, S, S, S)``."""

    modality: Literal["cine"] = "cine"
    frames: int | None = Field(None, ge=2, description="resample every cine to this many frames per cycle; "
                                                       "None = every cine must have the same number")


class SpatialData(_DataBase):
    """Spatial transcriptomics (10x Visium): one sample per in-tissue spot, an H&E tile centred on the spot
    (``x``) + the spot's expression (``fields["expression"]``).

    ``path`` is a Space Ranger output folder (``spatial/`` + ``filtered_feature_bc_matrix.h5`` or the matrix
    folder) or an ``.h5ad`` with ``obsm["spatial"]`` (scanpy/squidpy convention, image in ``uns["spatial"]``).
    ``image`` replaces the folder's/AnnData's image by another one (e.g. the full-resolution whole-slide image),
    whose pixels the positions are in; ``positions`` replaces the positions table.
    """

    modality: Literal["spatial"] = "spatial"
    image: Path | None = Field(None, description="image the tiles are cut from (PNG/TIFF/whole slide); positions "
                                                 "are in its pixels; None = the folder's / AnnData's own image")
    positions: Path | None = Field(None, description="positions table (Space Ranger tissue_positions format); "
                                                     "None = the folder's / obsm['spatial']")
    spot_diameter_px: float | None = Field(None, gt=0, description="spot diameter in pixels of the image; None = "
                                                                   "from the scale factors")
    spot_um: float = Field(55.0, gt=0, description="spot diameter in micrometres (Visium: 55)")
    tile_diameters: float = Field(2.0, gt=0, description="tile side in spot diameters")
    tile_um: float | None = Field(None, gt=0, description="tile side in micrometres; overrides tile_diameters")
    image_size: int = Field(64, ge=8, description="side of the square tiles given to the encoder")
    resolution: Literal["auto", "hires", "lowres", "fullres"] = Field(
        "auto", description="which Space Ranger image: auto = hires if present, else lowres; fullres = data.image")
    library: str | None = Field(None, description="the uns['spatial'] library of an .h5ad (None = its only one)")
    layer: str | None = Field(None, description=".h5ad: layer with the counts; None = X, 'raw' = raw.X")


class SeriesData(_DataBase):
    """One time series in a table (tsv/csv, one row per time point): ``(T, 1)`` values, the points as samples."""

    modality: Literal["series"] = "series"
    value_column: str = "value"
    label_column: str = Field("is_anomaly", description="0/1 or True/False column of labelled points (optional)")


class FeaturesData(_DataBase):
    """One row per sample: a table (tsv/csv, ``id_column`` + numeric feature columns) or embeddings in an .h5ad
    (``obsm[key]``): ``(N, F)``."""

    modality: Literal["features"] = "features"
    label_column: str = Field("is_anomaly", description="0/1 or True/False column of labelled samples (optional; "
                                                        "never a feature)")
    drop_columns: list[str] = Field(default_factory=list, description="table columns that are not features "
                                                                      "(besides the id and label_column)")
    feature_columns: list[str] | None = Field(None, description="table: the feature columns, picked by name; None "
                                                                "= every column but id, label and drop_columns")
    key: str = Field("X_biolatent", description="obsm key of the features in an .h5ad")


DataConfig = Annotated[CountsData | DnaData | Image2dData | VolumeData | CineData | SpatialData | RecordsData
                       | SeriesData | FeaturesData, Field(discriminator="modality")]
MODALITIES = ("counts", "dna", "image2d", "volume", "cine", "spatial", "records", "series", "features")
DATA_SECTIONS: tuple[type[_DataBase], ...] = (CountsData, DnaData, Image2dData, VolumeData, CineData, SpatialData,
                                               RecordsData, SeriesData, FeaturesData)


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
    batch_size: int | None = Field(None, ge=2, description="None = the modality's default (default_batch_size), "
                                                          "filled in when the config is resolved")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: int = Field(0, ge=0)
    lr_schedule: Literal["cosine", "constant"] = Field("cosine", description="after the warm-up: cosine decay to "
                                                                           "zero, or a constant learning rate")
    seed: int = 0
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | Literal["auto"] = "auto"
    strategy: Literal["auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp"] = "auto"
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
    resolve_paths(config.data, ("path", "metadata", "image", "positions", "genotypes", "births"), base_dir)
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
