"""A frozen multi-scale feature extractor ("pre-trained encoder") for feature-based image anomaly detectors.

Reverse distillation (Deng & Li 2022, CVPR) and PatchCore (Roth et al. 2022, CVPR) both compare dense feature
maps of a frozen, pre-trained CNN at several scales. Here that CNN is biolatent's ResNet
(``biolatent.models.resnet.ResNetEncoder``: He et al. 2016, CVPR, "Deep residual learning for image
recognition"), 2D or 3D (``spatial_dims``: volumes are read natively in 3D); the pyramid is the output of its
last three stages. With the default ResNet (stride-1 stem and
first stage, then three stride-2 stages) the levels have strides 2, 4 and 8.

``backbone`` says where the weights come from:

* ``"random"``: a randomly initialised ResNet (seeded by ``seed``), never trained. A weak, documented baseline:
  random convolutional features still separate local texture and intensity, but carry no learned notion of
  normal anatomy.
* a path to a ``biolatent pretrain`` run directory of an ``image2d`` method with a ``resnet`` encoder
  (``config.yaml``, ``data_info.json``, ``model.safetensors``): the ``encoder.*`` weights of that run are
  loaded (weights only, safetensors). This is how biolatent's own self-supervised encoders feed the detectors.
  A run of another modality or encoder is a one-line ``ConfigError``; a run pre-trained on images with another
  number of channels is a one-line ``DataError``.

The weights are parameters and buffers of the pyramid (so they are part of the detector's state_dict and a
fitted detector no longer needs the run directory), with ``requires_grad=False``; the pyramid always stays in
evaluation mode (BatchNorm running statistics are never updated), even when the trainer calls ``.train()``.
To rebuild a pyramid whose run directory is gone (loading a saved detector), pass the architecture
(``widths``, ``blocks``) explicitly: the pyramid is built empty and flagged not ready until a state_dict
holding its weights is loaded (``ready`` buffer); using it before that is a ``ConfigError``.

The network itself (``FeaturePyramid``) is ``biolatent.models.feature_pyramid``; this module builds it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from biolatent.errors import ConfigError, DataError
from biolatent.models.feature_pyramid import FeaturePyramid, resnet_architecture
from biolatent.models.resnet import ResNetEncoder

RANDOM = "random"
DEFAULT_WIDTHS = (32, 64, 128, 256)  # biolatent's default ResNet (biolatent.models.resnet)
DEFAULT_BLOCKS = (1, 1, 1, 1)


def build_pyramid(
    backbone: str,
    in_channels: int,
    *,
    widths: tuple[int, ...] | None = None,
    blocks: tuple[int, ...] | None = None,
    seed: int = 0,
    spatial_dims: int = 2,
) -> FeaturePyramid:
    """The frozen pyramid of ``backbone`` ("random" or a pretrain run directory) for ``in_channels`` images
    (``spatial_dims`` 2) or volumes (3)."""
    if backbone == RANDOM:
        widths = tuple(widths) if widths is not None else DEFAULT_WIDTHS
        blocks = tuple(blocks) if blocks is not None else (1,) * len(widths)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _resnet(in_channels, widths, blocks, spatial_dims)
        return FeaturePyramid(net, centre_input=True)
    run_dir = Path(backbone)
    if run_dir.is_dir():
        return _from_run(run_dir, in_channels, widths, blocks, spatial_dims)
    if widths is None or blocks is None:
        raise ConfigError(f"backbone: {backbone!r} is neither 'random' nor a biolatent pretrain run directory")
    return FeaturePyramid(_resnet(in_channels, tuple(widths), tuple(blocks), spatial_dims), ready=False)


def _resnet(in_channels: int, widths: tuple[int, ...], blocks: tuple[int, ...], spatial_dims: int = 2,
            ) -> ResNetEncoder:
    if len(widths) != len(blocks):
        raise ConfigError(f"encoder_widths and encoder_blocks need the same length, got {list(widths)} {list(blocks)}")
    return ResNetEncoder(in_channels, widths=widths, blocks=blocks, spatial_dims=spatial_dims)


def _from_run(run_dir: Path, in_channels: int, widths: tuple[int, ...] | None,
              blocks: tuple[int, ...] | None, spatial_dims: int = 2) -> FeaturePyramid:
    """The ``encoder.*`` weights of a pretrain run, in a ResNet of the run's architecture."""
    from biolatent.errors import BiolatentError
    from biolatent.runs import WEIGHTS_FILE, load_data_info, load_run_config
    from biolatent.train.checkpoint import load_state

    try:
        config, info = load_run_config(run_dir), load_data_info(run_dir)
    except BiolatentError as exc:
        raise ConfigError(f"backbone: {exc}") from None
    wanted = "image2d" if spatial_dims == 2 else "volume"
    if info.modality != wanted or config.model.name != "resnet":
        raise ConfigError(f"backbone: {run_dir} holds a {info.modality} run with a {config.model.name!r} encoder; "
                          f"the feature pyramid needs an {wanted} run with a 'resnet' encoder")
    if int(info.channels or 0) != in_channels:
        raise DataError(f"backbone: the encoder of {run_dir} was pre-trained on {info.channels}-channel images, "
                        f"these have {in_channels}")
    kwargs = dict(config.model.model_extra or {})
    if int(kwargs.get("spatial_dims", info.spatial_dims or 2)) != spatial_dims:
        raise ConfigError(f"backbone: the encoder of {run_dir} is not {spatial_dims}D; the detector has spatial_dims "
                          f"{spatial_dims}")
    net = _resnet(in_channels, tuple(kwargs.get("widths", DEFAULT_WIDTHS)), tuple(kwargs.get("blocks", DEFAULT_BLOCKS)),
                  spatial_dims)
    found = resnet_architecture(net)
    if (widths is not None and tuple(widths) != found[0]) or (blocks is not None and tuple(blocks) != found[1]):
        raise ConfigError(f"backbone: the encoder of {run_dir} has widths {list(found[0])} and blocks "
                          f"{list(found[1])}, not encoder_widths {widths} / encoder_blocks {blocks}")
    weights_path = run_dir / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ConfigError(f"backbone: {run_dir} has no {WEIGHTS_FILE}: the pretrain run did not finish")
    tensors, _ = load_state(weights_path)
    state = {k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError:
        raise ConfigError(f"backbone: the encoder weights of {run_dir} do not fit its config (widths "
                          f"{list(found[0])}, blocks {list(found[1])})") from None
    return FeaturePyramid(net)


def pyramid_for(
    encoder: nn.Module | None,
    in_channels: int,
    backbone: str,
    widths: tuple[int, ...] | None,
    blocks: tuple[int, ...] | None,
    seed: int,
    spatial_dims: int = 2,
) -> FeaturePyramid:
    """The given pyramid (``encoder``, checked), else ``build_pyramid(backbone, ...)``: what the detectors use."""
    if encoder is None:
        return build_pyramid(backbone, in_channels, widths=widths, blocks=blocks, seed=seed,
                             spatial_dims=spatial_dims)
    if not isinstance(encoder, FeaturePyramid):
        raise ConfigError("the feature detectors take a FeaturePyramid as encoder (or encoder=None and a backbone)")
    if encoder.spatial_dims != spatial_dims:
        raise ConfigError(f"the feature pyramid is {encoder.spatial_dims}D, the detector has spatial_dims "
                          f"{spatial_dims}")
    if encoder.in_channels != in_channels:
        raise DataError(f"the feature pyramid takes {encoder.in_channels}-channel images, these have {in_channels}")
    return encoder
