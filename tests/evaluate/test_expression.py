"""Spatial expression prediction (issue 12, part 4): the blocked split, gene selection on the training pool only,
per-gene Pearson r against scipy, and the sweep on data whose answer is known."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import pearsonr

from biolatent.errors import DataError
from biolatent.evaluate.expression import (
    GENE_COLUMNS,
    MEAN_METRIC,
    gene_pearson,
    log_normalise,
    run_expression_efficiency,
    select_genes,
    spatial_block_split,
    spot_spacing,
    summarise_genes,
)


def hex_grid(rows: int = 30, cols: int = 40, spacing: float = 10.0) -> np.ndarray:
    """Visium-like grid: odd rows shifted by half a spacing."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    x = c * spacing + (r % 2) * spacing / 2
    y = r * spacing * np.sqrt(3) / 2
    return np.column_stack([x.ravel(), y.ravel()]).astype(float)


def test_block_split_holds_out_regions_with_a_buffer():
    coords = hex_grid()
    train, test, buffer = spatial_block_split(coords, 0.2, seed=3)
    n = coords.shape[0]
    assert sorted(np.concatenate([train, test, buffer]).tolist()) == list(range(n))
    assert test.size >= 0.2 * n and test.size < 0.5 * n
    spacing = spot_spacing(coords)
    assert spacing == pytest.approx(10.0)
    # no training spot within 1.5 spacings of a test spot (brute force), every buffer spot is
    distance = cdist(coords[train], coords[test]).min(axis=1)
    assert distance.min() > 1.5 * spacing
    assert cdist(coords[buffer], coords[test]).min(axis=1).max() <= 1.5 * spacing
    # test spots come in regions: most test spots have a test neighbour at one spacing
    neighbours = cdist(coords[test], coords[test])
    assert np.mean(((neighbours > 0) & (neighbours <= 1.01 * spacing)).sum(axis=1) >= 3) > 0.8
    again = spatial_block_split(coords, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, test, buffer), strict=True))
    other = spatial_block_split(coords, 0.2, seed=4)[1]
    assert not np.array_equal(other, test)


def test_block_split_refuses_bad_input():
    with pytest.raises(DataError, match="finite"):
        spatial_block_split(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(DataError, match="test_fraction"):
        spatial_block_split(hex_grid(), 1.0)
    with pytest.raises(DataError, match="at least 2 spots"):
        spot_spacing(np.zeros((1, 2)))


def test_gene_pearson_matches_scipy_and_handles_constants():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(40, 5))
    predicted = truth + rng.normal(size=(40, 5))
    predicted[:, 3] = 2.0  # constant prediction of a varying gene
    truth[:, 4] = 1.0  # gene constant on the test spots
    r = gene_pearson(truth, predicted)
    for g in range(3):
        assert r[g] == pytest.approx(pearsonr(truth[:, g], predicted[:, g])[0], abs=1e-12)
    assert r[3] == 0.0 and np.isnan(r[4])


def test_log_normalise_by_hand():
    counts = np.array([[1.0, 3.0], [0.0, 0.0], [2.0, 2.0]])
    expected = np.log1p(np.array([[0.25, 0.75], [0.0, 0.0], [0.5, 0.5]]) * 4.0)  # median library 4
    assert np.allclose(log_normalise(counts, True), expected)
    assert np.array_equal(log_normalise(counts, False), counts)


def test_genes_are_selected_on_the_training_pool_only():
    rng = np.random.default_rng(1)
    targets = rng.normal(scale=[1.0, 2.0, 0.5, 0.0], size=(100, 4))
    test = np.arange(80, 100)
    targets[test, 2] = rng.normal(scale=50.0, size=20)  # huge variance on the test spots only
    chosen = select_genes(targets, np.arange(80), 2)
    assert chosen.tolist() == [1, 0]
    assert 3 not in select_genes(targets, np.arange(80), 4).tolist()  # constant gene never chosen
    with pytest.raises(DataError, match="at least 1"):
        select_genes(targets, np.arange(80), 0)


def test_sweep_recovers_a_known_answer():
    """Targets linear in an informative representation are predicted (r near 1); a noise representation and
    genes independent of everything stay near r = 0; a custom predictor sees only training spots."""
    rng = np.random.default_rng(2)
    coords = hex_grid(20, 20)
    n = coords.shape[0]
    latent = np.column_stack([np.sin(coords[:, 0] / 40), np.cos(coords[:, 1] / 30), coords[:, 0] / 200])
    targets = np.column_stack([latent @ rng.normal(size=3) + 0.05 * rng.normal(size=n) for _ in range(4)]
                              + [rng.normal(size=n) for _ in range(2)])
    genes = [f"g{i}" for i in range(6)]
    train, test, _ = spatial_block_split(coords, 0.25, seed=0)
    seen: list[np.ndarray] = []

    def oracle(labelled, test_idx, seed):
        seen.append(labelled)
        return targets[test_idx] + 0.01 * rng.normal(size=(test_idx.size, 6))

    representations = {"informative": latent.astype(np.float32),
                       "noise": rng.normal(size=(n, 8)).astype(np.float32)}
    per_gene, per_seed = run_expression_efficiency(
        representations, targets, genes, train, test, [0.2, 1.0], [0, 1],
        predictors={("oracle", "finetune"): oracle})
    assert list(per_gene.columns) == GENE_COLUMNS
    assert len(per_gene) == (2 * 2 + 1) * 2 * 2 * 6
    assert set(per_seed["metric"]) == {MEAN_METRIC}
    assert all(set(labelled) <= set(train) for labelled in seen) and len(seen) == 4
    linear = per_gene[(per_gene.representation == "informative") & (per_gene.probe == "linear")
                      & (per_gene.fraction == 1.0)]
    assert linear[linear.gene.isin(genes[:4])].pearson_r.min() > 0.9
    assert linear[linear.gene.isin(genes[4:])].pearson_r.abs().max() < 0.35
    noise = per_gene[(per_gene.representation == "noise") & per_gene.gene.isin(genes[:4])]
    assert noise.pearson_r.abs().mean() < 0.3
    summary = summarise_genes(per_gene)
    assert list(summary.columns) == ["representation", "probe", "fraction", "gene", "pearson_r", "n_seeds"]
    assert (summary.n_seeds == 2).all()
    one = per_seed[(per_seed.representation == "informative") & (per_seed.probe == "linear")
                   & (per_seed.fraction == 1.0) & (per_seed.seed == 0)]["value"].item()
    assert one == pytest.approx(linear[linear.seed == 0].pearson_r.mean())


def test_sweep_refuses_mismatched_inputs():
    coords = hex_grid(10, 10)
    train, test, _ = spatial_block_split(coords, 0.25, seed=0)
    targets = np.ones((100, 2))
    with pytest.raises(DataError, match="do not match 3 genes"):
        run_expression_efficiency({}, targets, ["a", "b", "c"], train, test, [1.0], [0])
    with pytest.raises(DataError, match="has 5 rows"):
        run_expression_efficiency({"x": np.zeros((5, 2))}, targets, ["a", "b"], train, test, [1.0], [0])
    with pytest.raises(DataError, match="unknown probe"):
        run_expression_efficiency({"x": np.zeros((100, 2))}, targets, ["a", "b"], train, test, [1.0], [0],
                                  probes=("svm",))
