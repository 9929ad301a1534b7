"""Real data: latent phenotypes of GEUVADIS expression -> GWAS on the real chr22 genotypes -> h2, and plink2.

GEUVADIS chr22 (registry ``geuvadis-chr22``: 358 people of 1000 Genomes phase 3, 85,485 SNPs, expression of
608 chr22 genes in lymphoblastoid cell lines). Embeddings = PCA of the standardised expression (``--dims``
components); ``biolatent discover`` then makes ``--traits`` latent phenotypes (ICA and PCA, each run on its
own), with the three shipped genotype PCs as covariates (population structure: the cohort mixes four European
populations and the Yoruba), default QC, GREML h2. For each lead variant the nearest gene and the genes that
load most on the trait are listed (and, for every trait, its best variant even when not significant).

Positive control on the same genotypes: the GWAS of each gene's own expression (608 traits) must find cis-eQTLs,
i.e. best variants within 1 Mb of the gene's TSS.

Check against plink2 ``--glm`` on the same QC'd genotypes, latent phenotypes and covariates: max relative
difference of BETA and of -log10 P over all results.

    python benchmarks/geuvadis_discover.py                 # ICA and PCA traits, 10 each
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.datasets import fetch
from biolatent.discover.genetics.qc import QCConfig, run_qc
from biolatent.embed import write_embeddings
from biolatent.io import read_table
from biolatent.io.genotypes import read_genotypes, write_plink
from biolatent.workflows.discover import DiscoverSettings, run_discover

GENOTYPE_PCS = ["genotypes_1_1_svd_PC1", "genotypes_1_1_svd_PC2", "genotypes_1_1_svd_PC3"]
H2_COLUMNS = ("decorrelate", "trait", "h2", "se", "ci_low", "ci_high", "lambda_gc", "n_hits", "best_variant",
              "best_p", "best_nearest_gene", "top_genes")
CIS_WINDOW_KB = 1000.0
LEAD_COLUMNS = ("decorrelate", "trait", "ID", "POS", "P", "BETA", "nearest_gene", "distance_kb", "top_genes")


def expression_embeddings(folder: Path, dims: int, out: Path) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """embeddings.h5ad (PCA scores), the standardised expression and the gene table."""
    from sklearn.decomposition import PCA

    expression = read_table(folder / "expression.tsv").astype(float)
    z = (expression - expression.mean()) / expression.std(ddof=0).replace(0.0, 1.0)
    scores = PCA(n_components=dims, random_state=0).fit_transform(z.to_numpy())
    obs = pd.DataFrame(index=pd.Index(expression.index, name="id"))
    path = write_embeddings(out / "embeddings.h5ad", scores.astype(np.float32), obs,
                            {"command": "geuvadis_discover", "embedding": f"PCA({dims}) of standardised expression"})
    genes = pd.read_csv(folder / "genes.tsv", sep="\t")
    return path, z, genes


def top_genes(trait: pd.Series, z: pd.DataFrame, genes: pd.DataFrame, k: int = 3) -> list[str]:
    """Genes whose expression correlates most (|r|) with the trait."""
    values = z.reindex(trait.index)
    r = values.apply(lambda column: np.corrcoef(column, trait)[0, 1] if column.std() > 0 else 0.0)
    best = r.abs().sort_values(ascending=False).index[:k]
    return [f"{g.split('.')[0]} (r={r[g]:.2f})" for g in best]


def nearest_gene(pos: int, genes: pd.DataFrame) -> tuple[str, float]:
    tss = np.where(genes["strand"] == "+", genes["start"], genes["end"]).astype(np.int64)
    i = int(np.argmin(np.abs(tss - pos)))
    return str(genes["gene"].iloc[i]).split(".")[0], float(abs(tss[i] - pos) / 1000.0)


def single_gene_control(prefix: str, expression: pd.DataFrame, covariates: pd.DataFrame, genes: pd.DataFrame,
                        qc: QCConfig, chunk: int = 64) -> dict[str, Any]:
    """Positive control: GWAS of each gene's own expression; eGenes at 5e-8 and how many best hits are cis."""
    from biolatent.discover.genetics.gwas import linear_gwas
    from biolatent.discover.phenotypes import inverse_normal_transform

    genotypes, _ = run_qc(read_genotypes(prefix), qc)
    traits = pd.DataFrame(inverse_normal_transform(expression.reindex(genotypes.samples).to_numpy()),
                          index=genotypes.samples, columns=expression.columns)
    tss = dict(zip(genes["gene"], np.where(genes["strand"] == "+", genes["start"], genes["end"]), strict=True))
    best = []
    for start in range(0, traits.shape[1], chunk):
        table = linear_gwas(genotypes, traits.iloc[:, start:start + chunk], covariates.reindex(genotypes.samples))
        best_rows = table.groupby("TRAIT", sort=False, observed=True)["LOG10_P"].idxmax()
        top = table.loc[best_rows, ["TRAIT", "POS", "LOG10_P"]]
        best.append(top)
    best = pd.concat(best, ignore_index=True)
    best["distance_kb"] = np.abs(best["POS"].to_numpy() - best["TRAIT"].map(tss).to_numpy()) / 1000.0
    egenes = best[best["LOG10_P"] > -np.log10(5e-8)]
    return {"n_genes": len(best), "n_egenes": len(egenes),
            "n_egenes_cis": int((egenes["distance_kb"] <= CIS_WINDOW_KB).sum()),
            "median_distance_kb": float(egenes["distance_kb"].median()) if len(egenes) else None,
            "max_log10_p": float(best["LOG10_P"].max())}


def plink2_agreement(genotypes_prefix: str, out_dir: Path, phenotypes: pd.DataFrame, covariates: pd.DataFrame,
                     qc: QCConfig) -> dict[str, Any]:
    """plink2 --glm on the QC'd genotypes, the latent phenotypes and covariates vs biolatent's gwas.tsv."""
    from biolatent.discover.genetics.gwas import linear_gwas

    genotypes, _ = run_qc(read_genotypes(genotypes_prefix), qc)
    ids = [s for s in genotypes.samples if s in set(phenotypes.index)]
    position = {s: i for i, s in enumerate(genotypes.samples)}
    genotypes = genotypes.subset(sample_index=np.array([position[s] for s in ids]))
    ours = linear_gwas(genotypes, phenotypes.reindex(ids), covariates.reindex(ids))
    with tempfile.TemporaryDirectory(prefix="geuvadis-plink2-") as tmp:
        folder = Path(tmp)
        write_plink(genotypes, folder / "data")
        for frame, name in ((phenotypes.reindex(ids), "pheno.txt"), (covariates.reindex(ids), "covar.txt")):
            table = frame.copy()
            table.insert(0, "IID", table.index)
            table.insert(0, "#FID", table.index)
            table.to_csv(folder / name, sep="\t", index=False, na_rep="NA")
        command = ["plink2", "--bfile", "data", "--pheno", "pheno.txt", "--covar", "covar.txt", "--glm", "hide-covar",
                   "log10", "--threads", "2", "--out", "out"]
        subprocess.run(command, cwd=folder, check=True, capture_output=True)
        rel_beta, rel_logp = [], []
        for trait in phenotypes.columns:
            ref = pd.read_csv(folder / f"out.{trait}.glm.linear", sep="\t", na_values=["NA"])
            mine = ours[ours.TRAIT == trait].reset_index(drop=True)
            assert (ref.ID.to_numpy() == mine.ID.to_numpy()).all()
            sign = np.where(ref.A1 == ref.ALT, 1.0, -1.0)
            ok = (ref.BETA.notna() & mine.BETA.notna()).to_numpy()
            rel_beta.append((np.abs(sign * ref.BETA - mine.BETA) / np.abs(mine.BETA))[ok].to_numpy())
            rel_logp.append((np.abs(ref.LOG10_P - mine.LOG10_P) / np.abs(mine.LOG10_P))[ok].to_numpy())
    beta, logp = np.concatenate(rel_beta), np.concatenate(rel_logp)
    return {"n_compared": int(beta.size), "max_rel_diff_beta": float(beta.max()),
            "median_rel_diff_beta": float(np.median(beta)), "max_rel_diff_log10_p": float(logp.max()),
            "median_rel_diff_log10_p": float(np.median(logp))}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, default=32, help="PCA dimensions of the expression embeddings")
    parser.add_argument("--traits", type=int, default=10, help="latent phenotypes per decorrelation")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the discover folders here")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    start = time.perf_counter()
    folder = fetch("geuvadis-chr22", progress=lambda message: print(message, flush=True))
    prefix = str(folder / "geuvadis_chr22")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="geuvadis-discover-"))
    work.mkdir(parents=True, exist_ok=True)
    embeddings, z, genes = expression_embeddings(folder, args.dims, work)
    covariates = read_table(folder / "covariates.tsv")[GENOTYPE_PCS].astype(float)
    covariates_path = work / "genotype_pcs.tsv"
    covariates.rename_axis("id").to_csv(covariates_path, sep="\t")
    h2_rows, lead_rows, agreement = [], [], {}
    for how in ("ica", "pca"):
        out = work / f"discover-{how}"
        settings = DiscoverSettings(decorrelate=how, n_components=args.traits, n_pcs=0, seed=0)
        run_discover(embeddings, prefix, out, covariates_tsv=covariates_path, settings=settings,
                     say=lambda message: print(message, flush=True))
        phenotypes = read_table(out / "phenotypes.tsv")
        summary = pd.read_json(out / "summary.json", typ="series")
        h2 = pd.read_csv(out / "h2.tsv", sep="\t").set_index("trait")
        leads = pd.read_csv(out / "gwas" / "lead_variants.tsv", sep="\t")
        gwas = pd.read_csv(out / "gwas" / "gwas.tsv", sep="\t", usecols=["ID", "POS", "TRAIT", "P"])
        for trait in phenotypes.columns:
            gw = summary["gwas"]["traits"][trait]
            genes_of_trait = top_genes(phenotypes[trait], z, genes)
            part = gwas[gwas.TRAIT == trait]
            top = part.loc[part.P.idxmin()]
            h2_rows.append({"decorrelate": how, "trait": trait, **h2.loc[trait, ["h2", "se", "ci_low", "ci_high"]],
                            "lambda_gc": gw["lambda_gc"], "n_hits": gw["n_hits"], "best_variant": top.ID,
                            "best_p": float(top.P), "best_nearest_gene": nearest_gene(int(top.POS), genes)[0],
                            "top_genes": ", ".join(genes_of_trait)})
            for lead in leads[leads.TRAIT == trait].itertuples():
                gene, distance = nearest_gene(int(lead.POS), genes)
                lead_rows.append({"decorrelate": how, "trait": trait, "ID": lead.ID, "POS": int(lead.POS),
                                  "P": float(lead.P), "BETA": float(lead.BETA), "nearest_gene": gene,
                                  "distance_kb": distance, "top_genes": ", ".join(genes_of_trait)})
        if shutil.which("plink2"):
            qc = settings.qc or QCConfig()
            agreement[how] = plink2_agreement(prefix, out, phenotypes, covariates, qc)
    expression = read_table(folder / "expression.tsv").astype(float)
    control = single_gene_control(prefix, expression, covariates, genes, QCConfig())
    seconds = time.perf_counter() - start
    agree_text = "; ".join(
        f"{how}: {a['n_compared']:,} results, max relative difference BETA {a['max_rel_diff_beta']:.2e} (median "
        f"{a['median_rel_diff_beta']:.1e}), -log10 P {a['max_rel_diff_log10_p']:.2e} (median "
        f"{a['median_rel_diff_log10_p']:.1e})" for how, a in agreement.items()) or "plink2 not on PATH"
    markdown = (f"# GEUVADIS chr22: latent expression phenotypes -> GWAS -> h2 ({seconds:.0f} s)\n\n"
                f"Embeddings: PCA({args.dims}) of the standardised expression of 608 genes, 358 people; "
                f"{args.traits} latent traits by ICA and by PCA; covariates: 3 genotype PCs; default QC.\n\n"
                f"## h2 (GREML) and GWAS per latent trait\n\n{markdown_table(h2_rows, H2_COLUMNS)}\n\n"
                f"## Lead variants (p < 5e-8, clumped)\n\n"
                f"{markdown_table(lead_rows, LEAD_COLUMNS) if lead_rows else 'none'}\n\n"
                f"## Positive control: each gene's own expression\n\n"
                f"GWAS of the (inverse-normal) expression of each of the {control['n_genes']} genes, same "
                f"genotypes, QC and covariates: {control['n_egenes']} genes have a variant at p < 5e-8; for "
                f"{control['n_egenes_cis']} of them the best variant lies within {CIS_WINDOW_KB:.0f} kb of the "
                f"gene's TSS (cis-eQTL; median distance {control['median_distance_kb'] or float('nan'):.0f} kb); "
                f"strongest -log10 P {control['max_log10_p']:.1f}.\n\n"
                f"## Agreement with plink2 --glm\n\n{agree_text}. plink2 prints 6 significant digits.\n")
    print(markdown)
    payload = {"h2": h2_rows, "leads": lead_rows, "plink2_agreement": agreement, "single_gene_control": control,
               "meta": {**{k: str(v) for k, v in vars(args).items()}, "seconds": seconds, "host": host_info()}}
    json_path, md_path = write_results(args.out_dir, "geuvadis_discover-cpu", payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
