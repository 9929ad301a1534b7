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


def test_reused_figures_draw_the_same_pixels_as_fresh_ones(tmp_path):
    """draw_plots reuses one Manhattan and one QQ figure across traits: the second trait's PNGs equal those of
    a fresh figure; the thinning note is on the figure; the x axis spans all variants, not the thinned ones."""
    import matplotlib.image as mpimg
    import pandas as pd

    from biolatent.discover.genetics.gwas_figures import draw_manhattan, draw_plots, draw_qq
    from biolatent.discover.genetics.gwas_plots import plot_points

    rng = np.random.default_rng(4)
    m = 9000
    rows = []
    for trait, shift in (("a", 0.0), ("b", 3.0)):
        p = rng.random(m)
        p[[10, 5000]] = [1e-12, 10.0 ** -(20 + shift)]
        rows.append(pd.DataFrame({"#CHROM": np.repeat(["1", "2", "10"], m // 3),
                                  "POS": np.tile(np.arange(1, m // 3 + 1) * 50, 3), "TRAIT": trait, "P": p,
                                  "LOG10_P": -np.log10(p)}))
    table = pd.concat(rows, ignore_index=True).astype({"TRAIT": "category"})
    points = plot_points(table)
    assert points[0][1]["spans"] == (("1", 50.0, 150000.0), ("2", 50.0, 150000.0), ("10", 50.0, 150000.0))
    assert len(points[0][1]["log10_p"]) < m and points[0][1]["n_points"] == m
    draw_plots(points, tmp_path / "reused")
    draw_manhattan(points[1][1], tmp_path / "fresh_m.png", "b")
    draw_qq(points[1][2], tmp_path / "fresh_q.png", "b")
    np.testing.assert_array_equal(mpimg.imread(tmp_path / "reused" / "manhattan_b.png"),
                                  mpimg.imread(tmp_path / "fresh_m.png"))
    np.testing.assert_array_equal(mpimg.imread(tmp_path / "reused" / "qq_b.png"),
                                  mpimg.imread(tmp_path / "fresh_q.png"))
    assert not np.array_equal(mpimg.imread(tmp_path / "reused" / "manhattan_a.png"),
                              mpimg.imread(tmp_path / "fresh_m.png"))
