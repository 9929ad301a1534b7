"""Simulated genotypes with realistic LD (coalescent with recombination) and additive quantitative traits.

Genotypes: ``msprime.sim_ancestry`` (Baumdicker et al. 2022, Genetics 220:iyab229; Kelleher, Etheridge &
McVean 2016, PLoS Comput Biol 12:e1004842) of diploid individuals from one population of constant,
human-like effective size (Ne = 10,000, recombination rate 1e-8 per bp per generation, Tenesa et al. 2007),
then ``msprime.sim_mutations`` (binary 0/1 model, discrete genome); ALT = derived allele, diploid dosage =
sum of an individual's two haplotypes; variants below ``min_maf`` are dropped.

Traits: the additive model used by GCTA's ``--simu-qt`` (Yang et al. 2011, AJHG 88:76): ``n_causal``
variants drawn at random, standardised genotypes ``z_j = (x_j - 2p_j) / sqrt(2p_j(1 - p_j))``, effects
``b_j ~ N(0, 1)``, genetic value ``g = Z b`` rescaled to sample variance ``h2`` and noise ``e ~ N(0, 1 - h2)``,
so the genetic variance is ``h2`` of the (expected) total. With ``rescale=False`` the effects are drawn as
``b_j ~ N(0, h2 / n_causal)`` and not rescaled (the random-effects model REML assumes): the realised genetic
variance then varies between replicates around ``h2``, as it does between real cohorts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes, standardise_block


def simulate_genotypes(
    n_samples: int,
    *,
    sequence_length: float = 2_000_000,
    n_chromosomes: int = 1,
    population_size: float = 10_000,
    recombination_rate: float = 1e-8,
    mutation_rate: float = 1e-8,
    min_maf: float = 0.05,
    seed: int = 0,
) -> Genotypes:
    """Diploid dosages (float32) of ``n_samples`` individuals on ``n_chromosomes`` independent regions.

    Each region is ``sequence_length`` bp; variant ids are ``chrom:pos``. With the defaults one 2 Mb region
    gives about 2,000-2,500 variants with MAF >= 0.05 for 1,000 individuals.
    """
    import msprime

    if n_samples < 1 or n_chromosomes < 1:
        raise ValueError("n_samples and n_chromosomes must be >= 1")
    rng = np.random.default_rng(seed)
    blocks, tables = [], []
    for chrom in range(1, n_chromosomes + 1):
        seeds = rng.integers(1, 2**31 - 1, size=2)
        ts = msprime.sim_ancestry(samples=n_samples, ploidy=2, population_size=population_size,
                                  sequence_length=sequence_length, recombination_rate=recombination_rate,
                                  random_seed=int(seeds[0]))
        ts = msprime.sim_mutations(ts, rate=mutation_rate, model=msprime.BinaryMutationModel(),
                                   discrete_genome=True, random_seed=int(seeds[1]))
        nodes = np.array([ts.individual(i).nodes for i in range(ts.num_individuals)])  # (n, 2) sample nodes
        haplotypes = ts.genotype_matrix()  # sites x sample nodes, in ts.samples() order
        column = {int(node): j for j, node in enumerate(ts.samples())}
        first, second = ([column[int(u)] for u in nodes[:, c]] for c in (0, 1))
        hap = haplotypes[:, first] + haplotypes[:, second]
        freq = hap.mean(axis=1) / 2.0
        keep = np.minimum(freq, 1 - freq) >= min_maf
        pos = ts.tables.sites.position[keep].astype(np.int64) + 1  # 1-based, as in VCF
        blocks.append(hap[keep].T.astype(np.float32))
        tables.append(pd.DataFrame({"chrom": str(chrom), "pos": pos, "id": [f"{chrom}:{p}" for p in pos],
                                    "ref": "A", "alt": "G"}))
    samples = [f"sample_{i + 1}" for i in range(n_samples)]
    return Genotypes(np.hstack(blocks), samples, pd.concat(tables, ignore_index=True))


def simulate_traits(
    genotypes: Genotypes,
    h2: float | Sequence[float],
    n_causal: int,
    n_traits: int = 1,
    seed: int = 0,
    *,
    rescale: bool = True,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Additive traits ``trait_1..trait_T``; returns (phenotypes indexed by sample id, causal variant ids per trait).

    ``phenotypes.attrs["realised_h2"]``: per trait, the genetic share of the sample variance (``h2`` itself
    with ``rescale=True``, around it otherwise). ``phenotypes.attrs["effects"]``: per trait, the causal
    variants' effects per ALT allele (``{"ID": [...], "A1": [...], "BETA": [...]}``, plink2 ``--glm`` columns),
    so that ``discover.genetics.pgs.polygenic_score`` with them gives each sample's genetic value up to a
    constant: the true polygenic score.

    ``h2`` is one value for all traits or one per trait; causal variants are drawn among the polymorphic ones,
    independently for each trait.
    """
    h2s = [float(h2)] * n_traits if np.isscalar(h2) else [float(v) for v in h2]  # type: ignore[arg-type]
    if len(h2s) != n_traits:
        raise DataError(f"{len(h2s)} h2 values given for {n_traits} traits")
    if any(not 0.0 <= v <= 1.0 for v in h2s):
        raise DataError(f"h2 must lie in [0, 1], got {h2s}")
    z, keep = standardise_block(genotypes.dosages)
    ids = genotypes.variants["id"].astype(str).to_numpy()[keep]
    alts = genotypes.variants["alt"].astype(str).to_numpy()[keep]
    with np.errstate(invalid="ignore"):
        p = np.nanmean(np.asarray(genotypes.dosages, dtype=np.float64)[:, keep], axis=0) / 2.0
    allele_sd = np.sqrt(2.0 * p * (1.0 - p))  # z = (dosage - 2p) / allele_sd, as standardise_block does
    if not 1 <= n_causal <= z.shape[1]:
        raise DataError(f"n_causal = {n_causal} but only {z.shape[1]} polymorphic variants")
    rng = np.random.default_rng(seed)
    n = genotypes.n_samples
    columns, causal, realised, effects = {}, {}, {}, {}
    for t, value in enumerate(h2s, start=1):
        chosen = np.sort(rng.choice(z.shape[1], size=n_causal, replace=False))
        b = rng.standard_normal(n_causal)
        g = z[:, chosen] @ b
        if rescale:
            scale = np.sqrt(value / g.var()) if g.var() > 0 else 0.0
            g = (g - g.mean()) * scale
        else:
            scale = np.sqrt(value / n_causal)
            g = g * scale
        name = f"trait_{t}"
        effects[name] = {"ID": ids[chosen].tolist(), "A1": alts[chosen].tolist(),
                         "BETA": (b * scale / allele_sd[chosen]).tolist()}
        columns[name] = g + rng.standard_normal(n) * np.sqrt(1.0 - value)
        causal[name] = ids[chosen].tolist()
        realised[name] = float(g.var() / columns[name].var())
    phenotypes = pd.DataFrame(columns, index=pd.Index(genotypes.samples, name="id"))
    phenotypes.attrs["realised_h2"] = realised  # genetic share of the sample variance
    phenotypes.attrs["effects"] = effects  # per ALT allele: the true polygenic score's weights
    return phenotypes, causal


def heart_parameters(
    genotypes: Genotypes,
    h2: dict[str, float],
    n_causal: int,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[str]]]:
    """Heart phantom parameters driven by genotypes: (parameters in their units, standard scores, causal ids).

    ``scores.attrs["effects"]``: per parameter, the true polygenic score's weights (see ``simulate_traits``).

    Each parameter named in ``h2`` (see ``biolatent.data.simulate.heart.PARAMETERS``) gets an additive
    random-effects score (``simulate_traits(..., rescale=False)``: genetic variance h2, total ~1), mapped to
    the parameter's population mean and SD (then clipped to its physiological range); the other parameters
    are drawn at random by the cohort simulator. Index: the genotype sample ids.
    """
    from biolatent.data.simulate.heart import PARAMETERS, parameters_from_scores

    unknown = [name for name in h2 if name not in PARAMETERS]
    if unknown:
        raise DataError(f"unknown heart parameters {unknown} (known: {', '.join(PARAMETERS)})")
    names = list(h2)
    scores, causal = simulate_traits(genotypes, [h2[n] for n in names], n_causal=n_causal, n_traits=len(names),
                                     seed=seed, rescale=False)
    realised = scores.attrs["realised_h2"]
    scores.columns = names
    scores.attrs["realised_h2"] = {name: realised[f"trait_{i + 1}"] for i, name in enumerate(names)}
    scores.attrs["effects"] = {name: scores.attrs["effects"][f"trait_{i + 1}"] for i, name in enumerate(names)}
    causal = {name: causal[f"trait_{i + 1}"] for i, name in enumerate(names)}
    parameters = parameters_from_scores(scores)[names]
    return parameters, scores, causal
