"""Every registered anomaly detector (all eleven of ``anomaly.detectors.DETECTORS``) keeps one contract: fitted on
tiny healthy data, it scores every sample (and maps, where the data has space or time), saves weights only and
scores identically after loading, and refuses data of the wrong kind or shape with a one-line DataError."""

from __future__ import annotations

import numpy as np
import pytest

from biolatent.anomaly.detectors import DETECTORS, FEATURE_DETECTORS, IMAGE_DETECTORS, build_detector, load_detector
from biolatent.anomaly.series import sliding_windows, window_features
from biolatent.config import TrainConfig
from biolatent.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore:Found .* module.* in eval mode")  # frozen feature teachers, on purpose

TINY = {  # hyper-parameters that make each detector fast on 32-pixel images / 8-point windows
    "anomaly_transformer": {"d_model": 8, "n_layers": 1, "n_heads": 2, "epochs": 1, "batch_size": 8},
    "iforest": {"n_estimators": 20},
    "ae": {"widths": (4, 8), "latent_dim": 4},
    "vae": {"widths": (4, 8), "latent_dim": 4},
    "cevae": {"widths": (4, 8), "latent_dim": 4},
    "ddpm": {"widths": (4, 8), "timesteps": 10, "sampling_steps": 2},
    "masked_diffusion": {"widths": (4, 8), "timesteps": 10, "sampling_steps": 2},
    "reverse_distillation": {"encoder_widths": (4, 8, 8, 8), "embed_dim": 8},
    "patchcore": {"encoder_widths": (4, 8, 8, 8), "projection_dim": 0},
}
TRAIN = TrainConfig(epochs=1, batch_size=4, accelerator="cpu")
RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(30, 5))
WINDOWS = window_features(sliding_windows(np.sin(np.arange(80) / 3.0) + 0.1 * RNG.normal(size=80), 8), 0.0, 1.0)
IMAGES = np.clip(0.5 + 0.1 * RNG.normal(size=(6, 1, 32, 32)), 0.0, 1.0).astype(np.float32)
DATA = {"features": FEATURES, "windows": WINDOWS, "images": IMAGES}
# per kind of data: what it must refuse (another kind, and its own kind in another shape than at fit)
WRONG = {"features": [IMAGES, FEATURES[:, :4]], "windows": [IMAGES, WINDOWS[:, :13]],
         "images": [FEATURES, np.clip(IMAGES[:, :, :16, :16].repeat(4, 2).repeat(4, 3), 0, 1)]}


def test_the_registry_holds_all_eleven_detectors():
    assert len(DETECTORS) == 11
    assert set(DETECTORS) == {*FEATURE_DETECTORS, *IMAGE_DETECTORS}


@pytest.mark.parametrize("name", list(DETECTORS))
def test_detector_contract(name, tmp_path):
    detector = build_detector(name, **TINY.get(name, {}))
    kind = detector.data_kind
    data = DATA[kind]
    assert detector.fit(data, train=TRAIN) is detector
    scores = detector.score(data)
    assert scores.shape == (len(data),) and np.isfinite(scores).all()
    if kind != "features":  # space (images) or time (windows): one score per pixel / point
        maps = detector.score_maps(data)
        assert maps.shape == (len(data), *data.shape[2:]) if kind == "images" else maps.shape == (len(data), 8)

    detector.save(tmp_path / name)
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["detector.json", "detector.safetensors"]
    loaded = load_detector(tmp_path / name)
    assert type(loaded) is type(detector)
    np.testing.assert_array_equal(loaded.score(data), scores)

    for wrong in WRONG[kind]:
        for model in (detector, loaded):
            with pytest.raises(DataError) as error:
                model.score(wrong)
            assert "\n" not in str(error.value)
