"""VolumeViews: one grid_sample for the geometry, bias field, gamma, k-space ghosting and motion, noise.

Every transform is checked against an independent computation: scipy's trilinear interpolation of the
documented sampling formula, torch.flip / torch.roll / torch.rot90 / slicing, the TorchIO formulas written
out with numpy (and TorchIO itself where it is installed), numpy FFTs for the k-space artefacts.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from biolatent.data.samples import DataInfo
from biolatent.data.views import VIEWS, ImageViews, VolumeViews, build_views
from biolatent.errors import ConfigError

OFF = dict(
    crop_scale=(1.0, 1.0),
    flip=False,
    rotate_degrees=0.0,
    scale=(1.0, 1.0),
    elastic_prob=0.0,
    bias_field_prob=0.0,
    gamma_prob=0.0,
    noise_prob=0.0,
    ghosting_prob=0.0,
    motion_prob=0.0,
)
ALL_ON = dict(elastic_prob=1.0, bias_field_prob=1.0, gamma_prob=1.0, noise_prob=1.0, ghosting_prob=1.0, motion_prob=1.0)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def views(size: int = 12, **kwargs) -> VolumeViews:
    return VolumeViews(image_size=size, **{**OFF, **kwargs})


def identity_params(view: VolumeViews, n: int) -> dict[str, torch.Tensor]:
    """Parameters of a view with every transform off: crop side 1, no flip, no rotation, ..."""
    params = view.sample_params(n, "cpu", gen(0))
    assert torch.equal(params["crop_side"], torch.ones(n)) and torch.equal(params["flip"], torch.ones(n, 3))
    return params


def smooth_volume(n: int = 2, channels: int = 1, size: int = 12, seed: int = 0) -> torch.Tensor:
    """A blob-like volume in [0, 1] with a zero background at the borders."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, channels, size, size, size), dtype=np.float32)
    inner = rng.random((n, channels, size - 4, size - 4, size - 4)).astype(np.float32)
    out[..., 2:-2, 2:-2, 2:-2] = inner
    return torch.from_numpy(out)


# -- geometry ---------------------------------------------------------------------------------------------


def numpy_source_coords(params: dict[str, torch.Tensor], row: int, out_size: int) -> np.ndarray:
    """The documented formula src = c + s R diag(1/scale) (flip * p) + 2 t, written with numpy, (3, N^3)."""
    side = float(params["crop_side"][row])
    centre = params["crop_centre"][row].double().numpy()
    flip = params["flip"][row].double().numpy()
    ax, ay, az = params["angles"][row].double().numpy()
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    scale = params["scale"][row].double().numpy()
    shift = 2 * params["translate"][row].double().numpy()
    axis = np.linspace(-1, 1, out_size)
    p = np.stack([g.ravel() for g in np.meshgrid(axis, axis, axis, indexing="ij")])  # (3, N^3)
    src = side * (rz @ ry @ rx) @ np.diag(1 / scale) @ (flip[:, None] * p)
    return src + (centre + shift)[:, None]


def test_random_affine_matches_scipy_trilinear_interpolation() -> None:
    x = torch.rand(3, 2, 10, 10, 10, generator=gen(1), dtype=torch.float64)
    view = views(size=7, crop_scale=(0.4, 1.0), flip=True, flip_axes=(0, 1, 2), rotate_degrees=30.0, scale=(0.8, 1.2))
    view.translate = 0.1
    params = view.sample_params(3, "cpu", gen(2))
    assert bool((params["flip"] == -1).any()) and bool((params["translate"] != 0).all())
    y = view.apply(x, params)
    for row, channel in itertools.product(range(3), range(2)):
        src = numpy_source_coords(params, row, 7)
        index = (src + 1) / 2 * 9  # align_corners: -1 -> 0, 1 -> size - 1
        expected = ndimage.map_coordinates(x[row, channel].numpy(), index, order=1, mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(y[row, channel].numpy().ravel(), expected, atol=1e-5)


def test_identity_parameters_give_the_input() -> None:
    x = smooth_volume(n=3, channels=2)
    view = views(translate=0.0)
    y = view.apply(x, identity_params(view, 3))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)
    assert y.dtype == x.dtype


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_flip_equals_torch_flip(axis: int) -> None:
    x = torch.rand(2, 3, 8, 8, 8, generator=gen(3))
    view = views(size=8)
    params = identity_params(view, 2)
    params["flip"][0, axis] = -1.0
    y = view.apply(x, params)
    torch.testing.assert_close(y[0], torch.flip(x[0], dims=(1 + axis,)), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1], x[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("axis", "voxels"), [(0, 2), (1, -3), (2, 1)])
def test_translation_equals_torch_roll_with_zero_fill(axis: int, voxels: int) -> None:
    size = 11
    x = smooth_volume(n=1, channels=2, size=size)
    view = views(size=size)
    params = identity_params(view, 1)
    params["translate"][0, axis] = voxels / (size - 1)  # a fraction of the field of view (size - 1 spacings)
    y = view.apply(x, params)
    # output voxel i reads input voxel i + voxels; what comes from outside the volume is 0
    expected = torch.roll(x, shifts=-voxels, dims=2 + axis)
    index = torch.arange(size)
    outside = (index + voxels < 0) | (index + voxels >= size)
    shape = [1, 1, 1, 1, 1]
    shape[2 + axis] = size
    expected = torch.where(outside.view(shape), 0.0, expected)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


def test_rotation_by_90_degrees_about_z_equals_rot90() -> None:
    x = torch.rand(1, 1, 9, 9, 9, generator=gen(4))
    view = views(size=9)
    params = identity_params(view, 1)
    params["angles"][0, 2] = math.pi / 2
    y = view.apply(x, params)
    # out(x, y) = in(R p) = in(-y, x): a quarter turn in the x-y plane
    torch.testing.assert_close(y, torch.rot90(x, k=-1, dims=(2, 3)), atol=1e-5, rtol=0)


def test_crop_of_half_side_equals_a_slice_of_the_input() -> None:
    x = torch.rand(1, 2, 9, 9, 9, generator=gen(5))
    view = views(size=5)
    params = identity_params(view, 1)
    params["crop_side"][0] = 0.5
    params["crop_centre"][0] = torch.tensor([-0.5, 0.5, 0.0])  # x in [-1, 0], y in [0, 1], z in [-0.5, 0.5]
    y = view.apply(x, params)
    torch.testing.assert_close(y, x[:, :, 0:5, 4:9, 2:7], atol=1e-5, rtol=0)


def test_elastic_constant_field_is_a_translation_and_zero_field_is_identity() -> None:
    size = 11
    x = smooth_volume(n=2, size=size)
    view = views(size=size, elastic_prob=1.0)
    params = view.sample_params(2, "cpu", gen(6))
    field = params["elastic"]
    assert bool((field.abs() > 0).any())
    for face in (field[..., 0, :, :], field[..., -1, :, :], field[..., 0, :], field[..., -1], field[..., 0]):
        assert bool((face == 0).all())  # borders locked
    assert float(field.abs().max()) <= view.elastic_magnitude
    translated = dict(params, elastic=torch.zeros_like(field))
    translated["elastic"][:, 1] = 2 * 2 / (size - 1)  # two voxels along y, everywhere
    expected = torch.roll(x, shifts=-2, dims=3)
    expected[:, :, :, -2:] = 0.0
    torch.testing.assert_close(view.apply(x, translated), expected, atol=1e-5, rtol=0)
    still = dict(params, elastic=torch.zeros_like(field))
    torch.testing.assert_close(view.apply(x, still), x, atol=1e-5, rtol=0)


# -- intensities -----------------------------------------------------------------------------------------


def numpy_bias_field(coefficients: np.ndarray, size: int, order: int = 3) -> np.ndarray:
    """TorchIO's BiasField.generate_bias_field written out: exp(sum c x^i y^j z^k), x, y, z in [-1, 1]."""
    axis = np.linspace(-1, 1, size)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    field = np.zeros((size, size, size))
    k = 0
    for i in range(order + 1):
        for j in range(order + 1 - i):
            for m in range(order + 1 - i - j):
                field += coefficients[k] * x**i * y**j * z**m
                k += 1
    return np.exp(field)


def test_bias_field_matches_the_polynomial_formula() -> None:
    x = smooth_volume(n=3, channels=2, size=10).double()
    view = views(size=10, bias_field_prob=1.0, bias_coefficient=0.3)
    params = view.sample_params(3, "cpu", gen(7))
    coefficients = params["bias"].double().numpy()
    assert coefficients.shape == (3, 20) and np.abs(coefficients).max() <= 0.3
    y = view.apply(x, params).numpy()
    for row in range(3):
        field = numpy_bias_field(coefficients[row], 10)
        for channel in range(2):  # the same field for every channel
            np.testing.assert_allclose(y[row, channel], x[row, channel].numpy() * field, rtol=1e-6, atol=1e-6)


def test_gamma_matches_the_formula_on_rescaled_intensities() -> None:
    x = (0.5 + 2.5 * torch.rand(3, 2, 6, 6, 6, generator=gen(8))).double()
    view = views(size=6, gamma_prob=1.0)
    params = view.sample_params(3, "cpu", gen(9))
    gamma = params["gamma"].double().numpy()
    assert bool((gamma != 1.0).all()) and np.all(np.abs(np.log(gamma)) <= 0.3)
    y = view.apply(x, params).numpy()
    for row in range(3):
        sample = x[row].numpy()
        low, high = sample.min(), sample.max()  # over all channels: one transform per sample
        expected = ((sample - low) / (high - low)) ** gamma[row] * (high - low) + low
        np.testing.assert_allclose(y[row], expected, rtol=1e-6, atol=1e-6)


def numpy_ghosting(volume: np.ndarray, every: int, axis: int, intensity: float) -> np.ndarray:
    """TorchIO's Ghosting.add_artifact (restore=None) written out with numpy's 3D FFT."""
    spectrum = np.fft.fftshift(np.fft.fftn(volume))
    original_centre = np.take(spectrum, [volume.shape[axis] // 2], axis=axis).copy()
    index = [slice(None)] * 3
    index[axis] = slice(None, None, every)
    spectrum[tuple(index)] *= 1 - intensity
    index[axis] = slice(volume.shape[axis] // 2, volume.shape[axis] // 2 + 1)
    spectrum[tuple(index)] = original_centre
    return np.fft.ifftn(np.fft.ifftshift(spectrum)).real


def test_ghosting_matches_numpy_kspace_formula() -> None:
    x = smooth_volume(n=6, channels=2, size=10).double()
    view = views(size=10, ghosting_prob=1.0)
    params = view.sample_params(6, "cpu", gen(10))
    params["ghost_axis"] = torch.tensor([0, 1, 2, 0, 1, 2])
    y = view.apply(x, params).numpy()
    every, intensity = params["ghost_every"].tolist(), params["ghost_intensity"].tolist()
    assert all(4 <= e <= 10 for e in every) and all(0.5 <= s <= 1.0 for s in intensity)
    for row, channel in itertools.product(range(6), range(2)):
        axis = int(params["ghost_axis"][row])
        expected = numpy_ghosting(x[row, channel].numpy(), every[row], axis, intensity[row])
        np.testing.assert_allclose(y[row, channel], expected, atol=1e-9)
    assert not np.allclose(y, x.numpy(), atol=1e-3)


def numpy_motion(images: list[np.ndarray], times: np.ndarray) -> np.ndarray:
    """Shaw et al. / TorchIO: k-space of images[0] (unmoved) in the z segment holding the centre, the moved
    ones in the other segments, in order."""
    spectra = [np.fft.fftshift(np.fft.fftn(image)) for image in images]
    size = images[0].shape[2]
    bounds = [0, *[int(np.floor(size * t)) for t in times], size]
    segments = [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]
    centre = next(k for k, (low, high) in enumerate(segments) if low <= size // 2 < high)
    order = list(range(1, len(images)))
    order.insert(centre, 0)
    result = np.zeros_like(spectra[0])
    for (low, high), source in zip(segments, order, strict=True):
        result[..., low:high] = spectra[source][..., low:high]
    return np.fft.ifftn(np.fft.ifftshift(result)).real


def test_motion_with_integer_shifts_matches_numpy_kspace_segments() -> None:
    size = 12
    x = smooth_volume(n=2, channels=2, size=size).double()
    view = views(size=size, motion_prob=1.0, motion_transforms=2)
    params = view.sample_params(2, "cpu", gen(11))
    params["motion_angles"].zero_()
    voxels = torch.tensor([[[1, 0, 0], [0, -2, 1]], [[0, 0, 2], [-1, 1, 0]]])
    params["motion_shift"] = voxels / (size - 1)
    times = params["motion_times"]
    assert bool((times[:, 0] < times[:, 1]).all()) and bool(((times > 0) & (times < 1)).all())
    y = view.apply(x, params).numpy()
    for row, channel in itertools.product(range(2), range(2)):
        volume = x[row, channel].numpy()
        # a move by +v samples the input at p + v: np.roll by -v (the borders are zero)
        moved = [np.roll(volume, shift=(-voxels[row, k]).tolist(), axis=(0, 1, 2)) for k in range(2)]
        expected = numpy_motion([volume, *moved], times[row].double().numpy())
        np.testing.assert_allclose(y[row, channel], expected, atol=1e-6)
    assert not np.allclose(y, x.numpy(), atol=1e-3)


def test_motion_without_movement_is_identity() -> None:
    x = smooth_volume(n=2, channels=3).double()
    view = views(motion_prob=1.0)
    params = view.sample_params(2, "cpu", gen(12))
    params["motion_angles"].zero_()
    params["motion_shift"].zero_()
    torch.testing.assert_close(view.apply(x, params), x, atol=1e-9, rtol=0)


def test_noise_std_per_sample_same_for_all_channels_new_realisation_per_channel() -> None:
    x = torch.zeros(4, 3, 16, 16, 16)
    view = views(size=16, noise_prob=1.0, noise_std=(0.02, 0.2))
    params = view.sample_params(4, "cpu", gen(13))
    y = view.apply(x, params)
    std = params["noise_std"]
    measured = y.flatten(2).std(dim=2)  # (4, 3)
    torch.testing.assert_close(measured, std[:, None].expand(4, 3), rtol=0.05, atol=0)
    assert not torch.equal(y[:, 0], y[:, 1])
    assert torch.equal(view.apply(x, params), y)  # the realisation is part of the parameters


# -- contract: shapes, seeding, cines, probabilities ------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 10])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_seeding_and_finite_output(channels: int, dtype: torch.dtype) -> None:
    x = smooth_volume(n=3, channels=channels, size=12).to(dtype)
    view = VolumeViews(image_size=8, **ALL_ON)
    a, b, c = view(x, gen(14)), view(x, gen(14)), view(x, gen(15))
    assert a.shape == (3, channels, 8, 8, 8) and a.dtype == dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert bool(torch.isfinite(a).all())
    params = view.sample_params(3, "cpu", gen(16))
    assert torch.equal(view.apply(x, params), view.apply(x, params))


def test_defaults_are_seeded_and_leave_the_global_rng_alone() -> None:
    x = smooth_volume(n=4, size=10)
    view = VolumeViews(image_size=10)
    state = torch.get_rng_state()
    a = view(x, gen(17))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, view(x, gen(17)))
    torch.manual_seed(1)
    b = view(x)  # global RNG when no generator is given
    torch.manual_seed(1)
    assert torch.equal(b, view(x))


def test_cine_frames_get_the_same_transforms_and_samples_different_ones() -> None:
    frame = smooth_volume(n=1, channels=1, size=12)
    x = frame.expand(4, 6, -1, -1, -1).contiguous()  # 4 samples, 6 identical frames
    view = VolumeViews(image_size=10, flip_axes=(0, 1, 2), **{**ALL_ON, "noise_prob": 0.0})
    y = view(x, gen(18))
    for k in range(1, 6):
        torch.testing.assert_close(y[:, k], y[:, 0], atol=1e-6, rtol=0)
    for i, j in itertools.combinations(range(4), 2):
        assert not torch.allclose(y[i], y[j], atol=1e-3)


def test_probabilities_choose_the_expected_fraction_of_samples() -> None:
    view = VolumeViews(
        image_size=8,
        elastic_prob=0.3,
        bias_field_prob=0.5,
        gamma_prob=0.4,
        noise_prob=0.6,
        ghosting_prob=0.2,
        motion_prob=0.1,
        flip_axes=(0, 2),
    )
    n = 4000
    params = view.sample_params(n, "cpu", gen(19))
    rates = {
        "elastic": params["elastic"].flatten(1).abs().amax(1) > 0,
        "bias": params["bias"].abs().amax(1) > 0,
        "gamma": params["gamma"] != 1.0,
        "noise": params["noise_std"] > 0,
        "ghost": params["ghost_every"] > 0,
        "motion": params["motion"],
        "flip_x": params["flip"][:, 0] < 0,
        "flip_z": params["flip"][:, 2] < 0,
    }
    expected = {
        "elastic": 0.3, "bias": 0.5, "gamma": 0.4, "noise": 0.6, "ghost": 0.2, "motion": 0.1, "flip_x": 0.5,
        "flip_z": 0.5,
    }  # fmt: skip
    for name, chosen in rates.items():
        assert abs(float(chosen.float().mean()) - expected[name]) < 0.03, name
    assert bool((params["flip"][:, 1] == 1).all())  # y is not in flip_axes
    side = params["crop_side"] ** 3
    assert 0.4 <= float(side.min()) and float(side.max()) <= 1.0
    assert bool((params["crop_centre"].abs() <= (1 - params["crop_side"])[:, None] + 1e-6).all())
    assert float(params["angles"].abs().max()) <= math.radians(10.0)


def test_local_views_change_size_and_crop_scale_only() -> None:
    view = VolumeViews(image_size=12, rotate_degrees=5.0, ghosting_prob=0.0)
    local = view.local(6, (0.05, 0.3))
    assert isinstance(local, VolumeViews) and local.image_size == 6 and local.crop_scale == (0.05, 0.3)
    assert local.rotate_degrees == 5.0 and local.ghosting_prob == 0.0 and view.image_size == 12
    y = local(smooth_volume(n=2, channels=3, size=12), gen(20))
    assert y.shape == (2, 3, 6, 6, 6)
    side = local.sample_params(500, "cpu", gen(21))["crop_side"] ** 3
    assert 0.05 <= float(side.min()) and float(side.max()) <= 0.3


def test_image_views_local() -> None:
    view = ImageViews(image_size=16, rotate90=False, blur_prob=0.0)
    local = view.local(8, (0.05, 0.4))
    assert local.image_size == 8 and not local.rotate90 and "blur" not in local.augs
    boxes = local.sample_params(300, "cpu", gen(21), sample_shape=(3, 16, 16))["crop.src"]  # (n, 4, 2) corners
    area = (boxes[:, 2, 0] - boxes[:, 0, 0] + 1) * (boxes[:, 2, 1] - boxes[:, 0, 1] + 1) / 256
    assert float(area.max()) <= 0.45 and float(area.min()) < 0.1  # (0.05, 0.4) up to kornia's rounding
    assert local(torch.rand(2, 3, 16, 16, generator=gen(22)), gen(23)).shape == (2, 3, 8, 8)


def test_registry_and_build_views_for_volumes_and_cines() -> None:
    assert VIEWS["volume"] is VolumeViews and VIEWS["cine"] is VolumeViews
    volume = build_views(DataInfo("volume", channels=1, image_size=8), motion_prob=0.0)
    assert isinstance(volume, VolumeViews) and volume.image_size == 8 and volume.motion_prob == 0.0
    cine = build_views(DataInfo("cine", channels=1, image_size=6, frames=5))
    assert cine(torch.rand(2, 5, 6, 6, 6), gen(24)).shape == (2, 5, 6, 6, 6)
    with pytest.raises(ValueError, match="image_size"):
        build_views(DataInfo("volume"))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"crop_scale": (0.8, 0.2)}, "crop_scale"),
        ({"flip_axes": (3,)}, "flip_axes"),
        ({"scale": (0.0, 1.0)}, "scale"),
        ({"padding_mode": "mirror"}, "padding_mode"),
        ({"elastic_prob": 1.5}, "elastic_prob"),
        ({"noise_std": (-0.1, 0.1)}, "noise_std"),
        ({"ghosting_every": (0, 3)}, "ghosting_every"),
        ({"motion_transforms": 0}, "motion_transforms"),
        ({"rotate_degrees": -1.0}, "rotate_degrees"),
        ({"image_size": 1}, "image_size"),
    ],
)
def test_rejects_bad_settings_with_a_config_error(bad: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        VolumeViews(**{"image_size": 8, **bad})


def test_apply_rejects_non_volumes() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, X, Y, Z\)"):
        VolumeViews(image_size=8)(torch.rand(2, 8, 8, 8))


# -- TorchIO itself, where installed (not a dependency of biolatent) -------------------------------------


def test_bias_gamma_ghosting_match_torchio() -> None:
    tio = pytest.importorskip("torchio")
    x = smooth_volume(n=1, channels=1, size=10)
    x[0, 0, 5, 5, 5] = 1.0  # min 0 and max 1: our rescaling to [0, 1] is the identity
    view = views(size=10, bias_field_prob=1.0, gamma_prob=1.0, ghosting_prob=1.0)
    params = view.sample_params(1, "cpu", gen(25))
    only = {
        "bias": dict(params, gamma=torch.ones(1), ghost_every=torch.zeros(1, dtype=torch.int64)),
        "gamma": dict(params, bias=torch.zeros_like(params["bias"]), ghost_every=torch.zeros(1, dtype=torch.int64)),
        "ghost": dict(params, bias=torch.zeros_like(params["bias"]), gamma=torch.ones(1)),
    }
    reference = {
        "bias": tio.BiasField(coefficients=params["bias"][0].tolist(), order=3),
        "gamma": tio.Gamma(gamma=float(params["gamma"][0])),
        "ghost": tio.Ghosting(
            num_ghosts=int(params["ghost_every"][0]),
            axis=int(params["ghost_axis"][0]),
            intensity=float(params["ghost_intensity"][0]),
            restore=None,
        ),
    }
    for name, transform in reference.items():
        expected = transform(tio.ScalarImage(tensor=x[0])).data
        torch.testing.assert_close(view.apply(x, only[name])[0], expected.float(), atol=1e-5, rtol=1e-5)
