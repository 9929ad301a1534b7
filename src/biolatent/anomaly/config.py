"""The config of ``biolatent anomaly fit``: which healthy data, which detector, windows, validation threshold.

```yaml
data:       {modality: series, dataset: internal-bleeding16}   # or path: healthy.tsv; features: embeddings.h5ad
                                                                # or a table (id + numeric feature columns,
                                                                # drop_columns: [text or other non-features])
method:     {name: knn, k: 5}                                   # mahalanobis | knn | iforest | anomaly_transformer;
                                                                # image2d, volume3d (NIfTI folder, axial slices): ae |
                                                                # vae | cevae | ddpm | masked_diffusion |
                                                                # reverse_distillation | patchcore
train:      {epochs: 20, batch_size: 32, lr: 0.001}             # neural detectors only
window:     {size: 64, stride: 1}                               # series only
validation: {fraction: 0.2, target_fpr: 0.01}                   # threshold from healthy validation data only
seed: 0
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from biolatent.errors import ConfigError

_STRICT = ConfigDict(extra="forbid")


class AnomalyData(BaseModel):
    model_config = _STRICT

    modality: Literal["series", "features", "image2d", "volume3d"] = "series"
    path: Path | None = Field(None, description="healthy data: series table, embeddings .h5ad / table, image or "
                                                "NIfTI volume folder")
    dataset: str | None = Field(None, description="registered dataset (its healthy part) instead of a path")
    value_column: str = "value"
    label_column: str = Field("is_anomaly", description="0/1 or True/False column of labelled data (never a "
                                                        "feature); `anomaly evaluate --label` names another")
    drop_columns: list[str] = Field(default_factory=list, description="features table: columns that are not "
                                                                      "features (besides id and label_column)")
    key: str = Field("X_biolatent", description="obsm key of the features in an .h5ad")
    image_size: int = Field(64, ge=16, description="side of the square images (image2d) or cubic volumes (volume3d)")
    mask_column: str = Field("mask", description="meta.tsv column with lesion masks (image2d: PNG, volume3d: NIfTI)")
    brain_erosion: int = Field(0, ge=0, description="volume3d: keep maps only inside the brain (nonzero voxels) "
                                                    "eroded by this many voxels; 0: the brain dilated by one voxel")

    @model_validator(mode="after")
    def _path_or_dataset(self) -> AnomalyData:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of data.path or data.dataset")
        if self.drop_columns and self.modality != "features":
            raise ValueError("data.drop_columns applies to features tables (modality: features) only")
        return self


class AnomalyMethod(BaseModel):
    model_config = ConfigDict(extra="allow")  # the detector's own parameters, checked by build_detector

    name: str = "knn"

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class WindowConfig(BaseModel):
    model_config = _STRICT

    size: int = Field(64, ge=2)
    stride: int = Field(1, ge=1)


class ValidationConfig(BaseModel):
    model_config = _STRICT

    fraction: float = Field(0.2, gt=0.0, lt=1.0, description="healthy data held out to set the threshold")
    target_fpr: float = Field(0.01, ge=0.0, lt=1.0, description="false-positive rate on healthy validation data")


class TrainSection(BaseModel):
    """Training of the image detectors (image2d, volume3d; patchcore is not trained); ignored by feature detectors."""

    model_config = _STRICT

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)


class AnomalyConfig(BaseModel):
    model_config = _STRICT

    data: AnomalyData
    method: AnomalyMethod = AnomalyMethod()
    window: WindowConfig = WindowConfig()
    validation: ValidationConfig = ValidationConfig()
    train: TrainSection = TrainSection()
    seed: int = 0


def load_anomaly_config(source: str | Path | dict[str, Any]) -> AnomalyConfig:
    """Validate a YAML file (relative data paths resolved against its folder) or a dict; one-line errors."""
    base = None
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        base = path.parent
    else:
        raw = source
    if not isinstance(raw, dict):
        raise ConfigError("an anomaly config is a mapping with the sections data, method, window, validation, seed")
    try:
        config = AnomalyConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ConfigError(f"{where}: {error['msg']}") from None
    from biolatent.anomaly.detectors import build_for

    build_for(config.data.modality, config.method.name, config.method.params())  # unknown name / parameter: now
    if base is not None and config.data.path is not None and not config.data.path.is_absolute():
        config.data.path = base / config.data.path
    return config
