"""``ImageReconstructionDetector``: an image anomaly model fitted on healthy 2D images, scoring pixels and images.

``kind`` picks the model (``KINDS``): reconstruction ``"ae"`` (``ConvAE``), ``"vae"`` (``ConvVAE``, Kingma &
Welling 2014) or ``"cevae"`` (``CeVAE``, Zimmerer et al. 2019, arXiv:1812.05941, as used by StRegA, Chatterjee
et al. 2022, Computers in Biology and Medicine 106093); diffusion ``"ddpm"`` (partial-noising reconstruction,
AnoDDPM-style) and ``"masked_diffusion"`` (MAD-AD-style); feature-based ``"reverse_distillation"`` (Deng & Li
2022) and ``"patchcore"`` (Roth et al. 2022, a memory bank: ``fit_memory`` instead of gradient training).
``fit`` trains it on healthy images with the project's trainer (``biolatent.train.fit.fit``); ``score_maps``
gives the model's per-pixel anomaly map (N, H, W) (AE / VAE:
|x - x_hat| averaged over channels; ceVAE: its ``score_mode``, by default the residual times the normalised
ELBO gradient); ``score`` gives one number per image: the map is first opened by a grey-scale morphological
opening with a (2r+1)x(2r+1) square (``score_opening`` = r, default 1; 0 = none), then the mean of its top
``top_fraction`` (default 1 %, at least one pixel) values is taken. The top-fraction mean is a robust maximum
(one noisy pixel does not dominate); the opening removes residuals thinner than the square, such as the
1-2 pixel rims every reconstruction model leaves along sharp edges (the skull), which otherwise outrank a
lesion: on the simulated slices of the tests (32x32, 16 healthy vs 16 lesioned, AE, seed 0) the sample AUROC
is 0.45 without the opening and 0.87 with it. ``segment`` applies the StRegA post-processing
(``postprocess``).

It is the ``Detector`` of the seven image names of the detector registry (``anomaly.detectors``): persistence
is the project's one weights-only format (``Detector.save`` / ``load_detector``: ``detector.safetensors`` holds
the module's state_dict, ``detector.json`` the kind as ``name``, hyper-parameters and image geometry; no pickle).

Images are float (N, C, H, W) in [0, 1] with H = W a power of two >= 32; with ``spatial_dims=3`` (every kind)
volumes (N, C, D, H, W) with D = H = W, scored natively in 3D (maps (N, D, H,
W), the opening a (2r+1)^3 cube). Anything else is a one-line ``DataError``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from biolatent.anomaly.detectors.base import Detector
from biolatent.anomaly.image.autoencoders import ConvAE, ConvVAE
from biolatent.anomaly.image.cevae import CeVAE
from biolatent.anomaly.image.ddpm import DDPMAnomaly
from biolatent.anomaly.image.masked_diffusion import MaskedDiffusionAnomaly
from biolatent.anomaly.image.patchcore import PatchCore
from biolatent.anomaly.image.postprocess import postprocess
from biolatent.anomaly.image.reverse_distillation import ReverseDistillation
from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.models.conv_encoder import MIN_SIZE, is_power_of_two
from biolatent.models.device import module_device

if TYPE_CHECKING:
    from biolatent.config import TrainConfig

KINDS: dict[str, type[SSLMethod]] = {
    "ae": ConvAE, "vae": ConvVAE, "cevae": CeVAE,
    "ddpm": DDPMAnomaly, "masked_diffusion": MaskedDiffusionAnomaly,
    "reverse_distillation": ReverseDistillation, "patchcore": PatchCore,
}
FROM_DATA = ("in_channels", "image_size")  # set from the training images, not by the user
LEGACY_NAME = "image_reconstruction"  # the ``name`` of detector.json files written before the one registry
SHAPES = {2: "images (N, C, H, W)", 3: "volumes (N, C, D, H, W)"}
SCORE_BATCH = {2: 64, 3: 4}  # images / volumes per scoring batch


def check_images(images: np.ndarray, what: str, geometry: tuple[int, int] | None = None,
                 spatial_dims: int = 2) -> np.ndarray:
    """float32 (N, C, *spatial) in [0, 1] with ``spatial_dims`` equal sides, a power of two >= 32 ((C, side) ==
    geometry when given); else DataError."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 2 + spatial_dims or x.shape[0] == 0:
        raise DataError(f"{what}: expected {SHAPES.get(spatial_dims, spatial_dims)}, got shape {x.shape}")
    c, h, sides = x.shape[1], x.shape[-1], x.shape[2:]
    if len(set(sides)) != 1 or not is_power_of_two(h) or h < MIN_SIZE:
        kind = "square" if spatial_dims == 2 else "cubic"
        raise DataError(f"{what}: {SHAPES[spatial_dims].split()[0]} must be {kind} with a side that is a power of two "
                        f">= {MIN_SIZE}, got {'x'.join(map(str, sides))}")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: images hold NaN or inf")
    if x.min() < 0.0 or x.max() > 1.0:
        raise DataError(f"{what}: intensities must lie in [0, 1], got [{x.min():.3g}, {x.max():.3g}]: rescale first")
    if geometry is not None and (c, h) != geometry:
        raise DataError(f"{what}: images are {c}x{'x'.join(map(str, sides))} (C x sides), the detector was fitted "
                        f"on {geometry[0]}x{'x'.join([str(geometry[1])] * spatial_dims)}")
    return x


def check_masks(masks: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """bool (N, *spatial) masks matching maps of ``shape``; DataError otherwise."""
    m = np.asarray(masks)
    if m.shape != tuple(shape):
        raise DataError(f"{what}: masks have shape {m.shape}, the images' maps have {tuple(shape)}")
    return m.astype(bool)


def top_fraction_mean(maps: np.ndarray, fraction: float) -> np.ndarray:
    """(N, *spatial) -> (N,) mean of the largest ceil(fraction * pixels) values of each map (at least one)."""
    flat = maps.reshape(maps.shape[0], -1).astype(np.float64)
    k = max(1, math.ceil(fraction * flat.shape[1]))
    return np.sort(flat, axis=1)[:, -k:].mean(axis=1)


def sample_scores(maps: np.ndarray, fraction: float, opening_radius: int) -> np.ndarray:
    """(N, *spatial) -> (N,): grey-scale opening of each map ((2r+1)^2 square, (2r+1)^3 cube for volumes; r = 0:
    none), then the top-fraction mean."""
    if opening_radius > 0:
        size = (2 * opening_radius + 1,) * (maps.ndim - 1)
        maps = np.stack([ndimage.grey_opening(m, size=size, mode="reflect") for m in maps])
    return top_fraction_mean(maps, fraction)


class ImageReconstructionDetector(Detector):
    """Fitted on healthy images (N, C, *spatial); ``score_maps`` (N, *spatial), ``score`` (N,), ``segment``."""

    name: ClassVar[str] = "image_reconstruction"
    data_kind: ClassVar[str] = "images"

    def __init__(self, kind: str = "ae", *, top_fraction: float = 0.01, score_opening: int = 1, **params: Any) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown image detector kind {kind!r} (choose from: {', '.join(KINDS)})")
        if not 0.0 < top_fraction <= 1.0:
            raise ConfigError(f"top_fraction must be in (0, 1], got {top_fraction}")
        if score_opening < 0:
            raise ConfigError(f"score_opening must be >= 0, got {score_opening}")
        self.kind, self.top_fraction, self.score_opening = kind, float(top_fraction), int(score_opening)
        self.params = _validated_params(kind, params)
        self.spatial_dims = int(self.params.get("spatial_dims", 2))
        self.geometry: tuple[int, int] | None = None  # (channels, side) of the training images
        self.method: SSLMethod | None = None
        self.history: pd.DataFrame | None = None

    @property
    def trains_by_gradient(self) -> bool:
        return not hasattr(KINDS[self.kind], "fit_memory")  # PatchCore keeps a memory bank instead

    def _build(self, channels: int, side: int) -> SSLMethod:
        self.geometry = (channels, side)
        self.method = KINDS[self.kind](None, in_channels=channels, image_size=side, **self.params)
        self.params.update(getattr(self.method, "resolved_params", {}))  # e.g. a pretrain run's architecture
        return self.method

    def fit(
        self,
        images: np.ndarray,
        *,
        train: TrainConfig | None = None,
        epochs: int = 20,
        batch_size: int = 32,
        lr: float = 1e-3,
        seed: int = 0,
        accelerator: str = "auto",
    ) -> ImageReconstructionDetector:
        """Train a fresh model on healthy ``images`` through ``biolatent.train.fit`` with the trainer settings
        ``train`` (accelerator, devices, strategy, precision, ...; weights initialised from ``train.seed``), or, when
        ``train`` is None, a ``TrainConfig`` of ``epochs``, ``batch_size``, ``lr``, ``seed`` and ``accelerator``;
        after ``checkpoint_in(run_dir, resume=True)`` it continues the training checkpointed there."""
        from biolatent.config import TrainConfig
        from biolatent.train.device import inference_device
        from biolatent.train.fit import fit

        x = check_images(images, f"{self.kind} fit", spatial_dims=self.spatial_dims)
        if train is None:
            train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, accelerator=accelerator)
        elif train.batch_size is None:
            train = train.model_copy(update={"batch_size": batch_size})
        torch.manual_seed(train.seed)
        method = self._build(x.shape[1], x.shape[2])
        if hasattr(method, "fit_memory"):  # not trained by gradient (PatchCore): a memory bank of healthy features
            method.fit_memory(torch.from_numpy(x))
        else:
            self.history = fit(method, torch.from_numpy(x), train, progress=False, run_dir=self.checkpoint_dir,
                               resume=self.resume)
        method.to(inference_device(train)).eval()  # scored where it trained (Lightning hands it back on the CPU)
        return self

    def to(self, device: torch.device | str) -> ImageReconstructionDetector:
        """The fitted model on ``device`` (scoring batches follow it; maps come back to the CPU)."""
        self._fitted().to(device)
        return self

    def _fitted(self) -> SSLMethod:
        if self.method is None:
            raise DataError(f"{self.name}: score before fit() or load()")
        return self.method

    def score_maps(self, images: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Per-pixel (voxel) anomaly maps, float32 (N, *spatial); larger = more anomalous. Batches (default 64
        images, 4 volumes) go to the device of the model's parameters (a model left on a GPU scores there), the
        maps come back to the CPU."""
        method = self._fitted()
        x = torch.from_numpy(check_images(images, f"{self.kind} score", self.geometry, self.spatial_dims))
        method.eval()
        step = batch_size or SCORE_BATCH[self.spatial_dims]
        device = module_device(method)
        maps = [method.anomaly_map(x[i : i + step].to(device)).detach().float().cpu()
                for i in range(0, x.shape[0], step)]
        return torch.cat(maps).numpy().astype(np.float32)

    def score(self, images: np.ndarray) -> np.ndarray:
        """Per-image anomaly score (N,): top ``top_fraction`` mean of the grey-opened map (module docstring)."""
        return sample_scores(self.score_maps(images), self.top_fraction, self.score_opening)

    def segment(self, images: np.ndarray, **options: Any) -> np.ndarray:
        """bool (N, H, W): ``postprocess`` (StRegA chain) of the maps; ``options`` go to ``postprocess``."""
        return postprocess(self.score_maps(images), **options)

    def pixel_metrics(self, images: np.ndarray, masks: np.ndarray) -> dict[str, float]:
        """Pixel-level AUROC and average precision of the maps against lesion ``masks`` (N, H, W)."""
        from biolatent.anomaly.metrics import ranking_metrics

        maps = self.score_maps(images)
        truth = check_masks(masks, maps.shape, f"{self.name} pixel_metrics")
        return ranking_metrics(maps.ravel(), truth.ravel(), "pixel")

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the module's state_dict, {name: kind, params, top_fraction, score_opening, geometry})."""
        method = self._fitted()
        return method.state_dict(), {"name": self.kind, "kind": self.kind, "params": self.params,
                                     "top_fraction": self.top_fraction, "score_opening": self.score_opening,
                                     "geometry": list(self.geometry or ())}

    @classmethod
    def from_state(cls, tensors: dict[str, Any], meta: dict[str, Any]) -> ImageReconstructionDetector:
        detector = cls(meta["kind"], top_fraction=meta["top_fraction"], score_opening=meta["score_opening"],
                       **meta["params"])
        channels, side = (int(v) for v in meta["geometry"])
        method = detector._build(channels, side)
        method.load_state_dict(tensors, strict=True)
        method.eval()
        return detector

    @classmethod
    def load(cls, folder: str | Path) -> ImageReconstructionDetector:
        """The image detector written by ``save`` (weights only); another detector is a one-line DataError."""
        from biolatent.anomaly.detectors.base import WEIGHTS
        from biolatent.train.checkpoint import load_state

        path = Path(folder) / WEIGHTS
        if not path.is_file() or not path.with_suffix(".json").is_file():
            raise DataError(f"{folder} holds no fitted detector (detector.json + detector.safetensors)")
        tensors, meta = load_state(path)
        if meta.get("name") not in (*KINDS, LEGACY_NAME):
            raise DataError(f"{folder}: holds a {meta.get('name')!r} detector, not an image detector")
        return cls.from_state(tensors, meta)


def _validated_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The model's keyword hyper-parameters with defaults filled in (json-friendly); ConfigError if unknown."""
    from biolatent.config import keyword_model, validate_kwargs

    cls = KINDS[kind]
    skip = ("views", *FROM_DATA)
    valid = sorted(keyword_model(cls, skip=skip).model_fields)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        taken = [k for k in unknown if k in FROM_DATA]
        why = f" ({', '.join(taken)} come from the training images)" if taken else ""
        raise ConfigError(f"unknown {kind!r} hyper-parameter(s) {', '.join(unknown)}{why} (valid: {', '.join(valid)})")
    values = validate_kwargs("detector", kind, cls, params, skip)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
