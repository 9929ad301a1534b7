"""Genetic PCs on a two-population coalescent simulation; equality with numpy's SVD; greedy LD pruning."""

from __future__ import annotations

import msprime
import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.pcs import genetic_pcs, ld_prune
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes


@pytest.fixture(scope="module")
def two_populations() -> tuple[Genotypes, np.ndarray]:
    """30 + 30 diploids of two demes split 2,000 generations ago (Ne 10,000 each), 500 kb; ALT = derived."""
    demography = msprime.Demography()
    for name in ("A", "B", "ANC"):
        demography.add_population(name=name, initial_size=10_000)
    demography.add_population_split(time=2_000, derived=["A", "B"], ancestral="ANC")
    ts = msprime.sim_ancestry(samples={"A": 30, "B": 30}, demography=demography, sequence_length=500_000,
                              recombination_rate=1e-8, random_seed=7)
    ts = msprime.sim_mutations(ts, rate=1e-8, model=msprime.BinaryMutationModel(), random_seed=7)
    haplotypes = ts.genotype_matrix()  # sites x sample nodes; individual i owns nodes 2i, 2i + 1
    dosages = (haplotypes[:, 0::2] + haplotypes[:, 1::2]).T.astype(np.float32)
    population = np.array([ts.node(ind.nodes[0]).population for ind in ts.individuals()])
    rng = np.random.default_rng(0)
    dosages[rng.random(dosages.shape) < 0.02] = np.nan
    m = dosages.shape[1]
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(m) + 1, "id": [f"v{j}" for j in range(m)], "ref": "0",
                             "alt": "1"})
    return Genotypes(dosages, [f"i{i}" for i in range(dosages.shape[0])], variants), population


def _standardised(x: np.ndarray) -> np.ndarray:
    """EIGENSTRAT standardisation written out: frequency of the observed calls, missing -> mean, drop monomorphic."""
    x = x.astype(np.float64)
    p = np.nanmean(x, axis=0) / 2
    poly = (np.nanmax(x, axis=0) > np.nanmin(x, axis=0))
    z = (x[:, poly] - 2 * p[poly]) / np.sqrt(2 * p[poly] * (1 - p[poly]))
    return np.nan_to_num(z, nan=0.0)


def _assert_equal_up_to_sign(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    for k in range(a.shape[1]):
        err = min(np.abs(a[:, k] - b[:, k]).max(), np.abs(a[:, k] + b[:, k]).max())
        assert err < atol * np.abs(b[:, k]).max(), f"PC{k + 1} differs: {err}"


def test_pc1_separates_the_populations(two_populations):
    geno, population = two_populations
    assert geno.n_variants > 500
    pcs = genetic_pcs(geno, n_components=4)
    assert list(pcs.columns) == ["PC1", "PC2", "PC3", "PC4"] and list(pcs.index) == geno.samples
    a, b = pcs.PC1.to_numpy()[population == 0], pcs.PC1.to_numpy()[population == 1]
    assert a.max() < b.min() or b.max() < a.min()
    ve = pcs.attrs["variance_explained"]
    assert ve == sorted(ve, reverse=True) and pcs.attrs["n_variants_used"] <= geno.n_variants


@pytest.mark.parametrize("method", ["exact", "randomized"])
def test_scores_equal_numpy_svd(two_populations, method):
    geno, _ = two_populations
    z = _standardised(geno.dosages)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    k = 5 if method == "exact" else 3
    pcs = genetic_pcs(geno, n_components=k, method=method, n_iter=20)
    _assert_equal_up_to_sign(pcs.to_numpy(), u[:, :k] * s[:k], atol=1e-6 if method == "exact" else 1e-3)
    np.testing.assert_allclose(pcs.attrs["eigenvalues"], s[:k] ** 2 / z.shape[1], rtol=1e-6)
    assert pcs.attrs["n_variants_used"] == z.shape[1]


def test_randomized_is_seeded(two_populations):
    geno, _ = two_populations
    first = genetic_pcs(geno, n_components=3, method="randomized", seed=3, n_iter=1)
    again = genetic_pcs(geno, n_components=3, method="randomized", seed=3, n_iter=1)
    pd.testing.assert_frame_equal(first, again)


def _brute_force_prune(x: np.ndarray, chrom: list[str], window: int, r2: float) -> list[int]:
    x = x.astype(np.float64)
    x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    kept: list[int] = []
    for j in range(x.shape[1]):
        drop = False
        for i in kept:
            if j - i <= window and chrom[i] == chrom[j] and x[:, i].std() > 0 and x[:, j].std() > 0:
                drop |= np.corrcoef(x[:, i], x[:, j])[0, 1] ** 2 > r2
        if not drop:
            kept.append(j)
    return kept


def test_ld_prune_equals_brute_force(two_populations):
    geno, _ = two_populations
    sub = geno.subset(variant_index=np.arange(300))
    chrom = ["1"] * 150 + ["2"] * 150
    sub.variants["chrom"] = chrom
    x = sub.dosages.copy()
    x[:, 10] = 2 - x[:, 9]  # r = -1 with its neighbour
    x[:, 150] = x[:, 149]  # identical, but on the next chromosome: kept
    sub = Genotypes(x, sub.samples, sub.variants)
    for window, r2 in ((5, 0.2), (50, 0.5)):
        pruned = ld_prune(sub, window=window, r2=r2)
        expected = _brute_force_prune(x, chrom, window, r2)
        assert pruned.variants.id.tolist() == [f"v{j}" for j in expected]
        assert pruned.variants.attrs["n_pruned"] == 300 - len(expected)
    kept = ld_prune(sub, window=5, r2=0.2).variants.id.tolist()
    assert "v10" not in kept or "v9" not in kept
    assert "v150" in kept or "v149" not in kept
    pcs = genetic_pcs(sub, n_components=2, prune=True, window=5, r2=0.2)
    assert pcs.attrs["n_variants_used"] <= len(kept)


def test_pc_errors(two_populations):
    geno, _ = two_populations
    with pytest.raises(DataError, match="n_components"):
        genetic_pcs(geno, n_components=geno.n_samples)
    with pytest.raises(DataError, match="unknown PCA method"):
        genetic_pcs(geno, method="magic")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="window"):
        ld_prune(geno, window=0)
    with pytest.raises(DataError, match="polymorphic"):
        genetic_pcs(geno.subset(variant_index=np.arange(3)), n_components=5)
