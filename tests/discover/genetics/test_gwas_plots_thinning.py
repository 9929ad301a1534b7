"""Thinned GWAS plots keep every point with p < 1e-3 and a bounded, evenly spread background."""

from __future__ import annotations

import numpy as np

from biolatent.discover.genetics.gwas_plots import MAX_BACKGROUND, thinned


def test_thinning_keeps_every_strong_point_and_bounds_the_rest():
    rng = np.random.default_rng(0)
    log10_p = -np.log10(rng.random(50_000))
    log10_p[[5, 20_000, 49_999]] = [12.0, 8.0, np.inf]
    shown = thinned(log10_p)
    strong = np.flatnonzero(~(log10_p < 3.0))
    assert set(strong) <= set(shown) and np.all(np.diff(shown) > 0)
    assert shown.size == strong.size + MAX_BACKGROUND
    background = np.setdiff1d(shown, strong)
    assert background.min() < 100 and background.max() > 49_800  # spread over the whole genome
    small = np.array([0.5, 4.0, 1.0])
    np.testing.assert_array_equal(thinned(small), [0, 1, 2])  # nothing to thin
