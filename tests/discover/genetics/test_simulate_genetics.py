"""msprime genotypes and additive traits: shapes, frequencies, LD, and the simulated variance split."""

from __future__ import annotations

import numpy as np
import pytest

from biolatent.discover.genetics.simulate import simulate_genotypes, simulate_traits
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes


@pytest.fixture(scope="module")
def genotypes() -> Genotypes:
    return simulate_genotypes(300, sequence_length=1_000_000, n_chromosomes=2, seed=3)


def test_genotypes_are_common_diploid_dosages_with_ld(genotypes):
    x = genotypes.dosages
    assert x.dtype == np.float32 and x.shape[0] == 300 and x.shape[1] > 300
    assert set(np.unique(x)) <= {0.0, 1.0, 2.0}
    p = x.mean(axis=0) / 2
    assert np.minimum(p, 1 - p).min() >= 0.05
    assert set(genotypes.variants["chrom"]) == {"1", "2"}
    assert genotypes.variants["id"].is_unique
    # LD: neighbouring variants correlate far more than variants on different chromosomes
    chrom = genotypes.variants["chrom"].to_numpy()
    first = np.flatnonzero(chrom == "1")[:50]
    other = np.flatnonzero(chrom == "2")[:50]
    near = np.abs([np.corrcoef(x[:, j], x[:, j + 1])[0, 1] for j in first[:-1]]).mean()
    far = np.abs([np.corrcoef(x[:, i], x[:, j])[0, 1] for i, j in zip(first, other, strict=True)]).mean()
    assert near > 2 * far
    # Hardy-Weinberg-like heterozygosity under random mating
    het = (x == 1).mean(axis=0)
    assert abs(np.mean(het - 2 * p * (1 - p))) < 0.02


def test_genotypes_are_reproducible():
    a = simulate_genotypes(20, sequence_length=200_000, seed=7)
    b = simulate_genotypes(20, sequence_length=200_000, seed=7)
    np.testing.assert_array_equal(a.dosages, b.dosages)


def test_traits_have_requested_genetic_variance(genotypes):
    phenotypes, causal = simulate_traits(genotypes, [0.0, 0.4, 1.0], n_causal=20, n_traits=3, seed=1)
    assert list(phenotypes.columns) == ["trait_1", "trait_2", "trait_3"]
    assert list(phenotypes.index) == genotypes.samples
    ids = set(genotypes.variants["id"])
    assert all(len(v) == 20 and set(v) <= ids for v in causal.values())
    # h2 = 1: the trait is exactly a linear function of its causal genotypes, variance 1
    x = genotypes.dosages[:, genotypes.variants["id"].isin(causal["trait_3"]).to_numpy()].astype(float)
    design = np.column_stack([np.ones(300), x])
    y = phenotypes["trait_3"].to_numpy()
    resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    assert np.abs(resid).max() < 1e-8 and abs(y.var() - 1.0) < 1e-8
    # h2 = 0.4: causal genotypes explain about 40% (OLS R^2 on 20 variants, n = 300)
    x = genotypes.dosages[:, genotypes.variants["id"].isin(causal["trait_2"]).to_numpy()].astype(float)
    design = np.column_stack([np.ones(300), x])
    y = phenotypes["trait_2"].to_numpy()
    r2 = 1 - np.var(y - design @ np.linalg.lstsq(design, y, rcond=None)[0]) / np.var(y)
    assert 0.3 < r2 < 0.55


@pytest.mark.parametrize("rescale", [True, False])
def test_trait_effects_give_the_genetic_value_as_a_polygenic_score(genotypes, rescale):
    """h2 = 1: the trait is its genetic value, so plink2-style scoring with the stored weights reproduces it up to
    a constant; h2 = 0.5: the score's variance is the trait's genetic share of the variance."""
    import pandas as pd

    from biolatent.discover.genetics.pgs import polygenic_score

    phenotypes, causal = simulate_traits(genotypes, [1.0, 0.5], n_causal=15, n_traits=2, seed=3, rescale=rescale)
    effects = phenotypes.attrs["effects"]
    assert effects["trait_1"]["ID"] == causal["trait_1"]
    score = polygenic_score(genotypes, pd.DataFrame(effects["trait_1"]))
    assert score.attrs["n_used"] == 15
    difference = phenotypes["trait_1"].to_numpy() - score.to_numpy()
    assert np.ptp(difference) < 1e-8
    score = polygenic_score(genotypes, pd.DataFrame(effects["trait_2"]))
    share = score.var() / phenotypes["trait_2"].var()
    assert share == pytest.approx(phenotypes.attrs["realised_h2"]["trait_2"], rel=1e-8)


def test_traits_refuse_bad_arguments(genotypes):
    with pytest.raises(DataError, match="n_causal"):
        simulate_traits(genotypes, 0.5, n_causal=10**6)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        simulate_traits(genotypes, 1.5, n_causal=5)
