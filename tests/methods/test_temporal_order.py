import itertools
import math

import numpy as np
import pytest
import torch

from biolatent.data.samples import DataInfo
from biolatent.errors import ConfigError, DataError
from biolatent.methods.temporal_order import TemporalOrder, frame_permutations, shuffle_frames
from biolatent.models.cine import CineEncoder

RADII = torch.tensor([3.2, 1.4, 2.0, 2.6])  # a 'beating' blob: fast contraction, slower filling


def _encoder() -> CineEncoder:
    return CineEncoder(4, widths=(4, 8), blocks=(1, 1), temporal_heads=2)


def _rotations(p: list[int]) -> set[tuple[int, ...]]:
    return {tuple(p[(i - r) % len(p)] for i in range(len(p))) for r in range(len(p))}


@pytest.mark.parametrize(("frames", "n"), [(3, 2), (4, 6), (5, 10), (6, 8), (12, 6)])
def test_permutation_set_has_no_cyclic_shifts(frames: int, n: int) -> None:
    perms = frame_permutations(frames, n)
    assert perms.shape == (n, frames) and perms.dtype == torch.int64
    rows = [p.tolist() for p in perms]
    assert rows[0] == list(range(frames))
    assert rows[1] == [0, *range(frames - 1, 0, -1)]  # the reversal of the cycle
    for row in rows:
        assert sorted(row) == list(range(frames))
    identity_shifts = _rotations(list(range(frames)))
    assert all(tuple(row) not in identity_shifts for row in rows[1:])
    for a, b in itertools.combinations(rows, 2):  # no class is a cyclic shift of another
        assert tuple(b) not in _rotations(a)
    assert torch.equal(perms, frame_permutations(frames, n))  # fixed


def test_all_rotation_classes_for_four_frames() -> None:
    perms = frame_permutations(4, 6)  # (4 - 1)! = 6: every rotation class once
    classes = {min(_rotations(p.tolist())) for p in perms}
    assert len(classes) == 6
    with pytest.raises(ConfigError, match=r"\(frames - 1\)! = 6"):
        frame_permutations(4, 7)
    with pytest.raises(ConfigError, match="at least 3 frames"):
        frame_permutations(2, 2)


def test_labels_match_the_permutation_applied() -> None:
    perms = frame_permutations(5, 6)
    x = torch.arange(5.0)[None, :, None, None, None].repeat(8, 1, 2, 2, 2)  # frame value = frame index
    x = x + 100 * torch.arange(8.0)[:, None, None, None, None]
    gen = torch.Generator().manual_seed(0)
    out, labels, order = shuffle_frames(x, perms, random_phase=False, generator=gen)
    assert labels.shape == (8,) and int(labels.max()) < 6
    for b in range(8):
        got = (out[b, :, 0, 0, 0] - 100 * b).long().tolist()
        assert got == perms[int(labels[b])].tolist() == order[b].tolist()
    out, labels, order = shuffle_frames(x, perms, random_phase=True, generator=torch.Generator().manual_seed(1))
    shifted = 0
    for b in range(8):
        got = (out[b, :, 0, 0, 0] - 100 * b).long().tolist()
        assert got == order[b].tolist()
        assert tuple(got) in _rotations(perms[int(labels[b])].tolist())
        shifted += got != perms[int(labels[b])].tolist()
    assert shifted > 0


def test_shuffle_is_seeded() -> None:
    perms = frame_permutations(4, 6)
    x = torch.rand(16, 4, 2, 2, 2)
    a = shuffle_frames(x, perms, generator=torch.Generator().manual_seed(3))
    b = shuffle_frames(x, perms, generator=torch.Generator().manual_seed(3))
    c = shuffle_frames(x, perms, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_forward_loss_is_cross_entropy_of_the_drawn_class() -> None:
    torch.manual_seed(0)
    method = TemporalOrder(_encoder(), n_permutations=6, hidden_dim=8).eval()
    x = torch.rand(5, 4, 8, 8, 8)
    torch.manual_seed(11)
    out = method({"x": x})
    torch.manual_seed(11)  # the same draw, by hand
    shuffled, labels, _ = shuffle_frames(x, method.permutations(4), random_phase=False)
    with torch.no_grad():
        logits = method.head(method.encoder(shuffled)).double()
    expected = 0.0
    for b in range(5):
        log_z = math.log(sum(math.exp(float(v)) for v in logits[b]))
        expected += (log_z - float(logits[b, labels[b]])) / 5
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    accuracy = float(np.mean([int(logits[b].argmax()) == int(labels[b]) for b in range(5)]))
    assert out.metrics["accuracy"] == pytest.approx(accuracy)


def test_checks_and_errors() -> None:
    method = TemporalOrder(_encoder(), n_permutations=6)
    method.check_data(DataInfo("cine", channels=1, image_size=8, spatial_dims=3, frames=4))
    with pytest.raises(DataError, match="cine"):
        method.check_data(DataInfo("volume", channels=1, image_size=8, spatial_dims=3))
    with pytest.raises(ConfigError, match="n_permutations"):
        TemporalOrder(_encoder(), n_permutations=7).check_data(
            DataInfo("cine", channels=1, image_size=8, spatial_dims=3, frames=4))
    with pytest.raises(ConfigError, match="n_permutations"):
        TemporalOrder(_encoder(), n_permutations=1)
    with pytest.raises(ConfigError, match="hidden_dim"):
        TemporalOrder(_encoder(), hidden_dim=-1)
    with pytest.raises(DataError, match="cines"):
        method({"x": torch.rand(2, 4, 8, 8)})
    # the permutation set is a deterministic function of (frames, n, seed): not state, only the head is new
    assert not any("perm" in k for k in method.state_dict())
    assert {k.split(".")[0] for k in method.state_dict()} == {"encoder", "head"}
    assert isinstance(method.head, torch.nn.Sequential)
    assert isinstance(TemporalOrder(_encoder(), hidden_dim=0).head, torch.nn.Linear)


def beating_blobs(n: int, gen: torch.Generator, size: int = 8) -> torch.Tensor:
    """(n, 4, size, size, size) cines of a blob whose radius follows RADII (x a random scale), plus noise."""
    scale = 0.85 + 0.3 * torch.rand(n, 1, generator=gen)
    centre = (size - 1) / 2 + torch.rand(n, 3, generator=gen) - 0.5
    grid = torch.arange(size).float()
    z, y, x = torch.meshgrid(grid, grid, grid, indexing="ij")
    dist = ((x[None] - centre[:, 0, None, None, None]) ** 2 + (y[None] - centre[:, 1, None, None, None]) ** 2
            + (z[None] - centre[:, 2, None, None, None]) ** 2).sqrt()
    radius = RADII[None] * scale
    cines = torch.sigmoid(2.0 * (radius[:, :, None, None, None] - dist[:, None]))
    return cines + 0.05 * torch.randn(cines.shape, generator=gen)


@pytest.mark.slow
def test_learns_frame_order_of_a_beating_blob() -> None:
    """150 Adam steps on a toy cine: held-out accuracy far above chance (1/6); about 7 s on one core."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    method = TemporalOrder(_encoder(), n_permutations=6, hidden_dim=16)
    optimizer = torch.optim.Adam(method.parameters(), lr=5e-3)
    for _ in range(150):
        loss = method({"x": beating_blobs(16, gen)}).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    method.eval()
    with torch.no_grad():
        accuracy = method({"x": beating_blobs(256, gen)}).metrics["accuracy"]
    assert accuracy > 0.5
