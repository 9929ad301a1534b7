"""Views of 3D volumes (B, 1, X, Y, Z) and cines (B, T, X, Y, Z): batched, seeded 3D augmentation.

Every random parameter is drawn first (``sample_params``, small tensors), then applied to the whole batch
(``apply``): one ``grid_sample`` call carries all geometric transforms, the MRI artefacts are batched
tensor operations (``torch.fft`` for k-space). For a cine the channel axis holds the T frames of one
subject: geometry, bias field, gamma, ghosting and motion are the same for all frames of a sample (the
motion over the cycle is kept), only the noise realisation differs between frames (each frame is its own
acquisition), with the same standard deviation.

Recipes:

* Random resized crop (zoom + translation), flips, small rotations and scaling, elastic deformation from
  a grid of random control-point displacements: the 3D views of Taleb et al. 2020, "3D self-supervised
  methods for medical imaging", NeurIPS, and Chaitanya et al. 2020, "Contrastive learning of global and
  local features for medical image segmentation with limited annotations", NeurIPS; intensity
  transforms after Zhou et al. 2021, "Models Genesis", Medical Image Analysis 67.
* MRI artefacts with the parameterisation of TorchIO (Pérez-García et al. 2021, "TorchIO: a Python
  library for efficient loading, preprocessing, augmentation and patch-based sampling of medical images
  in deep learning", Computer Methods and Programs in Biomedicine 208): order-3 polynomial bias field
  ``exp(sum c_abc x^a y^b z^c)`` (``RandomBiasField``, after Van Leemput et al. 1999, IEEE TMI 18),
  gamma ``x ** exp(beta)`` (``RandomGamma``), Gaussian noise (``RandomNoise``), k-space ghosting
  (``RandomGhosting``: every n-th plane of k-space along one axis scaled by ``1 - intensity``, the central
  plane kept) and k-space motion (``RandomMotion``, after Shaw et al. 2019, "MRI k-space motion artefact
  augmentation", MIDL: k-space filled in segments along the last axis from rigidly moved copies, the
  segment holding the k-space centre from the unmoved volume).

Coordinates are normalised to [-1, 1] per axis (``align_corners=True``: -1 and 1 are the centres of the
first and last voxels), in the order (x, y, z) of the tensor axes after the channel axis. An output voxel
at ``p`` samples the input at

    src(p) = crop_centre + crop_side * R(angles) @ diag(1 / scale) @ (flip * p) + 2 * translate + d(p)

with ``R = Rz @ Ry @ Rx`` and ``d`` the elastic displacement (trilinear interpolation of the control
points, borders locked to zero). Outside the input the value is 0 (``padding_mode="zeros"``: the
background of normalised MRI is 0, while ``"border"`` would smear edge tissue into streaks under rotation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from biolatent.data.views.base import Params, ViewModule, as_device, draw_seed, rand, randint, uniform
from biolatent.errors import ConfigError

PADDING_MODES = ("zeros", "border", "reflection")


def polynomial_exponents(order: int) -> list[tuple[int, int, int]]:
    """Exponents (a, b, c) of the monomials x^a y^b z^c with a + b + c <= order, in TorchIO's order."""
    return [(a, b, c) for a in range(order + 1) for b in range(order + 1 - a) for c in range(order + 1 - a - b)]


def rotation_matrices(angles: Tensor) -> Tensor:
    """(..., 3) angles in radians about x, y, z -> (..., 3, 3) ``Rz @ Ry @ Rx``."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(cos[..., 0]), torch.zeros_like(cos[..., 0])

    def matrix(rows: list[list[Tensor]]) -> Tensor:
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)

    cx, cy, cz = cos.unbind(-1)
    sx, sy, sz = sin.unbind(-1)
    rx = matrix([[one, zero, zero], [zero, cx, -sx], [zero, sx, cx]])
    ry = matrix([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rz = matrix([[cz, -sz, zero], [sz, cz, zero], [zero, zero, one]])
    return rz @ ry @ rx


def identity_grid(size: Sequence[int], device: torch.device, dtype: torch.dtype) -> Tensor:
    """(X, Y, Z, 3) normalised (x, y, z) coordinates of the voxel centres, -1 and 1 at the edges."""
    axes = [torch.linspace(-1.0, 1.0, int(n), device=device, dtype=dtype) for n in size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def sample_grid(x: Tensor, coords: Tensor, padding_mode: str = "zeros") -> Tensor:
    """Trilinear sample of ``x`` (B, C, X, Y, Z) at ``coords`` (B, X', Y', Z', 3) in (x, y, z) order."""
    # grid_sample reads the last grid entry as the first spatial axis: (x, y, z) -> (z, y, x)
    grid = coords.flip(-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def bias_field(coefficients: Tensor, size: Sequence[int], order: int) -> Tensor:
    """(n, K) polynomial coefficients -> (n, X, Y, Z) multiplicative field ``exp(sum c_k x^a y^b z^c)``."""
    device, dtype = coefficients.device, coefficients.dtype
    x, y, z = (torch.linspace(-1.0, 1.0, int(s), device=device, dtype=dtype) for s in size)
    basis = torch.stack(
        [
            (x**a)[:, None, None] * (y**b)[None, :, None] * (z**c)[None, None, :]
            for a, b, c in polynomial_exponents(order)
        ]
    )
    return torch.exp(torch.einsum("nk,kxyz->nxyz", coefficients, basis))


def gamma_contrast(x: Tensor, gamma: Tensor) -> Tensor:
    """``x`` (n, ...) rescaled per sample to [0, 1], raised to ``gamma`` (n,), rescaled back."""
    flat = x.flatten(1)
    low = flat.min(dim=1).values.view(-1, *[1] * (x.ndim - 1))
    span = (flat.max(dim=1).values.view_as(low) - low).clamp(min=torch.finfo(x.dtype).tiny)
    unit = ((x - low) / span).clamp(0.0, 1.0)
    return unit ** gamma.view_as(low) * span + low


def ghost_profile(every: Tensor, intensity: Tensor, length: int) -> Tensor:
    """k-space factors (n, length): every ``every``-th plane times ``1 - intensity``, the others 1.

    Planes are counted in the centred (fftshifted) spectrum from index 0; the central plane (index
    length // 2) is kept, as TorchIO's ``Ghosting`` with ``restore=None``.
    """
    index = torch.arange(int(length), device=every.device)
    hit = (index[None, :] % every.clamp(min=1)[:, None] == 0) & (index != int(length) // 2)[None, :]
    return torch.where(hit, 1.0 - intensity[:, None], torch.ones_like(intensity[:, None]))


def motion_segments(times: Tensor, length: int) -> Tensor:
    """(n, M) sorted times in (0, 1) -> (n, M + 1, length) one-hot: which image fills each k-space plane.

    Plane k of the last axis belongs to segment ``#{j : k >= floor(length * t_j)}``; the segment holding
    the k-space centre (k = length // 2) is filled from image 0 (unmoved), the others from the moved
    images 1..M in order.
    """
    bounds = torch.floor(length * times).long()  # (n, M)
    index = torch.arange(length, device=times.device)
    segment = (index[None, :, None] >= bounds[:, None, :]).sum(-1)  # (n, length)
    centre = segment[:, length // 2 : length // 2 + 1]
    source = torch.where(segment == centre, 0, torch.where(segment < centre, segment + 1, segment))
    return F.one_hot(source, times.shape[1] + 1).transpose(1, 2).to(times.dtype)


class VolumeViews(ViewModule):
    """Augmented views of (B, C, X, Y, Z) volumes; output (B, C, image_size, image_size, image_size).

    Geometry (one ``grid_sample``): random resized crop keeping a fraction ``crop_scale`` of the volume
    (isotropic side ``fraction ** (1/3)``, centre uniform inside the volume); flips with p = 0.5 along each
    axis of ``flip_axes`` if ``flip`` (default x only: left-right is the one anatomically plausible flip of
    a RAS brain, the others make upside-down anatomy that a downstream task never sees); rotation with
    angles uniform in +-``rotate_degrees`` about each axis; scale per axis in ``scale`` (> 1 enlarges);
    translation uniform in +-``translate`` times the field of view per axis; with probability
    ``elastic_prob`` an elastic deformation from ``elastic_control_points`` ** 3 control points displaced
    uniformly in +-``elastic_magnitude`` (normalised units, 2 = the field of view).

    Intensities, in this order, per sample, the same for every channel: bias field (probability ``bias_field_prob``,
    coefficients uniform in +-``bias_coefficient``, order ``bias_order``); gamma with log-gamma uniform in
    ``log_gamma`` (probability ``gamma_prob``), on intensities rescaled to [0, 1] per sample then back;
    k-space motion (``motion_prob``: ``motion_transforms`` rigid moves, angles +-``motion_degrees``, shifts
    +-``motion_translation`` of the field of view) and ghosting (``ghosting_prob``: every n-th plane,
    n in ``ghosting_every``, along a random axis scaled by 1 - s, s in ``ghosting_intensity``), each a 1D
    FFT along the one k-space axis it changes; Gaussian noise with std uniform in ``noise_std``
    (``noise_prob``; a new realisation per channel). Output dtype is the input's; values are not clamped.
    """

    def __init__(
        self,
        *,
        image_size: int,
        crop_scale: tuple[float, float] = (0.4, 1.0),
        flip: bool = True,
        flip_axes: Sequence[int] = (0,),
        rotate_degrees: float = 10.0,
        scale: tuple[float, float] = (0.9, 1.1),
        translate: float = 0.0,
        padding_mode: str = "zeros",
        elastic_prob: float = 0.3,
        elastic_control_points: int = 7,
        elastic_magnitude: float = 0.05,
        bias_field_prob: float = 0.5,
        bias_coefficient: float = 0.3,
        bias_order: int = 3,
        gamma_prob: float = 0.5,
        log_gamma: tuple[float, float] = (-0.3, 0.3),
        noise_prob: float = 0.5,
        noise_std: tuple[float, float] = (0.0, 0.05),
        ghosting_prob: float = 0.2,
        ghosting_every: tuple[int, int] = (4, 10),
        ghosting_intensity: tuple[float, float] = (0.5, 1.0),
        motion_prob: float = 0.1,
        motion_transforms: int = 2,
        motion_degrees: float = 10.0,
        motion_translation: float = 0.05,
    ) -> None:
        super().__init__()
        self.settings: dict[str, Any] = {
            key: value for key, value in locals().items() if key not in ("self", "__class__")
        }
        self.settings["flip_axes"] = tuple(int(a) for a in flip_axes)
        _check_settings(self.settings)
        self.image_size = int(image_size)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.flip_axes = self.settings["flip_axes"] if flip else ()
        self.rotate_degrees = float(rotate_degrees)
        self.scale = (float(scale[0]), float(scale[1]))
        self.translate = float(translate)
        self.padding_mode = padding_mode
        self.elastic_prob, self.elastic_control_points = float(elastic_prob), int(elastic_control_points)
        self.elastic_magnitude = float(elastic_magnitude)
        self.bias_field_prob, self.bias_coefficient = float(bias_field_prob), float(bias_coefficient)
        self.bias_order = int(bias_order)
        self.gamma_prob, self.log_gamma = float(gamma_prob), (float(log_gamma[0]), float(log_gamma[1]))
        self.noise_prob, self.noise_std = float(noise_prob), (float(noise_std[0]), float(noise_std[1]))
        self.ghosting_prob, self.ghosting_every = float(ghosting_prob), (int(ghosting_every[0]), int(ghosting_every[1]))
        self.ghosting_intensity = (float(ghosting_intensity[0]), float(ghosting_intensity[1]))
        self.motion_prob, self.motion_transforms = float(motion_prob), int(motion_transforms)
        self.motion_degrees, self.motion_translation = float(motion_degrees), float(motion_translation)

    def local(self, size: int, crop_scale: tuple[float, float]) -> VolumeViews:
        """The same views at another output size and crop scale: DINO's multi-crop local views (Caron et
        al. 2021, "Emerging properties in self-supervised vision transformers", ICCV)."""
        return VolumeViews(**{**self.settings, "image_size": size, "crop_scale": crop_scale})

    def sample_params(
        self,
        n: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
        *,
        sample_shape: Sequence[int] | None = None,
    ) -> Params:
        """All parameters, independent of the input shape (``sample_shape`` is not needed).

        Keys: ``crop_side`` (n,), ``crop_centre`` (n, 3), ``flip`` (n, 3) of +-1, ``angles`` (n, 3) radians,
        ``scale`` (n, 3), ``translate`` (n, 3) fraction of the field of view, ``elastic`` (n, 3, P, P, P)
        control-point displacements (zero when off), ``bias`` (n, K) coefficients (zero when off),
        ``gamma`` (n,) (1 when off), ``ghost_every`` (n,) int64 (0 when off), ``ghost_axis`` (n,) int64,
        ``ghost_intensity`` (n,), ``motion`` (n,) bool, ``motion_angles`` (n, M, 3) radians,
        ``motion_shift`` (n, M, 3) fraction of the field of view, ``motion_times`` (n, M) sorted,
        ``noise_std`` (n,) (0 when off) and ``noise_seed`` (1,) int64.
        """
        device = as_device(device)

        def u(low: float, high: float, *shape: int) -> Tensor:
            return uniform(low, high, (n, *shape), device, generator)

        def chosen(p: float) -> Tensor:
            return rand((n,), device, generator) < p

        params: Params = {}
        fraction = u(*self.crop_scale)
        params["crop_side"] = fraction ** (1.0 / 3.0)
        params["crop_centre"] = (1.0 - params["crop_side"])[:, None] * u(-1.0, 1.0, 3)
        flip = torch.ones(n, 3, device=device)
        flipped = rand((n, 3), device, generator) < 0.5
        for axis in self.flip_axes:
            flip[:, axis] = torch.where(flipped[:, axis], -1.0, 1.0)
        params["flip"] = flip
        params["angles"] = u(-self.rotate_degrees, self.rotate_degrees, 3) * (math.pi / 180.0)
        params["scale"] = u(*self.scale, 3)
        params["translate"] = u(-self.translate, self.translate, 3)
        points = self.elastic_control_points
        elastic = u(-self.elastic_magnitude, self.elastic_magnitude, 3, points, points, points)
        elastic = elastic * chosen(self.elastic_prob).view(n, 1, 1, 1, 1)
        params["elastic"] = F.pad(elastic[..., 1:-1, 1:-1, 1:-1], (1, 1, 1, 1, 1, 1))  # borders locked
        terms = len(polynomial_exponents(self.bias_order))
        params["bias"] = u(-self.bias_coefficient, self.bias_coefficient, terms) * chosen(self.bias_field_prob)[:, None]
        params["gamma"] = torch.where(chosen(self.gamma_prob), torch.exp(u(*self.log_gamma)), 1.0)
        every = randint(self.ghosting_every[0], self.ghosting_every[1] + 1, (n,), device, generator)
        params["ghost_every"] = torch.where(chosen(self.ghosting_prob), every, 0)
        params["ghost_axis"] = randint(0, 3, (n,), device, generator)
        params["ghost_intensity"] = u(*self.ghosting_intensity)
        moves = self.motion_transforms
        params["motion"] = chosen(self.motion_prob)
        params["motion_angles"] = u(-self.motion_degrees, self.motion_degrees, moves, 3) * (math.pi / 180.0)
        params["motion_shift"] = u(-self.motion_translation, self.motion_translation, moves, 3)
        # TorchIO's times: evenly spaced in (0, 1), each perturbed by up to 30% of the spacing
        step = 1.0 / (moves + 1)
        even = torch.arange(1, moves + 1, device=device, dtype=torch.float32) * step
        params["motion_times"] = (even + u(-0.3 * step, 0.3 * step, moves)).sort(dim=1).values
        params["noise_std"] = u(*self.noise_std) * chosen(self.noise_prob)
        params["noise_seed"] = torch.tensor([draw_seed(generator)], device=device)
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        if x.ndim != 5:
            raise ValueError(f"VolumeViews expects (B, C, X, Y, Z) volumes, got shape {tuple(x.shape)}")
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        p = {
            key: (value.to(x.device, dtype) if value.is_floating_point() else value.to(x.device))
            for key, value in params.items()
        }
        out = self._geometry(x.to(dtype), p)
        out = self._intensity(out, p)
        return out.to(x.dtype)

    # -- geometry ---------------------------------------------------------------------------------------
    def _geometry(self, x: Tensor, p: Params) -> Tensor:
        size = (self.image_size,) * 3
        linear = rotation_matrices(p["angles"]) / p["scale"][:, None, :] * p["flip"][:, None, :]
        linear = linear * p["crop_side"][:, None, None]
        offset = p["crop_centre"] + 2.0 * p["translate"]
        base = identity_grid(size, x.device, x.dtype)
        coords = torch.einsum("nij,xyzj->nxyzi", linear, base) + offset[:, None, None, None, :]
        elastic = p["elastic"]
        rows = elastic.flatten(1).abs().amax(dim=1) > 0
        if bool(rows.any()):
            field = F.interpolate(elastic[rows], size=size, mode="trilinear", align_corners=True)
            coords[rows] = coords[rows] + field.permute(0, 2, 3, 4, 1)
        return sample_grid(x, coords, self.padding_mode)

    # -- intensities ------------------------------------------------------------------------------------
    def _intensity(self, x: Tensor, p: Params) -> Tensor:
        out = x.clone()
        rows = p["bias"].abs().amax(dim=1) > 0
        if bool(rows.any()):
            out[rows] = out[rows] * bias_field(p["bias"][rows], out.shape[2:], self.bias_order)[:, None]
        rows = p["gamma"] != 1.0
        if bool(rows.any()):
            out[rows] = gamma_contrast(out[rows], p["gamma"][rows])
        rows = p["motion"]
        if bool(rows.any()):
            out[rows] = motion(out[rows], p["motion_angles"][rows], p["motion_shift"][rows], p["motion_times"][rows])
        for axis in range(3):
            rows = (p["ghost_every"] > 0) & (p["ghost_axis"] == axis)
            if bool(rows.any()):
                out[rows] = ghosting(out[rows], p["ghost_every"][rows], p["ghost_intensity"][rows], axis)
        std = p["noise_std"]
        if bool((std > 0).any()):
            noise_rng = torch.Generator(device=out.device).manual_seed(int(p["noise_seed"].reshape(-1)[0]))
            noise = torch.randn(out.shape, generator=noise_rng, device=out.device, dtype=out.dtype)
            out = out + std.view(-1, 1, 1, 1, 1) * noise
        return out


def centred_spectrum(x: Tensor, dim: int) -> Tensor:
    """1D Fourier transform along ``dim`` with the zero frequency at index length // 2."""
    return torch.fft.fftshift(torch.fft.fft(x, dim=dim), dim=dim)


def from_centred_spectrum(spectrum: Tensor, dim: int) -> Tensor:
    """Real part of the inverse of ``centred_spectrum``."""
    return torch.fft.ifft(torch.fft.ifftshift(spectrum, dim=dim), dim=dim).real


def ghosting(x: Tensor, every: Tensor, intensity: Tensor, axis: int) -> Tensor:
    """k-space ghosting of (m, C, X, Y, Z) along spatial ``axis`` (0, 1, 2), per sample ``every``, ``intensity``.

    The factors vary along one k-space axis only, so the transforms along the two other axes cancel:
    a 1D FFT along ``axis`` gives the same result as TorchIO's 3D FFT.
    """
    dim = 2 + axis
    factor = ghost_profile(every, intensity, x.shape[dim]).to(x.dtype)
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    shape[dim] = x.shape[dim]
    return from_centred_spectrum(centred_spectrum(x, dim) * factor.view(shape), dim).to(x.dtype)


def motion(x: Tensor, angles: Tensor, shifts: Tensor, times: Tensor) -> Tensor:
    """k-space motion of (m, C, X, Y, Z): k-space filled in segments along z from M rigidly moved copies.

    ``angles`` (m, M, 3) radians about the volume centre, ``shifts`` (m, M, 3) fractions of the field of
    view, ``times`` (m, M) sorted in (0, 1). The segments split the z frequencies only, so a 1D FFT along z
    gives the same result as a 3D FFT.
    """
    m, moves = angles.shape[:2]
    rotation = rotation_matrices(angles.reshape(-1, 3))
    base = identity_grid(x.shape[2:], x.device, x.dtype)
    coords = torch.einsum("nij,xyzj->nxyzi", rotation, base) + 2.0 * shifts.reshape(-1, 1, 1, 1, 3)
    moved = sample_grid(x.repeat_interleave(moves, dim=0), coords, "zeros").view(m, moves, *x.shape[1:])
    images = torch.cat([x[:, None], moved], dim=1)  # (m, M + 1, C, X, Y, Z), image 0 unmoved
    weights = motion_segments(times, x.shape[-1]).to(x.dtype)  # (m, M + 1, Z)
    spectrum = (centred_spectrum(images, -1) * weights[:, :, None, None, None, :]).sum(dim=1)
    return from_centred_spectrum(spectrum, -1).to(x.dtype)


def _check_settings(s: dict[str, Any]) -> None:
    """Raise ConfigError on a setting that cannot work."""

    def fail(message: str) -> None:
        raise ConfigError(f"volume views: {message}")

    if int(s["image_size"]) < 2:
        fail(f"image_size must be >= 2, got {s['image_size']}")
    low, high = s["crop_scale"]
    if not 0.0 < low <= high <= 1.0:
        fail(f"crop_scale must satisfy 0 < low <= high <= 1, got {s['crop_scale']}")
    if any(axis not in (0, 1, 2) for axis in s["flip_axes"]):
        fail(f"flip_axes must be among 0, 1, 2 (x, y, z), got {s['flip_axes']}")
    if not 0.0 < s["scale"][0] <= s["scale"][1]:
        fail(f"scale must satisfy 0 < low <= high, got {s['scale']}")
    if s["padding_mode"] not in PADDING_MODES:
        fail(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {s['padding_mode']!r}")
    if int(s["elastic_control_points"]) < 3:
        fail(f"elastic_control_points must be >= 3 (the border ones are locked), got {s['elastic_control_points']}")
    if int(s["bias_order"]) < 0:
        fail(f"bias_order must be >= 0, got {s['bias_order']}")
    if s["log_gamma"][0] > s["log_gamma"][1]:
        fail(f"log_gamma must satisfy low <= high, got {s['log_gamma']}")
    if not 0.0 <= s["noise_std"][0] <= s["noise_std"][1]:
        fail(f"noise_std must satisfy 0 <= low <= high, got {s['noise_std']}")
    if not 1 <= s["ghosting_every"][0] <= s["ghosting_every"][1]:
        fail(f"ghosting_every must satisfy 1 <= low <= high, got {s['ghosting_every']}")
    if not 0.0 <= s["ghosting_intensity"][0] <= s["ghosting_intensity"][1]:
        fail(f"ghosting_intensity must satisfy 0 <= low <= high, got {s['ghosting_intensity']}")
    if int(s["motion_transforms"]) < 1:
        fail(f"motion_transforms must be >= 1, got {s['motion_transforms']}")
    for name in (
        "rotate_degrees",
        "translate",
        "elastic_magnitude",
        "bias_coefficient",
        "motion_degrees",
        "motion_translation",
    ):
        if float(s[name]) < 0:
            fail(f"{name} must be >= 0, got {s[name]}")
    for name in ("elastic_prob", "bias_field_prob", "gamma_prob", "noise_prob", "ghosting_prob", "motion_prob"):
        if not 0.0 <= float(s[name]) <= 1.0:
            fail(f"{name} must be between 0 and 1, got {s[name]}")
