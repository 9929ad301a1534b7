"""A lesion segmentation network on the anomaly detectors' backbone, trained with BCE + soft Dice.

``LesionSegmenter`` is the supervised counterpart of the reconstruction detectors of
``biolatent.anomaly.image``: its encoder is their ``ConvEncoder`` (same ``widths``: stride-2 4x4 convolutions
with LeakyReLU, no normalisation) and its decoder mirrors their ``ConvDecoder`` (4x4 stride-2 transposed
convolutions back to full resolution, then a 3x3 convolution) without the dense bottleneck, ending in one
lesion *logit* per pixel. By default (``skip=True``) the decoder has U-Net skip connections (Ronneberger,
Fischer & Brox 2015, MICCAI, "U-Net: convolutional networks for biomedical image segmentation"): after each
upsampling the encoder features of the same resolution (and, at full resolution, the input image) are
concatenated; ``skip=False`` gives the plain encoder-decoder.

Loss (``segmentation_loss``) = binary cross-entropy of the logits (mean over pixels) + ``dice_weight`` x the
soft Dice loss of V-Net (Milletari, Navab & Ahmadi 2016, 3DV, "V-Net: fully convolutional neural networks for
volumetric medical image segmentation", eq. 1): with p the sigmoid probabilities and g the binary target,

    soft_dice_loss = 1 - (2 * sum(p * g) + smooth) / (sum(p^2) + sum(g^2) + smooth)

where the sums run over the whole batch (pooled, not per image: a batch may hold healthy images whose empty
masks make a per-image Dice undefined) and ``smooth`` (default 1) keeps it finite and equal to 0 for an empty
target predicted empty.

Training goes through the project's generic trainer (``biolatent.train.fit.fit``): its ``IndexedDataset``
indexes an optional ``y`` tensor by row, so passing the masks (N, H, W) as ``y`` gives batches
``{"x": images (B, C, H, W), "y": masks (B, H, W), "index"}`` with no change to ``train/``. During training
(``augment=True``, the default) each sample of a batch gets its own random one of the 8 symmetries of the
square (flips and 90-degree rotations: ``dihedral``), applied alike to its image and mask: on the simulated
32-pixel slices (160 labelled training images, 200 epochs) it lifts the test Dice from about 0.62 to 0.83, the
plain network memorising its ~100 training lesions (training loss -> 0).

``Segmenter`` wraps a trained network: ``predict`` -> probability maps (N, H, W), ``segment`` -> bool masks at
its ``threshold`` (0.5 unless set), weights-only ``save``/``load`` (``segmenter.safetensors`` +
``segmenter.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from biolatent.anomaly.image.detector import check_images, check_masks
from biolatent.anomaly.image.networks import ConvEncoder, check_architecture
from biolatent.errors import ConfigError, DataError
from biolatent.types import LossOutput

WEIGHTS, META = "segmenter.safetensors", "segmenter.json"


def soft_dice_loss(probabilities: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """V-Net soft Dice loss (Milletari et al. 2016), pooled over every element of the batch."""
    p, g = probabilities.flatten(), target.flatten().to(probabilities.dtype)
    return 1.0 - (2.0 * (p * g).sum() + smooth) / ((p * p).sum() + (g * g).sum() + smooth)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, *, dice_weight: float = 1.0,
                      smooth: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, bce, soft_dice) for logits and binary targets of the same shape."""
    g = target.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, g)
    dice = soft_dice_loss(torch.sigmoid(logits), g, smooth)
    return bce + dice_weight * dice, bce, dice


def dihedral(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random one of the 8 flips / 90-degree rotations of the square per sample, to images (B, C, H, W)
    and masks (B, H, W); the parameters are drawn first (torch's global generator), then applied."""
    b = x.shape[0]
    flip_h, flip_v, turn = torch.rand(b) < 0.5, torch.rand(b) < 0.5, torch.rand(b) < 0.5
    x, y = x.clone(), y.clone()
    for chosen, dims in ((flip_h, (-1,)), (flip_v, (-2,))):
        x[chosen], y[chosen] = x[chosen].flip(dims), y[chosen].flip(dims)
    x[turn], y[turn] = x[turn].transpose(-1, -2), y[turn].transpose(-1, -2)
    return x, y


class LesionSegmenter(nn.Module):
    """``ConvEncoder`` + mirrored upsampling decoder (U-Net skips by default) -> one lesion logit per pixel.

    ``forward(batch)`` takes ``batch["x"]`` (B, C, H, W) and ``batch["y"]`` (B, H, W) binary masks and returns
    the BCE + soft Dice loss; ``logits(x)`` -> (B, H, W).
    """

    name = "lesion_segmenter"

    def __init__(
        self,
        encoder: ConvEncoder | None = None,
        *,
        in_channels: int = 1,
        image_size: int = 64,
        widths: tuple[int, ...] = (16, 32, 64),
        skip: bool = True,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        augment: bool = True,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        check_architecture(image_size, widths, 1, in_channels)
        if dice_weight < 0 or smooth <= 0:
            raise ConfigError(f"dice_weight must be >= 0 and smooth > 0, got {dice_weight} and {smooth}")
        if encoder is None:
            encoder = ConvEncoder(in_channels, image_size, widths)
        elif not isinstance(encoder, ConvEncoder):
            raise ConfigError("LesionSegmenter needs a ConvEncoder (or encoder=None)")
        self.encoder = encoder
        self.in_channels, self.image_size, self.widths = in_channels, image_size, widths
        self.skip, self.dice_weight, self.smooth = bool(skip), float(dice_weight), float(smooth)
        self.augment = bool(augment)
        reversed_widths = list(reversed(widths))
        stages: list[nn.Module] = []
        for k, width in enumerate(reversed_widths):
            following = reversed_widths[k + 1] if k + 1 < len(reversed_widths) else width
            incoming = width * (2 if skip and k > 0 else 1)  # stage k > 0 also sees the encoder skip of its input
            stages.append(nn.Sequential(nn.ConvTranspose2d(incoming, following, kernel_size=4, stride=2, padding=1),
                                        nn.LeakyReLU(0.2)))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(widths[0] + (in_channels if skip else 0), 1, kernel_size=3, padding=1)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        features, h = [], x
        for layer in self.encoder.body:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                features.append(h)
        return features

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, H, W) lesion logits."""
        features = self._features(x)
        skips = [*reversed(features[:-1]), x]  # what joins the output of stage k, from coarse to fine
        h = features[-1]
        for stage, joined in zip(self.stages, skips, strict=True):
            h = stage(h)
            if self.skip:
                h = torch.cat([h, joined], dim=1)
        return self.head(h)[:, 0]

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x, y = batch["x"], batch["y"]
        if self.augment and self.training:
            x, y = dihedral(x, y)
        loss, bce, dice = segmentation_loss(self.logits(x), y, dice_weight=self.dice_weight, smooth=self.smooth)
        return LossOutput(loss, {"bce": float(bce.detach()), "soft_dice": float(dice.detach())})

    def hyper_parameters(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "image_size": self.image_size, "widths": list(self.widths),
                "skip": self.skip, "dice_weight": self.dice_weight, "smooth": self.smooth, "augment": self.augment}


class Segmenter:
    """A trained ``LesionSegmenter``: ``predict`` probabilities (N, H, W), ``segment`` bool masks, save/load."""

    def __init__(self, network: LesionSegmenter, *, threshold: float = 0.5, history: pd.DataFrame | None = None):
        self.network = network.cpu().eval()
        self.threshold = float(threshold)
        self.history = history

    @property
    def geometry(self) -> tuple[int, int]:
        return self.network.in_channels, self.network.image_size

    def predict(self, images: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Lesion probabilities, float32 (N, H, W) in (0, 1)."""
        x = torch.from_numpy(check_images(images, "segmenter predict", self.geometry))
        self.network.eval()
        with torch.no_grad():
            parts = [torch.sigmoid(self.network.logits(x[i : i + batch_size]))
                     for i in range(0, x.shape[0], batch_size)]
        return torch.cat(parts).numpy().astype(np.float32)

    def segment(self, images: np.ndarray) -> np.ndarray:
        """bool (N, H, W): probability > ``threshold``."""
        return self.predict(images) > self.threshold

    def save(self, folder: str | Path) -> Path:
        """``segmenter.safetensors`` (state_dict) + ``segmenter.json`` (hyper-parameters, threshold); no pickle."""
        from safetensors.torch import save_file

        from biolatent.rundir import atomic_path, write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file(state, str(tmp))
        write_json(folder / META, {"name": LesionSegmenter.name, "params": self.network.hyper_parameters(),
                                   "threshold": self.threshold})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Segmenter:
        """The segmenter written by ``save`` (weights only)."""
        from safetensors.torch import load_file

        from biolatent.rundir import read_json

        folder = Path(folder)
        if not (folder / META).is_file() or not (folder / WEIGHTS).is_file():
            raise DataError(f"{folder}: not a saved segmenter (needs {META} and {WEIGHTS})")
        meta = read_json(folder / META)
        if meta.get("name") != LesionSegmenter.name:
            raise DataError(f"{folder}: holds a {meta.get('name')!r} model, not a {LesionSegmenter.name!r}")
        params = dict(meta["params"])
        params["widths"] = tuple(params["widths"])
        network = LesionSegmenter(None, **params)
        network.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
        return cls(network, threshold=meta["threshold"])


def train_segmenter(
    images: np.ndarray,
    masks: np.ndarray,
    *,
    epochs: int = 100,
    batch_size: int = 16,
    lr: float = 1e-2,
    seed: int = 0,
    widths: tuple[int, ...] = (16, 32, 64),
    skip: bool = True,
    dice_weight: float = 1.0,
    augment: bool = True,
    threshold: float = 0.5,
    accelerator: str = "cpu",
) -> Segmenter:
    """Train a fresh ``LesionSegmenter`` (weights from ``seed``) on images (N, C, H, W) and masks (N, H, W)."""
    from biolatent.config import TrainConfig
    from biolatent.train.fit import fit

    x = check_images(images, "segmenter fit")
    y = check_masks(masks, (x.shape[0], x.shape[2], x.shape[3]), "segmenter fit")
    if x.shape[0] < 2:
        raise DataError(f"segmenter fit: {x.shape[0]} image(s): too few to train")
    torch.manual_seed(seed)
    network = LesionSegmenter(None, in_channels=x.shape[1], image_size=x.shape[2], widths=tuple(widths), skip=skip,
                              dice_weight=dice_weight, augment=augment)
    train = TrainConfig(epochs=epochs, batch_size=max(2, batch_size), lr=lr, seed=seed, accelerator=accelerator)
    history = fit(network, torch.from_numpy(x), train, y=torch.from_numpy(y.astype(np.float32)), progress=False)
    return Segmenter(network, threshold=threshold, history=history)
