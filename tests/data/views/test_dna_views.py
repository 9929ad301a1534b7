"""DnaViews: shift, reverse complement and point mutations on right-padded base codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolatent.data.sequence import PAD_BASE
from biolatent.data.views import DnaViews

COMPLEMENT = {0: 3, 1: 2, 2: 1, 3: 0, 4: 4}


def random_bases(n: int = 40, length: int = 30, seed: int = 0, n_rate: float = 0.05) -> torch.Tensor:
    """Right-padded sequences of random lengths 1..length with a few N."""
    rng = np.random.default_rng(seed)
    out = np.full((n, length), PAD_BASE, dtype=np.int64)
    for row in range(n):
        size = int(rng.integers(1, length + 1))
        codes = rng.integers(0, 4, size=size)
        codes[rng.random(size) < n_rate] = 4
        out[row, :size] = codes
    return torch.from_numpy(out)


def content(row: torch.Tensor) -> list[int]:
    return [int(b) for b in row if b != PAD_BASE]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_same_seed_same_view_and_shape_dtype() -> None:
    x = random_bases()
    views = DnaViews(mutation_rate=0.05)
    a, b, c = views(x, gen(1)), views(x, gen(1)), views(x, gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == torch.int64


def test_reverse_complement_twice_is_identity() -> None:
    x = random_bases()
    views = DnaViews(reverse_complement_prob=1.0, max_shift=0)
    once = views(x, gen(0))
    assert not torch.equal(once, x)
    assert torch.equal(views(once, gen(1)), x)
    for row_in, row_out in zip(x, once, strict=True):  # independent check of one RC
        assert content(row_out) == [COMPLEMENT[b] for b in reversed(content(row_in))]


def test_shift_keeps_base_order_and_clips_to_length() -> None:
    x = random_bases(n=60)
    views = DnaViews(reverse_complement_prob=0.0, max_shift=10)
    params = views.sample_params(60, "cpu", gen(3))
    shift = params["shift"]
    assert int(shift.min()) >= 0 and int(shift.max()) <= 10 and len(set(shift.tolist())) > 5
    y = views.apply(x, params)
    for row_in, row_out, s in zip(x, y, shift.tolist(), strict=True):
        bases = content(row_in)
        offset = min(s, len(bases) - 1)
        assert content(row_out) == bases[offset:]


def test_padding_always_on_the_right() -> None:
    x = random_bases(n=80)
    y = DnaViews(max_shift=12, mutation_rate=0.1)(x, gen(4))
    is_pad = (y == PAD_BASE).long()
    assert torch.equal(is_pad, is_pad.cummax(dim=1).values)  # once PAD, PAD until the end
    assert bool(((y != PAD_BASE).sum(1) >= 1).all())


def test_views_are_suffixes_or_their_reverse_complements() -> None:
    x = random_bases()
    views = DnaViews(reverse_complement_prob=0.5, max_shift=5)
    params = views.sample_params(x.shape[0], "cpu", gen(5))
    y = views.apply(x, params)
    flipped = params["reverse"].tolist()
    assert 0 < sum(flipped) < len(flipped)
    for row_in, row_out, s, rc in zip(x, y, params["shift"].tolist(), flipped, strict=True):
        bases = content(row_in)
        window = bases[min(s, len(bases) - 1) :]
        expected = [COMPLEMENT[b] for b in reversed(window)] if rc else window
        assert content(row_out) == expected


def test_mutation_rate_matches_and_spares_n_and_pad() -> None:
    x = random_bases(n=400, length=100, seed=1, n_rate=0.1)
    views = DnaViews(reverse_complement_prob=0.0, max_shift=0, mutation_rate=0.1)
    y = views(x, gen(6))
    acgt = x < 4
    changed = y != x
    assert torch.equal(y[~acgt], x[~acgt])  # N and PAD untouched
    assert bool((y[changed] < 4).all())  # mutations go to A, C, G or T, always a different base
    rate = float(changed[acgt].float().mean())
    assert abs(rate - 0.1) < 0.01
    # the new base is uniform over the three others
    delta = ((y - x) % 4)[changed]
    freq = torch.bincount(delta, minlength=4)[1:].float() / delta.numel()
    assert torch.allclose(freq, torch.full((3,), 1 / 3), atol=0.03)


def test_no_mutation_keys_without_mutations_and_length_needed_with_them() -> None:
    assert "mutate" not in DnaViews().sample_params(3, "cpu")
    with pytest.raises(ValueError, match="max_length"):
        DnaViews(mutation_rate=0.1).sample_params(3, "cpu")
    assert DnaViews(mutation_rate=0.1, max_length=9).sample_params(3, "cpu")["mutate"].shape == (3, 9)
