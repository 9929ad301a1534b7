"""Registration configs: the pretraining ``data`` section (``modality: volume``) plus what registration needs
(``labels_column``, ``atlas``), a ``method`` section naming a registration method (its other keys are the
method's keyword arguments) and the generic ``train`` section; unknown keys and bad values are one-line
ConfigErrors before any work.

The inputs must be affinely aligned (same head position up to a small deformation, as the synthetic brains are):
the methods learn the deformable part only. They work on the cohort's volumes zoomed onto the ``image_size``
cube, so ``data.spacing`` must stay unset.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from biolatent.config import (
    MethodSection,
    TrainConfig,
    VolumeData,
    resolve_paths,
    validate_kwargs,
    validated_config,
)
from biolatent.errors import ConfigError

DEFAULT_BATCH_SIZE = 4


class RegistrationData(VolumeData):
    """A volume cohort (``VolumeData``) with each volume's label map and an optional atlas."""

    modality: Literal["volume"] = "volume"
    labels_column: str | None = Field(None, description="meta.tsv column with each volume's integer label map "
                                                        "(NIfTI on the volume's grid): evaluation, optional Dice loss")
    atlas: Path | None = Field(None, description="NIfTI atlas: every training pair is subject -> atlas; None = "
                                                 "random pairs within the cohort")
    atlas_labels: Path | None = Field(None, description="the atlas's label map (Dice loss with an atlas)")

    @model_validator(mode="after")
    def _registration_grid(self) -> RegistrationData:
        if self.spacing is not None:
            raise ValueError("registration works on volumes zoomed onto the image_size cube: leave data.spacing "
                             "unset")
        if self.atlas_labels is not None and self.atlas is None:
            raise ValueError("data.atlas_labels needs data.atlas")
        if self.dataset is not None:
            raise ValueError("registration reads a cohort folder: give data.path, not data.dataset")
        unused = [key for key in ("genotypes", "records", "mask_column", "group_column", "max_variants")
                  if getattr(self, key) is not None] + (["genetic_tables"] if self.genetic_tables else [])
        if unused:
            raise ValueError(f"registration does not use data.{unused[0]}: remove it")
        return self


class RegistrationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: RegistrationData
    method: MethodSection
    train: TrainConfig = Field(default_factory=TrainConfig)

    def hash(self) -> str:
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def method_kwargs(config: RegistrationConfig) -> dict[str, Any]:
    return dict(config.method.model_extra or {})


def load_registration_config(source: str | Path | dict[str, Any], overrides: list[str] | None = None,
                             base_dir: Path | None = None) -> RegistrationConfig:
    """Read (YAML file or dict), apply ``--set`` overrides, validate, resolve defaults; relative paths are taken
    from the YAML file's folder (or ``base_dir``)."""
    from biolatent.methods.registration_registry import REGISTRATION_METHODS

    config, base_dir = validated_config(RegistrationConfig, source, overrides, base_dir)
    resolve_paths(config.data, ("path", "metadata", "atlas", "atlas_labels"), base_dir)
    name = config.method.name
    if name not in REGISTRATION_METHODS:
        raise ConfigError(f"method.name: unknown registration method {name!r} "
                          f"(valid: {', '.join(REGISTRATION_METHODS)})")
    kwargs = validate_kwargs("method", name, REGISTRATION_METHODS[name], config.method.model_extra or {}, ())
    if kwargs["spatial_dims"] != 3:
        raise ConfigError(f"method.spatial_dims: volume data is 3D, got {kwargs['spatial_dims']}")
    try:
        method = REGISTRATION_METHODS[name](**kwargs)
    except ValueError as exc:
        raise ConfigError(f"method: {exc}") from None
    if config.data.image_size % method.divisor:
        raise ConfigError(f"data.image_size {config.data.image_size} must be a multiple of {method.divisor} "
                          f"(the U-Net halves the grid {len(kwargs['widths']) - 1} times)")
    if kwargs["dice_weight"] > 0 and (config.data.labels_column is None
                                      or (config.data.atlas is not None and config.data.atlas_labels is None)):
        raise ConfigError("method.dice_weight > 0 needs label maps: data.labels_column (and data.atlas_labels with "
                          "an atlas)")
    batch_size = config.train.batch_size or DEFAULT_BATCH_SIZE
    return config.model_copy(update={"method": MethodSection(name=name, **kwargs),
                                     "train": config.train.model_copy(update={"batch_size": batch_size})})


def dump_registration_config(config: RegistrationConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
