"""``biolatent discover``: embeddings -> latent phenotypes -> clusters -> GWAS -> heritability -> report.

The analysis reads an embeddings file (``embeddings.h5ad`` or any AnnData with per-sample vectors), genotypes
(PLINK prefix or VCF) and optional covariates; it never needs the model. Steps:

1. sample ids of the embeddings matched to the genotype ids (report of what did not match);
2. latent phenotypes ``Z0..Zk`` of the matched samples (``discover.phenotypes``: covariate residualisation,
   PCA/ICA decorrelation, rank inverse normal transform) -> ``phenotypes.tsv``;
3. clusters of the embeddings with their stability and metadata associations (``workflows.discover_clusters``)
   -> ``clusters/``;
4. GWAS of every latent trait (QC, genetic PCs, covariates; numpy or Hail engine) -> ``gwas/``;
5. SNP heritability (GREML or HE) of every trait on the GRM of the QC'd variants, with the same covariates,
   and the genetic correlation (bivariate HE) between traits -> ``h2.tsv``, ``rg.tsv``;
6. ``summary.json`` and ``report.html`` (the discovery section of ``biolatent report``).

Nothing is written before the inputs have been read and matched, so a bad input leaves no half-made folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from biolatent import provenance
from biolatent.discover.genetics.qc import QCConfig
from biolatent.embed import EMBEDDING_KEY
from biolatent.errors import DataError
from biolatent.rundir import atomic_path, write_json, write_text

SUMMARY_FILE = "summary.json"
PHENOTYPES_FILE = "phenotypes.tsv"
H2_FILE = "h2.tsv"
RG_FILE = "rg.tsv"
MATCHING_FILE = "id_matching.json"
PGS_FILE = "pgs.tsv"


@dataclass(frozen=True)
class DiscoverSettings:
    """Choices of ``biolatent discover`` (CLI options of the same names)."""

    decorrelate: Literal["none", "pca", "ica"] = "pca"
    n_components: int | None = 10
    inverse_normal: bool = True
    engine: Literal["numpy", "hail"] = "numpy"
    spark_master: str | None = None
    qc: QCConfig | None = field(default_factory=QCConfig)
    n_pcs: int = 5
    dosage: bool = False
    h2_method: Literal["greml", "he"] = "greml"
    cluster_method: str = "leiden"
    n_clusters: int | None = None
    polygenic_score: str | None = None
    pgs_weights: str | None = None
    genetic_correlation: bool = True
    seed: int = 0
    key: str = EMBEDDING_KEY

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["qc"] = None if self.qc is None else asdict(self.qc)
        return values


def _numeric_covariates(covariates: pd.DataFrame | None) -> pd.DataFrame | None:
    """Covariates for the regressions: text/categorical columns as 0/1 indicators (first level dropped)."""
    if covariates is None:
        return None
    numeric = pd.get_dummies(covariates, drop_first=True, dtype=float).astype(float)
    numeric.index = numeric.index.map(str)
    return numeric


def _read_inputs(embeddings_path: Path, genotypes_path: Path, covariates_tsv: Path | None, settings: DiscoverSettings,
                 say: Callable[[str], object]) -> tuple[Any, pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """(AnnData of the matched samples, latent phenotypes, covariates, id-matching report)."""
    from biolatent.data.paired import match_ids
    from biolatent.discover.phenotypes import latent_phenotypes
    from biolatent.embed import read_embeddings
    from biolatent.io import read_table
    from biolatent.io.genotypes import read_sample_ids

    adata = read_embeddings(embeddings_path, key=settings.key)
    embedded_ids = [str(s) for s in adata.obs_names]
    covariates = None if covariates_tsv is None else read_table(covariates_tsv, id_column="id")
    genotype_ids = read_sample_ids(genotypes_path)
    common, report = match_ids(embedded_ids, genotype_ids)
    say(f"{report['n_matched']} samples with embeddings and genotypes ({report['n_only_phenotypes']} embedded "
        f"only, e.g. {report['examples']['only_phenotypes'][:2]}; {report['n_only_genotypes']} genotyped only)")
    if len(common) < 10:
        raise DataError(f"only {len(common)} samples have both embeddings and genotypes: too few for a GWAS")
    position = {s: i for i, s in enumerate(embedded_ids)}
    adata = adata[[position[s] for s in common]].copy()
    x = np.asarray(adata.obsm[settings.key], dtype=np.float64)
    n_components = settings.n_components
    if settings.decorrelate != "none" and n_components is not None:
        n_components = min(n_components, x.shape[1], len(common) - 1)
    phenotypes = latent_phenotypes(x, common, decorrelate=settings.decorrelate, n_components=n_components,
                                   covariates=covariates, inverse_normal=settings.inverse_normal, seed=settings.seed)
    report["n_dropped_missing_covariates"] = phenotypes.attrs["n_dropped_missing_covariates"]
    say(f"{phenotypes.shape[1]} latent phenotypes ({settings.decorrelate} of {x.shape[1]} embedding dimensions"
        f"{', covariate-adjusted' if covariates is not None else ''}"
        f"{', inverse-normal transformed' if settings.inverse_normal else ''}) for {phenotypes.shape[0]} samples")
    return adata, phenotypes, _numeric_covariates(covariates), report


def _write_tsv(table: pd.DataFrame, path: Path, index: bool = False) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=index, float_format="%.10g", na_rep="NA")
    return path


def _heritability(phenotypes: pd.DataFrame, genotypes: Any, covariates: pd.DataFrame | None,
                  settings: DiscoverSettings, say: Callable[[str], object]) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    from biolatent.discover.genetics.grm import genetic_relationship_matrix, standardised_genotypes
    from biolatent.discover.genetics.heritability import genetic_correlation, h2_table

    ids = [str(s) for s in genotypes.samples]
    grm, n_used = genetic_relationship_matrix(genotypes)
    say(f"GRM of {len(ids)} samples from {n_used} variants; h2 by {settings.h2_method}")
    traits = phenotypes.reindex(ids)
    cov = None if covariates is None else covariates.reindex(ids)
    low_rank = settings.h2_method == "greml" and n_used < len(ids)  # FaST-LMM (Lippert et al. 2011): no O(n^3)
    z = standardised_genotypes(genotypes)[0] if low_rank else None
    table = h2_table(traits, grm, ids, cov, settings.h2_method, z=z)
    for row in table.itertuples():
        say(f"{row.trait}: h2 = {row.h2:.3f} (se {row.se:.3f}, 95% CI {row.ci_low:.3f} to {row.ci_high:.3f})")
    pairs = []
    if settings.genetic_correlation and traits.shape[1] > 1:
        complete = traits.notna().all(axis=1).to_numpy()
        if cov is not None:
            complete &= cov.notna().all(axis=1).to_numpy()
        k = grm[np.ix_(complete, complete)]
        cov_x = None if cov is None else pd.get_dummies(cov, drop_first=True, dtype=float).to_numpy()[complete]
        names = list(traits.columns)
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                fit = genetic_correlation(traits[names[a]].to_numpy()[complete], traits[names[b]].to_numpy()[complete],
                                          k, cov_x)
                pairs.append({"trait_1": names[a], "trait_2": names[b], "rg": fit["rg"], "se": fit["se"],
                              "n": int(complete.sum()), "method": "he"})
    return table, pd.DataFrame(pairs, columns=["trait_1", "trait_2", "rg", "se", "n", "method"]), n_used


def _polygenic_score(genotypes: Any, weights_tsv: Path, say: Callable[[str], object]) -> pd.Series:
    """Score of every genotyped sample from a weights table (``ID``, ``A1``, ``BETA``) on the QC'd variants."""
    from biolatent.discover.genetics.pgs import polygenic_score, read_weights

    score = polygenic_score(genotypes, read_weights(weights_tsv), name="pgs")
    a = score.attrs
    say(f"polygenic score from {a['n_used']} of {a['n_weights']} weighted variants ({a['n_absent']} not in the "
        f"QC'd genotypes, {a['n_allele_mismatch']} with other alleles)")
    return score


def run_discover(
    embeddings_path: str | Path,
    genotypes_path: str | Path,
    out_dir: str | Path,
    *,
    covariates_tsv: str | Path | None = None,
    settings: DiscoverSettings | None = None,
    say: Callable[[str], object] = print,
) -> Path:
    """Run the whole discovery path; return the path of ``report.html``."""
    from biolatent.discover.genetics.engines import gwas_scan
    from biolatent.report.discovery import write_discovery_report
    from biolatent.workflows.discover_clusters import check_cluster_method, run_clusters
    from biolatent.workflows.gwas import say_summary, write_gwas_results

    settings = settings or DiscoverSettings()
    check_cluster_method(settings.cluster_method, settings.n_clusters)
    embeddings_path, genotypes_path, out_dir = Path(embeddings_path), Path(genotypes_path), Path(out_dir)
    _, phenotypes, covariates, matching = _read_inputs(embeddings_path, genotypes_path,
                                                       None if covariates_tsv is None else Path(covariates_tsv),
                                                       settings, say)
    table, genotypes, info = gwas_scan(genotypes_path, phenotypes, covariates, engine=settings.engine, qc=settings.qc,
                                       n_pcs=settings.n_pcs, dosage=settings.dosage,
                                       spark_master=settings.spark_master, say=say)
    say_summary(table.attrs["summary"], say)
    pgs = None if settings.pgs_weights is None else _polygenic_score(genotypes, Path(settings.pgs_weights), say)
    h2, rg, n_grm_variants = _heritability(phenotypes, genotypes, info["covariates"], settings, say)

    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"embeddings": str(embeddings_path), "genotypes": str(genotypes_path),
              "covariates": None if covariates_tsv is None else str(covariates_tsv), **settings.as_dict()}
    write_text(out_dir / "config.yaml", yaml.safe_dump({"discover": record}, sort_keys=False))
    write_json(out_dir / "provenance.json", provenance.collect("discover", **record))
    write_json(out_dir / MATCHING_FILE, matching)
    _write_tsv(phenotypes.reset_index(), out_dir / PHENOTYPES_FILE)
    per_trait = write_gwas_results(table, genotypes, out_dir / "gwas", say)
    _write_tsv(h2, out_dir / H2_FILE)
    _write_tsv(rg, out_dir / RG_FILE)
    if pgs is not None:
        _write_tsv(pgs.reset_index(), out_dir / PGS_FILE)
    say("clusters of the embeddings")
    run_clusters(embeddings_path, out_dir / "clusters", method=settings.cluster_method, k=settings.n_clusters,
                 polygenic_score=pgs if pgs is not None else settings.polygenic_score, seed=settings.seed,
                 key=settings.key, say=say)
    summary = {
        "settings": record, "id_matching": {k: v for k, v in matching.items() if k != "examples"},
        "phenotypes": {"n_samples": int(phenotypes.shape[0]), "traits": list(phenotypes.columns),
                       **{k: v for k, v in phenotypes.attrs.items() if isinstance(v, int | float | str | bool)}},
        "gwas": {"engine": settings.engine, **{k: v for k, v in table.attrs["summary"].items() if k != "covariates"},
                 "covariate_names": table.attrs["summary"]["covariates"], "qc": info.get("qc"),
                 "genetic_pcs": {k: v for k, v in (info.get("pcs") or {}).items()}, "traits": per_trait,
                 "spark": info.get("spark")},
        "h2": {"method": settings.h2_method, "n_grm_variants": n_grm_variants,
               "traits": {r.trait: {"h2": r.h2, "se": r.se, "ci_low": r.ci_low, "ci_high": r.ci_high, "n": int(r.n)}
                          for r in h2.itertuples()}},
        "n_rg_pairs": len(rg),
        "polygenic_score": None if pgs is None else {"weights": settings.pgs_weights, **pgs.attrs},
    }
    write_json(out_dir / SUMMARY_FILE, summary)
    report = write_discovery_report(out_dir)
    say(f"discovery report -> {report}")
    return report
