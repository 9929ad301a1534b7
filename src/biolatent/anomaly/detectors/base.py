"""The one detector contract, and the feature-space detectors' share of it.

Every registered detector (``anomaly.detectors.registry.DETECTORS``) is a ``Detector``:

* ``fit(samples, *, train=None) -> self`` on healthy samples only; detectors trained by gradient descent train
  through ``biolatent.train.fit`` with the ``TrainConfig`` ``train`` (accelerator, devices, precision, epochs,
  batch size, learning rate, seed); the others ignore it;
* ``score(samples) -> (N,)`` one anomaly score per sample, larger = more anomalous;
* ``score_maps(samples)`` where the data has space or time: a score per pixel / voxel (images, volumes) or per
  point of a window (the Anomaly Transformer);
* ``save(folder)`` / ``anomaly.detectors.load_detector(folder)``: weights only, through the project's one
  format (``biolatent.train.checkpoint.save_state``: ``detector.safetensors`` + ``detector.json``, never
  pickle); non-torch detectors save their state as arrays;
* data of the wrong kind or shape (images given to a feature detector, features to an image detector, another
  feature count or image geometry than at fit) is refused with a one-line ``DataError``;
* ``checkpoint_in(run_dir, resume=...)`` before ``fit``: a detector trained by gradient descent
  (``trains_by_gradient``) has ``train.fit`` write its per-epoch checkpoint there and, with ``resume``, continues
  a killed training from it (``biolatent anomaly fit --resume``); the others ignore it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from biolatent.errors import DataError

if TYPE_CHECKING:
    import torch

    from biolatent.config import TrainConfig

WEIGHTS = "detector.safetensors"  # + detector.json beside it (train.checkpoint.save_state)


def check_features(x: np.ndarray, what: str, n_features: int | None = None) -> np.ndarray:
    """float64 (N, D) without NaN/inf, N >= 1 (and D == n_features when given); DataError otherwise."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise DataError(f"{what}: expected a (samples, features) matrix, got shape {a.shape}")
    finite = np.isfinite(a)
    if not finite.all():
        raise DataError(f"{what}: features hold {int(a.size - finite.sum())} NaN or inf value(s) in "
                        f"{int((~finite).any(axis=1).sum())} sample(s)")
    if n_features is not None and a.shape[1] != n_features:
        raise DataError(f"{what}: {a.shape[1]} features, the detector was fitted on {n_features}")
    return a


class Detector:
    """The contract of every registered detector (module docstring). Subclasses implement ``fit``, ``score``
    and ``state`` / ``from_state`` (named arrays + json metadata holding ``name``); ``save`` is shared."""

    name: ClassVar[str] = "detector"
    data_kind: ClassVar[str] = "features"  # "features", "windows" (series window features) or "images"
    checkpoint_dir: Path | None = None  # set by ``checkpoint_in``
    resume: bool = False

    @property
    def trains_by_gradient(self) -> bool:
        """Whether ``fit`` trains a network through ``biolatent.train.fit`` (and so checkpoints and resumes)."""
        return False

    def checkpoint_in(self, run_dir: str | Path | None, *, resume: bool = False) -> Detector:
        """Have ``fit`` write ``train.fit``'s per-epoch checkpoint in ``run_dir`` (``checkpoints/last.safetensors``,
        ``history.tsv``) and, with ``resume``, continue from the checkpoint there; returns ``self``."""
        self.checkpoint_dir, self.resume = (None if run_dir is None else Path(run_dir)), resume
        return self

    def to(self, device: torch.device | str) -> Detector:
        """Put a fitted detector's networks on ``device`` for scoring (``train.device.inference_device``); the
        detectors without a network stay where they are. Returns ``self``."""
        return self

    def fit(self, samples: np.ndarray, *, train: TrainConfig | None = None) -> Detector:  # pragma: no cover
        raise NotImplementedError

    def score(self, samples: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:  # pragma: no cover - abstract
        """(named tensors or arrays, json-friendly metadata with ``name``): everything ``from_state`` needs."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, tensors: dict[str, Any], meta: dict[str, Any]) -> Detector:  # pragma: no cover
        raise NotImplementedError

    def save(self, folder: str | Path) -> Path:
        """``folder/detector.safetensors`` + ``folder/detector.json`` (weights only); returns ``folder``."""
        from biolatent.train.checkpoint import save_state

        tensors, meta = self.state()
        save_state(Path(folder) / WEIGHTS, tensors, meta)
        return Path(folder)


class FeatureDetector(Detector):
    """Fitted on healthy feature vectors (N, D); ``score`` returns (N,) anomaly scores.

    Subclasses set ``name``, take keyword hyper-parameters, implement ``_fit(x)``, ``score(x)`` and
    ``arrays()`` (everything ``restore`` needs, as numpy arrays), so a fitted detector is saved as weights
    only (safetensors + the hyper-parameters in json; no pickle).
    """

    citation: ClassVar[str] = ""
    windows_only: ClassVar[bool] = False  # True: accepts only series window features (anomaly.series)

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.n_features: int | None = None

    def fit(self, x: np.ndarray, *, train: TrainConfig | None = None) -> FeatureDetector:
        """Fit on healthy (N, D) features; ``train`` matters only to detectors trained by gradient descent."""
        x = check_features(x, f"{self.name} fit")
        self.n_features = x.shape[1]
        self._fit(x, train)
        return self

    def _fit(self, x: np.ndarray, train: TrainConfig | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _checked(self, x: np.ndarray) -> np.ndarray:
        if self.n_features is None:
            raise DataError(f"{self.name}: score() before fit()")
        return check_features(x, f"{self.name} score", self.n_features)

    def arrays(self) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def restore(self, arrays: dict[str, np.ndarray]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.n_features is None:
            raise DataError(f"{self.name}: nothing to save before fit()")
        return self.arrays(), {"name": self.name, "params": self.params, "n_features": self.n_features}

    @classmethod
    def from_state(cls, tensors: dict[str, Any], meta: dict[str, Any]) -> FeatureDetector:
        detector = cls(**meta["params"])
        detector.n_features = int(meta["n_features"])
        detector.restore({k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in tensors.items()})
        return detector
