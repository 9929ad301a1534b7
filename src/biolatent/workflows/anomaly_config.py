"""The config of ``biolatent anomaly fit``: the run config of ``pretrain`` (``config.RunConfig``: the same ``data``
section and modality names, the same ``train`` section) with ``method`` naming a detector, plus the anomaly-only
sections ``validation``, ``window`` and ``maps`` (``config.AnomalyRunConfig``), read by the same loader.

```yaml
data:       {modality: volume, path: brains_healthy, lesion_column: mask}  # series | features | image2d | volume
method:     {name: cevae}                    # the detector and its hyper-parameters (anomaly.detectors)
train:      {epochs: 10, seed: 0}            # epochs, batch_size, lr, seed, accelerator, devices, precision
validation: {fraction: 0.2, target_fpr: 0.01}   # threshold from healthy validation data only
window:     {size: 64, stride: 1}            # series only
maps:       {volume_mode: 3d, brain_erosion: 0}   # volumes only: 3d (default) or slicewise
```

A key of the former anomaly config (``modality: volume3d``, a top-level ``seed``, ``data.brain_erosion``, image
``data.mask_column``) is a one-line error that names its new place (``config.check_old_anomaly_keys``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biolatent.config import AnomalyRunConfig, default_batch_size, parse_config
from biolatent.errors import ConfigError

# data modalities a detector can be fitted on
ANOMALY_MODALITIES = ("series", "features", "image2d", "volume")


def load_anomaly_config(source: str | Path | dict[str, Any], overrides: list[str] | None = None,
                        base_dir: Path | None = None) -> AnomalyRunConfig:
    """Read a YAML file (or a dict), apply ``--set`` overrides, validate every section (``config.parse_config``),
    check the detector and its hyper-parameters against the data modality (one-line ``ConfigError``) and fill
    ``train.batch_size`` with the modality's default."""
    from biolatent.anomaly.detectors import build_for

    config = parse_config(source, overrides, base_dir, model=AnomalyRunConfig)
    modality = config.data.modality
    if modality not in ANOMALY_MODALITIES:
        raise ConfigError(f"data.modality: anomaly detectors work on {', '.join(ANOMALY_MODALITIES)} data, not "
                          f"{modality!r}")
    for section in ("model", "views"):
        values = {k: v for k, v in getattr(config, section).model_dump().items() if v is not None}
        if values:
            raise ConfigError(f"{section}: an anomaly detector builds its own network from its method "
                              f"hyper-parameters; remove the {section} section (got {', '.join(sorted(values))})")
    try:  # unknown name / key: now
        build_for(detector_family(modality), config.method.name, method_params(config))
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("volume3d", "volume")) from None
    batch_size = config.train.batch_size or default_batch_size(modality)
    return config.model_copy(update={"train": config.train.model_copy(update={"batch_size": batch_size})})


VOLUME_DIMS = {"3d": 3, "slicewise": 2}  # maps.volume_mode -> the image detector's spatial_dims


def method_params(config: AnomalyRunConfig) -> dict[str, Any]:
    """The detector's hyper-parameters: the method section without its name; for volume data, ``spatial_dims`` of
    ``maps.volume_mode`` (3 by default: volumes scored natively in 3D; 2: slice-wise). A ``method.spatial_dims``
    that contradicts the mode is a one-line ConfigError."""
    params = dict(config.method.model_extra or {})
    if config.data.modality != "volume":
        return params
    mode = config.maps.volume_mode
    dims = VOLUME_DIMS[mode]
    given = params.get("spatial_dims")
    if given is not None and given != dims:
        raise ConfigError(f"method.spatial_dims: {given} contradicts maps.volume_mode: {mode} (spatial_dims {dims}); "
                          "set maps.volume_mode (3d or slicewise) and drop method.spatial_dims")
    return {**params, "spatial_dims": dims}


def detector_family(modality: str) -> str:
    """The modality name the detector registry (``anomaly.detectors.build_for``) knows (``volume3d`` for volumes,
    scored natively in 3D or slice-wise with a 2D detector: ``maps.volume_mode``)."""
    return "volume3d" if modality == "volume" else modality
