"""From a validated config to live objects: resolve defaults, then build encoder + views + method."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from biolatent.config import (
    MethodSection,
    ModelSection,
    RunConfig,
    ViewsSection,
    default_batch_size,
    parse_config,
    validate_kwargs,
)
from biolatent.errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from biolatent.data.samples import DataInfo
    from biolatent.methods.base import SSLMethod

# arguments the builder injects (never from YAML); a method adds the facts of the data it declares in data_kwargs
_METHOD_INJECTED = ("views",)
_VIEWS_INJECTED = ("image_size", "is_counts", "n_features", "max_length", "channels")  # facts of the data (DataInfo)


def load_config(
    source: str | Path | dict[str, Any], overrides: list[str] | None = None, base_dir: Path | None = None
) -> RunConfig:
    """Read a YAML file (or a dict), apply ``--set`` overrides, validate every section
    (``config.parse_config``) and fill the method, model and train sections with their defaults
    (:func:`resolve_sections`). Relative data paths are resolved against the YAML file's folder (or ``base_dir``)."""
    return resolve_sections(parse_config(source, overrides, base_dir))


def resolve_sections(config: RunConfig) -> RunConfig:
    """Fill the method, model and train sections with their defaults (per modality: the encoder, its stem, the
    batch size); reject unknown names, keys and values."""
    from biolatent.methods.registry import METHODS
    from biolatent.models.registry import ENCODER_MODALITIES, ENCODERS, default_encoder, default_encoder_kwargs

    modality = config.data.modality
    name = config.method.name
    if name not in METHODS:
        raise ConfigError(f"method.name: unknown method {name!r} (valid: {', '.join(METHODS)})")
    method_cls = METHODS[name]
    if modality not in method_cls.modalities:
        raise ConfigError(
            f"method {name!r} does not work with data.modality {modality!r} "
            f"(it supports: {', '.join(method_cls.modalities)})"
        )
    method_kwargs = validate_kwargs(
        "method", name, method_cls, config.method.model_extra or {}, skip=method_injected(method_cls)
    )

    model_name = config.model.name or default_encoder(modality, name)
    pretrained: dict[str, Any] = {}
    if config.model.from_pretrained is not None:
        model_name, pretrained = _pretrained_architecture(config)
    if model_name not in ENCODERS:
        raise ConfigError(f"model.name: unknown encoder {model_name!r} (valid: {', '.join(ENCODERS)})")
    if modality not in ENCODER_MODALITIES[model_name]:
        raise ConfigError(
            f"encoder {model_name!r} does not work with data.modality {modality!r} "
            f"(it supports: {', '.join(ENCODER_MODALITIES[model_name])})"
        )
    model_values = default_encoder_kwargs(model_name, modality) | (config.model.model_extra or {}) | pretrained
    model_kwargs = validate_kwargs("model", model_name, ENCODERS[model_name], model_values, ())
    batch_size = config.train.batch_size or default_batch_size(modality)
    return config.model_copy(
        update={
            "method": MethodSection(name=name, **method_kwargs),
            "model": ModelSection(name=model_name, from_pretrained=config.model.from_pretrained, **model_kwargs),
            "views": ViewsSection(**_views_kwargs(modality, config.views.model_extra or {}, method_cls)),
            "train": config.train.model_copy(update={"batch_size": batch_size}),
        }
    )


def _pretrained_architecture(config: RunConfig) -> tuple[str, dict[str, Any]]:
    """(encoder name, architecture) of ``model.from_pretrained``; the config may not name another encoder or set
    the architecture again (a resolved config that repeats the folder's own values is fine)."""
    from biolatent.models.huggingface import ARCHITECTURE_KEYS, encoder_from_pretrained

    folder = config.model.from_pretrained
    assert folder is not None
    name, architecture = encoder_from_pretrained(folder, getattr(config.data, "kmer", None))
    if config.model.name not in (None, name):
        raise ConfigError(f"model.name {config.model.name!r} disagrees with the pretrained folder {folder}, a "
                          f"{name!r} model: leave model.name out")
    extra = config.model.model_extra or {}
    for key in ARCHITECTURE_KEYS[name]:
        if key in extra and extra[key] != architecture[key]:
            raise ConfigError(f"model.{key} is set by the pretrained folder {folder} ({architecture[key]}): "
                              "leave it out")
    return name, architecture


def method_injected(method_cls: type[SSLMethod]) -> tuple[str, ...]:
    """The method's keyword arguments the builder fills (views, its ``data_kwargs``): not valid config keys."""
    return (*_METHOD_INJECTED, *method_cls.data_kwargs)


def method_data_kwargs(name: str, info: DataInfo) -> dict:
    """The facts of the data a method declares in ``data_kwargs`` (keyword -> ``DataInfo`` attribute), e.g.
    CLIP's ``n_genes`` from ``info.n_features``, so that a config never states what the data already say."""
    from biolatent.methods.registry import METHODS

    declared = METHODS[name].data_kwargs if name in METHODS else {}
    return {keyword: getattr(info, attribute) for keyword, attribute in declared.items()}


def _views_kwargs(modality: str, values: dict, method_cls: type) -> dict:
    from biolatent.data.views import VIEWS

    if not method_cls.uses_views:
        if values:
            raise ConfigError(f"views: method {method_cls.name!r} uses no augmentation views; remove the views "
                              f"section (got {', '.join(sorted(values))})")
        return {}
    if modality not in VIEWS:
        if values:
            raise ConfigError(f"views: data.modality {modality!r} has no augmentation views to configure")
        return {}
    return validate_kwargs("views", modality, VIEWS[modality], values, skip=_VIEWS_INJECTED)


def section_kwargs(section: MethodSection | ModelSection) -> dict:
    return dict(section.model_extra or {})


def build_encoder(config: RunConfig, info: DataInfo) -> nn.Module:
    from biolatent.models.registry import build_encoder as build

    assert config.model.name is not None, "config must be resolved first"
    return build(config.model.name, info, **section_kwargs(config.model))


def build_views(config: RunConfig, info: DataInfo) -> nn.Module:
    """The modality's views with the config's ``views`` section (a bad value is a ConfigError)."""
    from biolatent.data.views import build_views as build

    try:
        return build(info, **dict(config.views.model_extra or {}))
    except ValueError as exc:
        raise ConfigError(f"views: {exc}") from None


def build_method(config: RunConfig, info: DataInfo) -> nn.Module:
    """Encoder + views + method, checked against the data (a method that cannot use it refuses here)."""
    from biolatent.methods.registry import METHODS
    from biolatent.methods.registry import build_method as build

    uses_views = config.method.name in METHODS and METHODS[config.method.name].uses_views
    method = build(
        config.method.name, build_encoder(config, info), views=build_views(config, info) if uses_views else None,
        **section_kwargs(config.method), **method_data_kwargs(config.method.name, info)
    )
    method.check_data(info)
    return method


def fit_input_statistics(module: nn.Module, x: Tensor) -> nn.Module:
    """Give every submodule with a ``fit_input_statistics(x)`` hook (an encoder that standardises its input,
    its EMA teacher copies too) the statistics of the training data ``x``; returns ``module``.

    Encoders are built from ``DataInfo`` before any data is seen; whatever trains or embeds a freshly built
    model (pretrain, the random-init and supervised baselines) calls this once with the run's data.
    """
    for sub in module.modules():
        hook = getattr(sub, "fit_input_statistics", None)
        if callable(hook):
            hook(x)
    return module
