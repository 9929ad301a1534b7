"""Image detectors with ``spatial_dims=3`` score volumes (N, 1, D, H, W) natively in 3D: every kind fits on tiny
healthy phantoms, saves and loads as weights only and refuses 2D images with a one-line error; an autoencoder and a
DDPM give voxel maps that single out a planted bright cube."""

from __future__ import annotations

import numpy as np
import pytest

from biolatent.anomaly.detectors import build_detector, load_detector
from biolatent.config import TrainConfig
from biolatent.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore:Found .* module.* in eval mode")  # frozen feature teachers, on purpose

SIDE = 32


def phantoms(n: int, seed: int) -> np.ndarray:
    """Healthy volumes: a bright ellipsoid of random size and contrast on a dark background, light noise."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, SIDE)] * 3, indexing="ij"))
    out = np.empty((n, 1, SIDE, SIDE, SIDE), np.float32)
    for i in range(n):
        radii = rng.uniform(0.55, 0.75, size=3)[:, None, None, None]
        inside = ((grid / radii) ** 2).sum(axis=0) < 1.0
        out[i, 0] = np.clip(inside * rng.uniform(0.4, 0.5) + rng.normal(0, 0.02, grid.shape[1:]), 0, 1)
    return out


def with_cube(volumes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(volumes with a 6-voxel cube at 1.0 inside the ellipsoid, the cube's mask)."""
    mask = np.zeros(volumes.shape[2:], bool)
    mask[13:19, 10:16, 13:19] = True
    lesioned = volumes.copy()
    lesioned[:, 0, mask] = 1.0
    return lesioned, mask


AE = {"widths": (8, 16, 32), "latent_dim": 16}
DDPM = {"widths": (8, 16), "timesteps": 50, "noise_level": 0.4, "sampling_steps": 4}


TINY_AE, TINY_DDPM = {"widths": (4, 8), "latent_dim": 4}, {"widths": (4, 8), "timesteps": 10, "sampling_steps": 2}
FEATURES = {"encoder_widths": (4, 8, 8, 8)}  # a small random 3D ResNet teacher / feature extractor


@pytest.mark.parametrize(("name", "params"), [("ae", TINY_AE), ("vae", TINY_AE), ("cevae", TINY_AE),
                                              ("ddpm", TINY_DDPM), ("masked_diffusion", TINY_DDPM),
                                              ("reverse_distillation", FEATURES), ("patchcore", FEATURES)])
def test_volumes_in_3d_round_trip_and_refuse_images(name, params, tmp_path):
    healthy = phantoms(2, 0)
    detector = build_detector(name, spatial_dims=3, **params)
    detector.fit(healthy, train=TrainConfig(epochs=1, batch_size=2, accelerator="cpu"))
    maps = detector.score_maps(healthy)
    assert maps.shape == (2, SIDE, SIDE, SIDE) and np.isfinite(maps).all()
    detector.save(tmp_path)
    np.testing.assert_array_equal(load_detector(tmp_path).score_maps(healthy), maps)
    with pytest.raises(DataError, match=r"expected volumes \(N, C, D, H, W\)") as error:
        detector.score(healthy[:, :, 0])
    assert "\n" not in str(error.value)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params"), [("ae", AE), ("ddpm", DDPM)])
def test_3d_maps_single_out_a_planted_cube(name, params):
    """30 epochs on 16 phantoms (ae about 75 s, ddpm about 4 min on 2 busy CPU cores)."""
    healthy, test = phantoms(16, 0), phantoms(4, 1)
    lesioned, mask = with_cube(test)
    detector = build_detector(name, spatial_dims=3, **params)
    detector.fit(healthy, train=TrainConfig(epochs=30, batch_size=4, lr=3e-3, accelerator="cpu"))
    maps = detector.score_maps(lesioned)
    inside, outside = maps[:, mask].mean(), maps[:, ~mask].mean()
    assert inside > 3 * outside, (inside, outside)  # the cube stands out of the 3D map
    assert (detector.score(lesioned) > detector.score(test)).all()
