"""Anomaly Transformer detector: association discrepancy x reconstruction error on windows of a series.

Xu, Wu, Wang & Long 2022 (ICLR), "Anomaly Transformer: Time Series Anomaly Detection with Association
Discrepancy"; the network is ``biolatent.models.anomaly_transformer``, its minimax training and its anomaly
criterion are in ``biolatent.anomaly.series_models.anomaly_transformer``.

The detector takes the pipeline's window features (``biolatent.anomaly.series.window_features``: the ``size``
z-scored values of a window followed by their ``size - 1`` first differences, so D = 2 * size - 1) and models the
values only. ``fit`` trains on healthy windows through the project's trainer (``biolatent.train.fit``: AdamW,
shuffled mini-batches, cosine learning-rate decay; the global torch RNG is left as it was) with the given
``TrainConfig``, or one built from the detector's ``epochs``, ``batch_size``, ``lr`` and ``seed`` (Adam: no weight
decay, no gradient clipping, a constant learning rate: with cosine decay the own criterion of the noisy-sine test
fell from 0.88-0.97 to 0.70-0.93 AUROC over seeds 0-9, 5 epochs).
``point_scores`` gives the anomaly criterion of every point of each window
(N, size); ``score`` gives one number per window, the *maximum* of its point scores, so that a window holding
one anomalous point is as unusual as that point (the pipeline then gives each point of the series the maximum
over the windows that cover it).

``ssm_branch=True`` adds the MAAT-style gated state-space (Mamba) branch of the model (see the model module).

Persistence is weights only: ``arrays()`` holds the window size and the model's state_dict (``model.*``);
``restore`` rebuilds the model from the hyper-parameters in ``self.params``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from biolatent.anomaly.detectors.base import FeatureDetector
from biolatent.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch

    from biolatent.config import TrainConfig

SCORE_BATCH = 256
WEIGHT_PREFIX = "model."


def window_size(n_features: int, what: str) -> int:
    """``size`` of window features with D = 2 * size - 1 (size >= 2); DataError otherwise."""
    if n_features < 3 or n_features % 2 == 0:
        raise DataError(f"{what}: {n_features} features are not window features (2 * size - 1 values and "
                        "differences, size >= 2)")
    return (n_features + 1) // 2


def window_values(x: np.ndarray, what: str) -> np.ndarray:
    """The (N, size) z-scored values of window features; DataError when the rest are not their differences."""
    size = window_size(x.shape[1], what)
    values = x[:, :size]
    if not np.allclose(x[:, size:], np.diff(values, axis=1), rtol=1e-6, atol=1e-6):
        raise DataError(f"{what}: features {size}..{x.shape[1] - 1} are not the first differences of features "
                        f"0..{size - 1}: expected window features (values, then differences)")
    return values


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"anomaly_transformer: {name} must be a positive integer, got {value!r}")
    return value


class AnomalyTransformerDetector(FeatureDetector):
    name: ClassVar[str] = "anomaly_transformer"
    windows_only: ClassVar[bool] = True
    data_kind: ClassVar[str] = "windows"
    citation: ClassVar[str] = "Xu et al. 2022 (ICLR)"

    def __init__(self, *, d_model: int = 32, n_layers: int = 2, n_heads: int = 4, epochs: int = 10,
                 batch_size: int = 64, lr: float = 1e-3, k: float = 3.0, seed: int = 0, ssm_branch: bool = False,
                 d_state: int = 8) -> None:
        for key, value in (("d_model", d_model), ("n_layers", n_layers), ("n_heads", n_heads), ("epochs", epochs),
                           ("batch_size", batch_size), ("d_state", d_state)):
            _positive_int(key, value)
        if d_model % n_heads or d_model % 2:
            raise ConfigError(f"anomaly_transformer: d_model ({d_model}) must be even and divisible by n_heads "
                              f"({n_heads})")
        if not (isinstance(lr, (int, float)) and lr > 0) or not (isinstance(k, (int, float)) and k >= 0):
            raise ConfigError(f"anomaly_transformer: lr must be > 0 and k >= 0, got lr {lr!r}, k {k!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"anomaly_transformer: seed must be an integer, got {seed!r}")
        if not isinstance(ssm_branch, bool):
            raise ConfigError(f"anomaly_transformer: ssm_branch must be true or false, got {ssm_branch!r}")
        super().__init__(d_model=d_model, n_layers=n_layers, n_heads=n_heads, epochs=epochs, batch_size=batch_size,
                         lr=float(lr), k=float(k), seed=seed, ssm_branch=ssm_branch, d_state=d_state)
        self.size: int | None = None
        self.model = None
        self.losses: list[float] = []  # mean reconstruction MSE per epoch of the last fit

    def _build(self):
        from biolatent.models.anomaly_transformer import AnomalyTransformer

        p = self.params
        return AnomalyTransformer(1, d_model=p["d_model"], n_layers=p["n_layers"], n_heads=p["n_heads"],
                                  ssm_branch=p.get("ssm_branch", False), d_state=p.get("d_state", 8))

    @property
    def trains_by_gradient(self) -> bool:
        return True

    def train_config(self) -> TrainConfig:
        """The trainer settings of the detector's own ``epochs``, ``batch_size``, ``lr`` and ``seed``."""
        from biolatent.config import TrainConfig

        p = self.params
        return TrainConfig(epochs=p["epochs"], batch_size=max(2, p["batch_size"]), lr=p["lr"], seed=p["seed"],
                           weight_decay=0.0, gradient_clip=None, lr_schedule="constant")

    def _fit(self, x: np.ndarray, train: TrainConfig | None = None) -> None:
        import torch

        from biolatent.anomaly.series_models.anomaly_transformer import MinimaxMethod
        from biolatent.train.device import inference_device
        from biolatent.train.fit import fit

        values = torch.as_tensor(window_values(x, f"{self.name} fit"), dtype=torch.float32)
        self.size = values.shape[1]
        train = train if train is not None else self.train_config()
        if train.batch_size is None:
            train = train.model_copy(update={"batch_size": max(2, self.params["batch_size"])})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(train.seed)
            model = self._build()
            history = fit(MinimaxMethod(model, self.params["k"]), values, train, progress=False,
                          run_dir=self.checkpoint_dir, resume=self.resume)
        self.losses = history["reconstruction"].tolist() if "reconstruction" in history else []
        self.model = model.to(inference_device(train)).eval()  # scored where it trained

    def to(self, device: torch.device | str) -> AnomalyTransformerDetector:
        """The fitted model on ``device`` (scoring windows follow it)."""
        if self.model is not None:
            self.model.to(device)
        return self

    def point_scores(self, x: np.ndarray) -> np.ndarray:
        """(N, size) anomaly criterion of every point of every window (higher = more anomalous)."""
        import torch

        from biolatent.anomaly.series_models.anomaly_transformer import point_anomaly_scores
        from biolatent.models.device import module_device

        values = torch.as_tensor(window_values(self._checked(x), f"{self.name} score"), dtype=torch.float32)
        if self.model is None:
            raise DataError(f"{self.name}: score() before fit() or restore()")
        device = module_device(self.model)  # a model left on a GPU scores there; the scores come back
        parts = [point_anomaly_scores(self.model, chunk[..., None].to(device)).double().cpu()
                 for chunk in values.split(SCORE_BATCH)]
        return torch.cat(parts).numpy()

    def score_maps(self, x: np.ndarray) -> np.ndarray:
        """The detector contract's per-point map: ``point_scores``, (N, size)."""
        return self.point_scores(x)

    def score(self, x: np.ndarray) -> np.ndarray:
        """(N,) per window: the maximum of its points' anomaly criterion."""
        return self.point_scores(x).max(axis=1)

    def arrays(self) -> dict[str, np.ndarray]:
        if self.model is None:
            raise DataError(f"{self.name}: nothing to save before fit()")
        weights = {WEIGHT_PREFIX + key: value.detach().cpu().numpy().copy()
                   for key, value in self.model.state_dict().items()}
        return {"window_size": np.array([self.size], dtype=np.int64), **weights}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        if "window_size" not in arrays:
            raise DataError(f"{self.name}: saved arrays have no window_size: not an anomaly_transformer detector")
        size = int(np.asarray(arrays["window_size"]).ravel()[0])
        if self.n_features is not None and self.n_features != 2 * size - 1:
            raise DataError(f"{self.name}: saved window size {size} does not match {self.n_features} features")
        model = self._build()
        state = {key[len(WEIGHT_PREFIX):]: torch.from_numpy(np.array(value))
                 for key, value in arrays.items() if key.startswith(WEIGHT_PREFIX)}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise DataError(f"{self.name}: saved weights do not fit the hyper-parameters ({first})") from None
        self.size, self.n_features, self.model = size, 2 * size - 1, model.eval()

