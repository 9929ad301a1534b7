"""Lesion segmenter: BCE + V-Net soft Dice against torch BCE and a numpy soft Dice; learns bright squares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolatent.anomaly.metrics import dice
from biolatent.anomaly.segmentation import LesionSegmenter, Segmenter, dihedral, segmentation_loss, train_segmenter
from biolatent.errors import DataError


def _numpy_soft_dice(p: np.ndarray, g: np.ndarray, smooth: float) -> float:
    """Milletari et al. 2016, eq. 1, pooled: 1 - (2 sum p g + s) / (sum p^2 + sum g^2 + s)."""
    p, g = p.astype(np.float64).ravel(), g.astype(np.float64).ravel()
    return 1.0 - (2 * np.dot(p, g) + smooth) / (np.dot(p, p) + np.dot(g, g) + smooth)


@pytest.mark.parametrize("dice_weight,smooth", [(1.0, 1.0), (0.3, 0.5)])
def test_loss_matches_independent_computation(dice_weight, smooth):
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4, 8, 8, generator=generator)
    target = torch.rand(4, 8, 8, generator=generator) < 0.2
    total, bce, soft = segmentation_loss(logits, target, dice_weight=dice_weight, smooth=smooth)
    probabilities = 1 / (1 + np.exp(-logits.double().numpy()))
    reference_bce = torch.nn.BCELoss()(torch.from_numpy(probabilities), target.double())
    reference_dice = _numpy_soft_dice(probabilities, target.numpy(), smooth)
    assert float(bce) == pytest.approx(float(reference_bce), rel=1e-5)
    assert float(soft) == pytest.approx(reference_dice, rel=1e-5)
    assert float(total) == pytest.approx(float(reference_bce) + dice_weight * reference_dice, rel=1e-5)


def test_soft_dice_extremes():
    target = torch.zeros(2, 4, 4)
    target[0, :2, :2] = 1
    perfect = torch.where(target > 0, 50.0, -50.0)
    assert float(segmentation_loss(perfect, target)[2]) == pytest.approx(0.0, abs=1e-6)
    assert float(segmentation_loss(-perfect, target)[2]) == pytest.approx(1 - 1 / (28 + 4 + 1), abs=1e-5)  # all wrong


@pytest.mark.parametrize("skip,widths", [(True, (8, 16)), (False, (8, 16, 32))])
def test_shapes(skip, widths):
    network = LesionSegmenter(None, image_size=32, widths=widths, skip=skip)
    x = torch.rand(3, 1, 32, 32)
    assert network.logits(x).shape == (3, 32, 32)
    out = network({"x": x, "y": torch.zeros(3, 32, 32)})
    assert out.loss.ndim == 0 and set(out.metrics) == {"bce", "soft_dice"}


def test_dihedral_moves_image_and_mask_together():
    torch.manual_seed(0)
    y = torch.rand(64, 6, 6) < 0.3
    x = torch.stack([y.float(), torch.arange(36.0).view(6, 6).expand(64, 6, 6)], dim=1)
    ax, ay = dihedral(x, y)
    assert torch.equal(ax[:, 0], ay.float())  # the mask followed its image
    reference = torch.arange(36.0).view(6, 6)
    symmetries = [g for t in (reference, reference.T) for g in (t, t.flip(-1), t.flip(-2), t.flip(-1).flip(-2))]
    seen = {next(k for k, g in enumerate(symmetries) if torch.equal(a, g)) for a in ax[:, 1]}
    assert seen == set(range(8))  # all 8 symmetries of the square, nothing else
    assert torch.equal(x[:, 0], y.float())  # inputs untouched


def _squares(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    images = 0.2 + 0.1 * rng.random((n, 1, 32, 32))
    masks = np.zeros((n, 32, 32), bool)
    for i in range(n):
        row, col, side = rng.integers(2, 22), rng.integers(2, 22), rng.integers(4, 9)
        masks[i, row : row + side, col : col + side] = True
    images[:, 0][masks] = 0.9
    return images.astype(np.float32), masks


def test_learns_bright_squares_and_round_trips(tmp_path):
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images, masks = _squares(48, rng)
    test_images, test_masks = _squares(16, rng)
    segmenter = train_segmenter(images, masks, epochs=30, batch_size=16, lr=1e-2, seed=0, widths=(8, 16))
    probabilities = segmenter.predict(test_images)
    assert probabilities.shape == (16, 32, 32) and 0 <= probabilities.min() and probabilities.max() <= 1
    assert dice(probabilities > 0.5, test_masks) > 0.8
    segmenter.threshold = 0.4
    loaded = Segmenter.load(segmenter.save(tmp_path / "seg"))
    np.testing.assert_array_equal(loaded.predict(test_images), probabilities)
    assert loaded.threshold == 0.4 and loaded.network.widths == (8, 16)


def test_bad_input(tmp_path):
    images = np.random.default_rng(0).random((4, 1, 32, 32)).astype(np.float32)
    with pytest.raises(DataError, match="masks have shape"):
        train_segmenter(images, np.zeros((4, 16, 16), bool), epochs=1)
    with pytest.raises(DataError, match="not a saved segmenter"):
        Segmenter.load(tmp_path)
