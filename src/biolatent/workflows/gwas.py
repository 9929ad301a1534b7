"""``biolatent gwas``: GWAS of every trait of a phenotype table, with QC, genetic PCs, clumping and plots.

Writes into ``out_dir``: ``gwas.tsv`` (one long table, all traits, the plink2 ``--glm`` columns
``GWAS_FILE_COLUMNS``; a p-value below the smallest double is written in text from its log, e.g. ``3.1e-412``),
``lead_variants.tsv`` (plink-style clumping, p1 = 5e-8), ``plots/manhattan_<trait>.png`` and
``plots/qq_<trait>.png``, ``metrics.json`` (section ``gwas``), ``config.yaml`` and ``provenance.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from biolatent import provenance
from biolatent.discover.genetics.qc import QCConfig
from biolatent.io.genotype_matrix import Genotypes
from biolatent.rundir import atomic_path, update_json, write_json, write_text

GWAS_FILE = "gwas.tsv"
LEADS_FILE = "lead_variants.tsv"
GENOME_WIDE = 5e-8
WRITE_ROWS = 2**19  # gwas.tsv is formatted and written this many rows at a time
GWAS_FILE_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "A1", "TRAIT", "OBS_CT", "BETA", "SE", "T_STAT", "P"]


def p_text(p: np.ndarray, log10_p: np.ndarray) -> np.ndarray:
    """P as text (``%.10g``); where P underflowed to 0, ``m e-k`` from -log10 P; NaN as ``NA``."""
    p, log10_p = np.asarray(p, float), np.asarray(log10_p, float)
    out = np.char.mod("%.10g", p).astype(object)
    out[np.isnan(p)] = "NA"
    for i in np.flatnonzero((p == 0) & np.isfinite(log10_p)):
        exponent = int(np.ceil(log10_p[i]))
        mantissa = 10.0 ** (exponent - log10_p[i])
        if round(mantissa, 6) >= 10.0:
            mantissa, exponent = mantissa / 10.0, exponent - 1
        out[i] = f"{mantissa:.6g}e-{exponent}"
    return out


def _arrow_column(values: pd.Series, dictionary=None):
    """One column as an Arrow array for the TSV writer: text as strings (a categorical as its dictionary array,
    written without materialising a string per row), numbers as the shortest text that reads back to the same
    double (exact, more digits than plink2's 6; a column without NaN is formatted by the writer itself, one with
    NaN through a cast, its NaN written as ``NA``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values.dtype, pd.CategoricalDtype):
        if dictionary is None:
            dictionary = _categories(values)
        return pa.DictionaryArray.from_arrays(pa.array(values.cat.codes.to_numpy()), dictionary)
    if values.dtype.kind == "f":
        numbers = values.to_numpy(np.float64)
        missing = np.isnan(numbers)
        if not missing.any():
            return pa.array(numbers)
        return pc.fill_null(pc.cast(pa.array(numbers, mask=missing), pa.string()), "NA")
    if values.dtype.kind in "iub":
        return pa.array(values.to_numpy())
    return pa.array(values.astype(object).where(values.notna(), "NA").astype(str).to_numpy(object), type=pa.string())


def _categories(values: pd.Series):
    """A categorical column's categories as an Arrow string array (its dictionary in the TSV writer)."""
    import pyarrow as pa

    return pa.array(values.cat.categories.astype(str).to_numpy(object), type=pa.string())


def write_gwas_table(table: pd.DataFrame, path: Path) -> Path:
    """``table`` (from ``linear_gwas`` / ``gwas_scan``) as ``gwas.tsv`` with ``GWAS_FILE_COLUMNS``, atomically.

    Written by Arrow's CSV writer (C++; pandas' ``to_csv`` formats every number in Python and took most of the
    command's time on genome-wide tables); a P below the smallest double is written from its log (``p_text``).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    options = pa_csv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False)
    dictionaries = {c: _categories(table[c]) for c in GWAS_FILE_COLUMNS  # once, not once per slice
                    if isinstance(table[c].dtype, pd.CategoricalDtype)}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(("\t".join(GWAS_FILE_COLUMNS) + "\n").encode())
        for start in range(0, len(table), WRITE_ROWS):  # the text of one slice at a time: bounded memory
            part = table.iloc[start:start + WRITE_ROWS]
            columns = {c: _arrow_column(part[c], dictionaries.get(c)) for c in GWAS_FILE_COLUMNS}
            p, log10_p = part["P"].to_numpy(float), part["LOG10_P"].to_numpy(float)
            underflow = (p == 0) & np.isfinite(log10_p)
            if underflow.any():  # only those few rows are formatted in Python
                where = np.flatnonzero(underflow)
                text = columns["P"] if pa.types.is_string(columns["P"].type) else pc.cast(columns["P"], pa.string())
                columns["P"] = pc.replace_with_mask(
                    text, pa.array(underflow), pa.array(p_text(p[where], log10_p[where]).tolist(), type=pa.string()))
            pa_csv.write_csv(pa.Table.from_arrays(list(columns.values()), names=GWAS_FILE_COLUMNS), handle,
                             write_options=options)
    return path


def write_gwas_parquet(table: pd.DataFrame, path: Path) -> Path:
    """``table`` as ``gwas.parquet``, atomically: ``GWAS_FILE_COLUMNS`` with numbers as float64 (exact) and ``P``
    as a number, plus ``LOG10_P`` (-log10 P, which keeps a P below the smallest double); written in row groups of
    ``WRITE_ROWS`` (bounded memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [*GWAS_FILE_COLUMNS, "LOG10_P"]
    with atomic_path(path) as tmp:
        writer = None
        try:
            for start in range(0, max(len(table), 1), WRITE_ROWS):
                part = table.iloc[start:start + WRITE_ROWS][columns].copy()
                for column in ("#CHROM", "ID", "REF", "ALT", "A1", "TRAIT"):
                    part[column] = part[column].astype(str)
                batch = pa.Table.from_pandas(part, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, batch.schema, compression="zstd")
                writer.write_table(batch)
        finally:
            if writer is not None:
                writer.close()
    return path


GWAS_FORMATS = {"tsv": GWAS_FILE, "parquet": "gwas.parquet"}


def write_gwas_results(table: pd.DataFrame, genotypes: Genotypes, out_dir: Path,
                       say: Callable[[str], object], *, plots: bool = True,
                       seconds: dict[str, float] | None = None, output_format: str = "tsv",
                       plotters: ProcessPoolExecutor | None = None) -> dict[str, Any]:
    """gwas.tsv, lead_variants.tsv and (``plots``) the plots of ``table`` in ``out_dir``; per-trait summary
    (lambda, hits). ``seconds`` receives the wall time of each stage: write and clump (at the same time, the
    table written in a thread), plots (thinning here, then
    drawing in other processes, ``plotters`` when given (``gwas_plots.plot_workers``), that run while gwas.tsv
    is written and the leads are clumped) and plots_wait (the part of it after clumping: what the plots add to
    the command's wall time)."""
    from biolatent.discover.genetics.clump import clump
    from biolatent.discover.genetics.gwas import genomic_inflation
    from biolatent.discover.genetics.gwas_plots import start_gwas_plots

    seconds = {} if seconds is None else seconds
    out_dir.mkdir(parents=True, exist_ok=True)
    drawing = None
    if plots:
        plots_started = time.perf_counter()
        drawing = start_gwas_plots(table, out_dir / "plots", plotters)
    def write() -> None:
        started = time.perf_counter()
        if output_format == "parquet":
            write_gwas_parquet(table, out_dir / GWAS_FORMATS["parquet"])
        else:
            write_gwas_table(table, out_dir / GWAS_FILE)
        seconds["write"] = time.perf_counter() - started

    try:
        # gwas.tsv is formatted and written in a thread (Arrow releases the GIL) while the leads are clumped here
        with ThreadPoolExecutor(max_workers=1) as writer:
            writing = writer.submit(write)
            started = time.perf_counter()
            leads = clump(table, genotypes)
            with atomic_path(out_dir / LEADS_FILE) as tmp:
                leads.to_csv(tmp, sep="\t", index=False, na_rep="NA", float_format="%.10g")
            seconds["clump"] = time.perf_counter() - started
            writing.result()
        seconds["plots"] = seconds["plots_wait"] = 0.0  # not drawn with plots=False
        if drawing is not None:
            started = time.perf_counter()
            for future in drawing[0]:
                future.result()
            seconds["plots_wait"] = time.perf_counter() - started
            seconds["plots"] = time.perf_counter() - plots_started
    finally:
        if drawing is not None:
            drawing[1].shutdown(wait=False, cancel_futures=True)
    per_trait = {}
    for trait, part in table.groupby("TRAIT", sort=False, observed=True):
        log10_p = part["LOG10_P"].to_numpy(float)
        per_trait[str(trait)] = {
            "lambda_gc": genomic_inflation(part["P"].to_numpy(float)),
            "n_hits": int(np.sum(log10_p > -np.log10(GENOME_WIDE))),
            "n_leads": int((leads["TRAIT"] == trait).sum()),
            "max_log10_p": float(np.nanmax(log10_p)) if np.isfinite(log10_p).any() else None,
            "lead_variants": leads.loc[leads["TRAIT"] == trait, "ID"].astype(str).tolist()[:20],
        }
    for trait, values in per_trait.items():
        say(f"{trait}: lambda_GC = {values['lambda_gc']:.3f}, {values['n_hits']} variants at p < 5e-8, "
            f"{values['n_leads']} lead variants")
    return per_trait


def say_summary(summary: dict[str, Any], say: Callable[[str], object]) -> None:
    say(f"{summary['n_samples']} samples ({summary['n_genotyped_unmatched']} genotyped without phenotypes, "
        f"{summary['n_phenotyped_unmatched']} phenotyped without genotypes), {summary['n_variants']} variants, "
        f"{summary['n_traits']} traits")
    if summary["n_variants_untested"]:
        say(f"{summary['n_variants_untested']} variants untested (monomorphic, all calls missing or collinear "
            f"with the covariates): NA statistics")


def run_gwas(
    genotypes_path: str | Path,
    phenotypes_tsv: str | Path,
    covariates_tsv: str | Path | None,
    out_dir: str | Path,
    *,
    engine: str = "numpy",
    qc: QCConfig | None = None,
    n_pcs: int = 0,
    dosage: bool = False,
    plots: bool = True,
    spark_master: str | None = None,
    output_format: str = "tsv",
    say: Callable[[str], object] = print,
) -> Path:
    """Run the GWAS of every phenotype column; return the path of ``gwas.tsv`` (``output_format`` parquet:
    ``gwas.parquet``, :func:`write_gwas_parquet`). ``metrics.json`` records the
    wall time of each stage (``seconds``: read + QC + PCs + regression as ``scan``, with its parts qc, pcs and
    regression where the engine reports them, then write, clump, plots;
    the plots are drawn beside write and clump, ``plots_wait`` is the time they add after clumping)."""
    out_dir = Path(out_dir)
    plotters = None
    if plots:  # the drawing processes start (import pyplot) while the inputs are read and checked
        from biolatent.discover.genetics.gwas_plots import plot_workers

        plotters = plot_workers()
    try:
        return _run_gwas(genotypes_path, phenotypes_tsv, covariates_tsv, out_dir, engine=engine, qc=qc, n_pcs=n_pcs,
                         dosage=dosage, plots=plots, spark_master=spark_master, output_format=output_format,
                         say=say, plotters=plotters)
    finally:
        if plotters is not None:
            plotters.shutdown(wait=False, cancel_futures=True)


def _run_gwas(genotypes_path: str | Path, phenotypes_tsv: str | Path, covariates_tsv: str | Path | None,
              out_dir: Path, *, engine: str, qc: QCConfig | None, n_pcs: int, dosage: bool, plots: bool,
              spark_master: str | None, output_format: str, say: Callable[[str], object],
              plotters: ProcessPoolExecutor | None) -> Path:
    from biolatent.discover.genetics.engines import gwas_scan
    from biolatent.io import read_table

    phenotypes = read_table(phenotypes_tsv, id_column="id")
    covariates = None if covariates_tsv is None else read_table(covariates_tsv, id_column="id")
    started = time.perf_counter()
    table, genotypes, info = gwas_scan(genotypes_path, phenotypes, covariates, engine=engine, qc=qc, n_pcs=n_pcs,
                                       dosage=dosage, spark_master=spark_master, say=say)
    seconds = {"scan": time.perf_counter() - started, **info.get("seconds", {})}
    summary = table.attrs["summary"]
    say_summary(summary, say)

    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {"genotypes": str(genotypes_path), "phenotypes": str(phenotypes_tsv),
                "covariates": None if covariates_tsv is None else str(covariates_tsv), "engine": engine,
                "qc": None if qc is None else asdict(qc), "n_pcs": n_pcs, "dosage": dosage, "plots": plots,
                "output_format": output_format}
    write_text(out_dir / "config.yaml", yaml.safe_dump({"gwas": settings}, sort_keys=False))
    write_json(out_dir / "provenance.json", provenance.collect("gwas", **settings))
    per_trait = write_gwas_results(table, genotypes, out_dir, say, plots=plots, seconds=seconds,
                                   output_format=output_format, plotters=plotters)
    update_json(out_dir / "metrics.json", "gwas", {
        **settings, **{k: v for k, v in summary.items() if k != "covariates"}, "covariate_names": summary["covariates"],
        "qc_report": info.get("qc"), "genetic_pcs": info.get("pcs"), "genome_wide_p": GENOME_WIDE,
        "traits": per_trait, "seconds": seconds, "spark": info.get("spark"),
    })
    path = out_dir / GWAS_FORMATS[output_format]
    say(f"gwas -> {path}")
    return path
