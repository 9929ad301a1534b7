"""The GWAS engines behind one call: QC -> genetic PCs -> linear regression of every trait on every variant.

``numpy`` (default) runs in this process (``qc.run_qc``, ``pcs.genetic_pcs``, ``gwas.linear_gwas``); ``hail``
runs the same steps on Spark (``hail_engine.hail_gwas``) for cohorts beyond one machine. Inputs are checked
in-process before either engine starts, so both fail with the same one-line errors, and the genotypes the
results refer to (after QC, matched samples) are returned for clumping.

Memory (numpy engine, PLINK input): the genotypes stay on disk (``BedDosages``); QC counts the packed .bed
bytes block by block, the regression decodes one block of variants at a time (``linear_gwas``), clumping reads
the windows of its lead variants, so the genotype memory is bounded by a block whatever the number of variants.
Genetic PCs (``n_pcs``) still decode the matrix of the analysed samples; the result table (variants x traits
rows) is held in memory.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biolatent.discover.genetics.qc import QCConfig
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes

ENGINES = ("numpy", "hail")
PLINK_SUFFIXES = (".bed", ".bim", ".fam")


def _analysed_ids(genotypes: Genotypes, phenotypes: pd.DataFrame, covariates: pd.DataFrame | None) -> list[str]:
    """Genotyped ids with at least one trait value and every covariate (the samples that enter a regression)."""
    have_trait = phenotypes.apply(pd.to_numeric, errors="coerce").notna().any(axis=1)
    wanted = set(phenotypes.index[have_trait].astype(str))
    if covariates is not None and covariates.shape[1]:
        wanted &= set(covariates.index[covariates.notna().all(axis=1)].astype(str))
    return [s for s in map(str, genotypes.samples) if s in wanted]


def _with_pcs(genotypes: Genotypes, ids: list[str], covariates: pd.DataFrame | None, n_pcs: int,
              say: Callable[[str], object]) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    from biolatent.discover.genetics.pcs import genetic_pcs

    position = {s: i for i, s in enumerate(map(str, genotypes.samples))}
    pcs = genetic_pcs(genotypes.subset(sample_index=np.array([position[s] for s in ids])), n_pcs)
    if covariates is not None and set(pcs.columns) & set(map(str, covariates.columns)):
        pcs = pcs.add_prefix("genetic_")
    share = ", ".join(f"{v:.3f}" for v in pcs.attrs["variance_explained"][:5])
    say(f"{n_pcs} genetic PCs from {pcs.attrs['n_variants_used']} variants (variance explained {share}, ...)")
    joined = pcs if covariates is None else covariates.reindex(ids).join(pcs)
    return joined, {"n_pcs": n_pcs, "pc_names": list(pcs.columns),
                    "variance_explained": pcs.attrs["variance_explained"]}


def _plink_prefix(path: str | Path) -> str | None:
    text = str(path)
    prefix = text[:-4] if text.lower().endswith(PLINK_SUFFIXES) else text
    return prefix if all(Path(prefix + s).is_file() for s in PLINK_SUFFIXES) else None


def _numpy_scan(genotypes: Genotypes, phenotypes: pd.DataFrame, covariates: pd.DataFrame | None,
                qc: QCConfig | None, n_pcs: int, say: Callable[[str], object]) -> tuple:
    from biolatent.discover.genetics.gwas import linear_gwas
    from biolatent.discover.genetics.qc import run_qc

    info: dict[str, Any] = {"seconds": {}}
    started = time.perf_counter()
    if qc is not None:
        genotypes, info["qc"] = run_qc(genotypes, qc)
    info["seconds"]["qc"] = time.perf_counter() - started
    started = time.perf_counter()
    if n_pcs:
        ids = _analysed_ids(genotypes, phenotypes, covariates)
        if not ids:
            linear_gwas(genotypes, phenotypes, covariates)  # raises the id-matching error
        covariates, info["pcs"] = _with_pcs(genotypes, ids, covariates, n_pcs, say)
    info["seconds"]["pcs"] = time.perf_counter() - started
    started = time.perf_counter()
    table = linear_gwas(genotypes, phenotypes, covariates)
    info["seconds"]["regression"] = time.perf_counter() - started
    info["covariates"] = covariates
    return table, genotypes, info


def _hail_scan(genotypes_path: str | Path, genotypes: Genotypes, phenotypes: pd.DataFrame,
               covariates: pd.DataFrame | None, qc: QCConfig | None, n_pcs: int, spark_master: str | None) -> tuple:
    from biolatent.discover.genetics.gwas import linear_gwas
    from biolatent.discover.genetics.hail_engine import hail_available, hail_gwas
    from biolatent.io.genotypes import write_plink

    reason = hail_available()
    if reason:
        raise DataError(f"the hail engine is not available: {reason}")
    ids = _analysed_ids(genotypes, phenotypes, covariates)
    check = genotypes.subset(variant_index=np.arange(min(1, genotypes.n_variants)))
    linear_gwas(check, phenotypes, covariates)  # id matching, constant traits, singular covariates: same errors
    with tempfile.TemporaryDirectory(prefix="biolatent-plink-") as tmp:
        prefix = _plink_prefix(genotypes_path)
        if prefix is None:
            prefix = str(write_plink(genotypes, Path(tmp) / "genotypes"))
        table = hail_gwas(prefix, phenotypes, covariates, qc=qc, n_pcs=n_pcs, master=spark_master)
    report = table.attrs["report"]
    used = set(report["samples"])
    position = {s: i for i, s in enumerate(map(str, genotypes.samples))}
    keep_samples = np.array([position[s] for s in map(str, genotypes.samples) if s in used])
    v = genotypes.variants
    tested = set(zip(table["#CHROM"].astype(str), table["POS"].astype(np.int64), table["ID"].astype(str),
                     table["REF"].astype(str), table["ALT"].astype(str), strict=True))
    keys = zip(v["chrom"].astype(str), v["pos"].astype(np.int64), v["id"].astype(str), v["ref"].astype(str),
               v["alt"].astype(str), strict=True)
    keep_variants = np.array([i for i, key in enumerate(keys) if key in tested], dtype=np.int64)
    info: dict[str, Any] = {}
    if "qc" in report:
        info["qc"] = {**report["qc"], "config": asdict(qc) if qc is not None else None}
    info["covariates"] = covariates
    info["spark"] = report.get("spark")
    if n_pcs:
        info["pcs"] = {"n_pcs": n_pcs, "eigenvalues": report.get("eigenvalues")}
        pcs = pd.DataFrame.from_dict(report["pcs"], orient="index",
                                     columns=[f"PC{i + 1}" for i in range(n_pcs)]).rename_axis("id")
        if covariates is not None and set(pcs.columns) & set(map(str, covariates.columns)):
            pcs = pcs.add_prefix("genetic_")
        info["covariates"] = pcs if covariates is None else covariates.reindex(pcs.index).join(pcs)
    n_geno = genotypes.n_samples
    samples = genotypes.subset(sample_index=keep_samples, variant_index=keep_variants)
    table.attrs["summary"] = {
        "n_genotyped": n_geno, "n_phenotyped": len(phenotypes), "n_matched": len(ids),
        "n_genotyped_unmatched": n_geno - len(ids),
        "n_phenotyped_unmatched": len(set(map(str, phenotypes.index)) - set(map(str, genotypes.samples))),
        "n_samples": len(used), "n_variants": samples.n_variants, "n_traits": int(table["TRAIT"].nunique()),
        "n_variants_untested": int(table["BETA"].isna().to_numpy().reshape(-1, samples.n_variants).all(axis=0).sum())
        if samples.n_variants else 0,
        "n_results_untested": int(table["BETA"].isna().sum()),
        "covariates": [] if covariates is None else [str(c) for c in covariates.columns],
    }
    return table, samples, info


def gwas_scan(
    genotypes_path: str | Path,
    phenotypes: pd.DataFrame,
    covariates: pd.DataFrame | None = None,
    *,
    engine: str = "numpy",
    qc: QCConfig | None = None,
    n_pcs: int = 0,
    dosage: bool = False,
    spark_master: str | None = None,
    say: Callable[[str], object] = print,
) -> tuple[pd.DataFrame, Genotypes, dict[str, Any]]:
    """(GWAS table, the genotypes it refers to, {"qc", "pcs", "covariates", "engine", "seconds"}) of
    ``phenotypes``; ``seconds`` (numpy engine): wall time of QC, PCs and regression, each reading the
    genotypes it needs block by block.

    ``phenotypes`` / ``covariates``: index = sample ids. ``qc=None`` skips QC; ``n_pcs`` genetic PCs of the
    analysed samples join the covariates (``info["covariates"]``: the covariates the regression used).
    ``dosage``: VCF FORMAT/DS dosages instead of hard calls (numpy engine only; PLINK 1 files hold hard calls).
    ``spark_master``: the hail engine's Spark master (``hail_engine.check_master``; None: local mode unless
    ``$BIOLATENT_HAIL_MASTER`` says otherwise); ``info["spark"]``: master, application id, executors.
    """
    from biolatent.io.genotypes import read_genotypes

    if engine not in ENGINES:
        raise DataError(f"unknown GWAS engine {engine!r} (choose from {', '.join(ENGINES)})")
    if n_pcs < 0:
        raise DataError(f"the number of genetic PCs must be >= 0, got {n_pcs}")
    if dosage and engine == "hail":
        raise DataError("the hail engine reads hard calls (PLINK 1): use --engine numpy for dosages")
    if spark_master is not None and engine != "hail":
        raise DataError("--spark-master applies to --engine hail only")
    if engine == "hail":
        from biolatent.discover.genetics.hail_engine import check_master

        check_master(spark_master)  # before any genotype is read
    genotypes = read_genotypes(genotypes_path, dosage=dosage, in_memory=False)  # PLINK: read block by block
    say(f"genotypes: {genotypes.n_samples} samples x {genotypes.n_variants} variants ({genotypes_path})")
    if engine == "numpy":
        table, used, info = _numpy_scan(genotypes, phenotypes, covariates, qc, n_pcs, say)
    else:
        say(f"engine: hail (Spark master {spark_master or 'from $BIOLATENT_HAIL_MASTER, else local[2]'})")
        table, used, info = _hail_scan(genotypes_path, genotypes, phenotypes, covariates, qc, n_pcs, spark_master)
        if info.get("spark"):
            spark = info["spark"]
            say(f"Spark: application {spark['application_id']} on {spark['master']} ({spark['executors']} executors)")
    if "qc" in info:
        q = info["qc"]
        say(f"QC: {q['n_variants_after']} of {q['n_variants_before']} variants kept (removed: "
            f"{q['variants_removed']}), {q['n_samples_after']} of {q['n_samples_before']} samples")
    info["engine"] = engine
    return table, used, info
