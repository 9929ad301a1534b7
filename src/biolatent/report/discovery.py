"""The discovery section of the report: latent phenotypes, GWAS hits, h2 per trait, clusters (from ``discover/``).

``fill_discovery`` fills a report ``Section`` from the files ``biolatent discover`` writes (``summary.json``,
``h2.tsv``, ``rg.tsv``, ``gwas/lead_variants.tsv``, ``gwas/plots``, ``clusters``); ``write_discovery_report``
makes the discovery folder's own ``report.html`` with that one section.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from biolatent.discover.genetics.gwas_figures import plot_name
from biolatent.report.figures import png_file_to_base64
from biolatent.report.page import Fig, Section, Table, fmt, render
from biolatent.rundir import write_text

DISCOVER = "biolatent discover RUN/embeddings.h5ad --genotypes PLINK_PREFIX|VCF --out RUN/discover"
MAX_TRAIT_FIGURES = 12
MAX_LEADS = 30


def _read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t") if path.is_file() else pd.DataFrame()


def fill_discovery(run_dir: Path, section: Section) -> None:
    folder = (run_dir / section.source).parent
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    match, gwas = summary["id_matching"], summary["gwas"]
    section.notes.append(f"{match['n_matched']} samples with embeddings and genotypes ({match['n_only_phenotypes']} "
                         f"embedded only, {match['n_only_genotypes']} genotyped only).")
    qc = gwas.get("qc")
    if qc:
        section.notes.append(f"Genotype QC kept {qc['n_variants_after']} of {qc['n_variants_before']} variants and "
                             f"{qc['n_samples_after']} of {qc['n_samples_before']} samples.")
    section.notes.append(f"GWAS ({gwas['engine']} engine): {gwas['n_samples']} samples, {gwas['n_variants']} "
                         f"variants, {gwas['n_traits']} latent traits, covariates: "
                         f"{', '.join(gwas['covariate_names']) or 'none'}.")
    h2 = summary["h2"]["traits"]
    rows = []
    for trait, values in gwas["traits"].items():
        h = h2.get(trait, {})
        rows.append([trait, fmt(values["lambda_gc"]), str(values["n_hits"]), str(values["n_leads"]),
                     fmt(values["max_log10_p"]), fmt(h.get("h2")), fmt(h.get("se")),
                     f"[{fmt(h.get('ci_low'))}, {fmt(h.get('ci_high'))}]"])
    section.tables.append(Table(["trait", "lambda GC", "variants p<5e-8", "lead variants", "max -log10 p",
                                 f"h2 ({summary['h2']['method']})", "se", "95% CI"], rows,
                                "Latent traits: genome-wide hits and SNP heritability"))
    leads = _read_tsv(folder / "gwas" / "lead_variants.tsv")
    if len(leads):
        top = leads.sort_values("P").head(MAX_LEADS)
        columns = [c for c in top.columns if c != "SP2"]
        section.tables.append(Table(columns, [[fmt(v) for v in row] for row in top[columns].itertuples(index=False)],
                                    "Lead variants (clumped, p < 5e-8; TOTAL = variants in the clump)"))
    else:
        section.notes.append("No variant reached p < 5e-8 for any trait.")
    plots = folder / "gwas" / "plots"
    for trait in list(gwas["traits"])[:MAX_TRAIT_FIGURES]:
        for kind, caption in (("manhattan", "Manhattan plot"), ("qq", "QQ plot")):
            path = next(iter(sorted(plots.glob(f"{kind}_{plot_name(trait)}.png"))), None)
            if path is not None:
                section.figures.append(Fig(f"{kind}-{trait}", f"{caption} of {trait}", png_file_to_base64(path)))
    for path in sorted((folder / "clusters").glob("*.png")):
        section.figures.append(Fig(f"clusters-{path.stem}", f"Clusters: {path.stem.replace('_', ' ')}",
                                   png_file_to_base64(path)))
    rg = _read_tsv(folder / "rg.tsv")
    if len(rg):
        section.details.append(Table(list(rg.columns), [[fmt(v) for v in row] for row in rg.itertuples(index=False)],
                                     "Genetic correlation between latent traits (bivariate HE regression)"))


def write_discovery_report(folder: str | Path) -> Path:
    """``folder/report.html`` with the discovery section of ``folder`` (written by ``run_discover``)."""
    folder = Path(folder)
    section = Section("discovery", "Discovery: latent phenotypes, GWAS and heritability", "summary.json",
                      DISCOVER)
    fill_discovery(folder, section)
    return write_text(folder / "report.html", render(folder, [section]))
