"""The whole chain against a truth: genotype -> heart phantom -> SSL latents -> GWAS -> h2.

1. msprime genotypes (``--people``, two 2 Mb chromosomes, MAF >= 0.05);
2. heart phantom parameters driven by them (``heart_parameters``: cavity volume h2 0.6, wall thickness 0.4,
   ejection fraction 0.4, twist 0.3; ``--causal`` causal variants each, random effects);
3. one 3D+time cine per person (``simulate_heart_cohort``), summarised for the 2D encoder as an RGB image
   (mid short-axis at end-diastole and end-systole, long axis at end-diastole);
4. SimCLR pre-training on those images without any label (``biolatent pretrain``), embeddings;
5. ``biolatent discover`` on the embeddings and the genotypes (latent traits by PCA of the embeddings
   residualised on the scanner site, 2 genetic PCs, GREML);
6. the truth arm: GREML and GWAS of the true parameters on the same genotypes.

Reported: how well the latents encode each parameter (cross-validated ridge R^2 from the embeddings; best
|r| of a latent trait), h2 of the true parameters and of the latent traits, and whether the latent traits'
lead variants hit the causal loci of the parameters (within 250 kb of a causal variant).

    python benchmarks/genotype_image_chain.py                   # 600 people, 20 epochs (~5 min on 2 cores)
    python benchmarks/genotype_image_chain.py --quick           # 150 people, 2 epochs (smoke run)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.config import load_config
from biolatent.discover.genetics.grm import genetic_relationship_matrix
from biolatent.discover.genetics.heritability import h2_table
from biolatent.discover.genetics.simulate import heart_parameters, simulate_genotypes
from biolatent.embed import read_embeddings
from biolatent.io.genotypes import write_plink
from biolatent.workflows.discover import DiscoverSettings, run_discover
from biolatent.workflows.embed import embed_run
from biolatent.workflows.pretrain import pretrain

H2 = {"cavity_volume": 0.6, "wall_thickness": 0.4, "ejection_fraction": 0.4, "twist": 0.3}
LOCUS_KB = 250.0
PARAM_COLUMNS = ("parameter", "h2_simulated", "h2_realised", "h2_true_param", "se_true_param", "leads_true_param",
                 "leads_true_at_causal", "ridge_r2_ssl", "ridge_r2_random", "best_latent", "best_latent_abs_r",
                 "h2_best_latent", "se_best_latent")
LATENT_COLUMNS = ("trait", "h2", "se", "n_leads", "leads_at_causal_loci", "max_log10_p")


def ridge_r2(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """5-fold cross-validated R^2 of a ridge regression (alpha by inner CV) of ``y`` on standardised ``x``."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    predicted = cross_val_predict(model, x, y, cv=KFold(5, shuffle=True, random_state=seed))
    return float(1.0 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))


def _positions(ids: list[str]) -> list[tuple[str, int]]:
    return [(v.split(":")[0], int(v.split(":")[1])) for v in ids]


def at_causal_locus(variant: str, causal: list[tuple[str, int]]) -> bool:
    chrom, pos = variant.split(":")[0], int(variant.split(":")[1])
    return any(c == chrom and abs(p - pos) <= LOCUS_KB * 1000 for c, p in causal)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=None, help="default 600 (150 with --quick)")
    parser.add_argument("--epochs", type=int, default=None, help="default 20 (2 with --quick)")
    parser.add_argument("--causal", type=int, default=5, help="causal variants per parameter")
    parser.add_argument("--traits", type=int, default=8, help="latent traits (PCA of the embeddings)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.people = args.people or (150 if args.quick else 600)
    args.epochs = args.epochs or (2 if args.quick else 20)
    start = time.perf_counter()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="chain-"))
    work.mkdir(parents=True, exist_ok=True)

    from biolatent.data.simulate.heart import simulate_heart_cohort

    genotypes = simulate_genotypes(args.people, sequence_length=2_000_000, n_chromosomes=2, seed=args.seed)
    prefix = write_plink(genotypes, work / "genotypes")
    parameters, scores, causal = heart_parameters(genotypes, H2, n_causal=args.causal, seed=args.seed + 1)
    realised = scores.attrs["realised_h2"]
    meta_path = simulate_heart_cohort(len(parameters), work / "cohort", seed=args.seed + 2, parameters=parameters,
                                      write_png=True)
    meta = pd.read_csv(meta_path, sep="\t", dtype={"id": str}).set_index("id")
    print(f"{genotypes.n_samples} people, {genotypes.n_variants} variants; cohort -> {meta_path}", flush=True)

    config = load_config({
        "data": {"modality": "image2d", "path": str(work / "cohort" / "slices"), "metadata": str(meta_path),
                 "image_size": 32},
        "method": {"name": "simclr", "temperature": 0.2},
        "model": {"name": "resnet", "widths": [16, 32, 64, 128]},
        "train": {"epochs": args.epochs, "batch_size": 128, "lr": 0.001, "seed": args.seed},
    })
    run = work / "run"
    pretrain(config, run, progress=False, say=lambda m: print(m, flush=True))
    embeddings_path = embed_run(run, say=lambda m: print(m, flush=True))
    adata = read_embeddings(embeddings_path)
    ids = [str(s) for s in adata.obs_names]
    x = np.asarray(adata.obsm["X_biolatent"], float)

    import torch

    from biolatent.build import build_method
    from biolatent.data.loaders import load_samples
    from biolatent.embed import compute_embeddings

    samples = load_samples(config.data)
    torch.manual_seed(12345)
    random_x = np.asarray(compute_embeddings(build_method(config, samples.info).eval(), samples.x), float)
    random_ids = [str(s) for s in samples.obs.index]

    out = work / "discover"
    covariates_path = work / "site.tsv"
    meta[["site"]].rename_axis("id").to_csv(covariates_path, sep="\t")  # scanner site: a known nuisance
    settings = DiscoverSettings(decorrelate="pca", n_components=args.traits, n_pcs=2, seed=args.seed)
    run_discover(embeddings_path, prefix, out, covariates_tsv=covariates_path, settings=settings,
                 say=lambda m: print(m, flush=True))
    latent = pd.read_csv(out / "phenotypes.tsv", sep="\t", dtype={"id": str}).set_index("id")
    latent_h2 = pd.read_csv(out / "h2.tsv", sep="\t").set_index("trait")
    leads = pd.read_csv(out / "gwas" / "lead_variants.tsv", sep="\t")
    summary = pd.read_json(out / "summary.json", typ="series")

    from biolatent.discover.genetics.clump import clump
    from biolatent.discover.genetics.gwas import linear_gwas

    truth_gwas = linear_gwas(genotypes, parameters)
    truth_leads = clump(truth_gwas, genotypes)
    grm, _ = genetic_relationship_matrix(genotypes)
    truth_h2 = h2_table(parameters, grm, [str(s) for s in genotypes.samples], None, "greml").set_index("trait")
    all_causal = [pos for name in H2 for pos in _positions(causal[name])]

    param_rows = []
    for name, simulated in H2.items():
        y = meta.loc[ids, name].to_numpy(float)
        r = latent.apply(lambda column, y=meta.loc[latent.index, name].to_numpy(float): np.corrcoef(column, y)[0, 1])
        best = r.abs().idxmax()
        own_leads = truth_leads.loc[truth_leads.TRAIT == name, "ID"].astype(str).tolist()
        param_rows.append({
            "parameter": name, "h2_simulated": simulated, "h2_realised": realised[name],
            "h2_true_param": truth_h2.loc[name, "h2"], "se_true_param": truth_h2.loc[name, "se"],
            "leads_true_param": len(own_leads),
            "leads_true_at_causal": sum(at_causal_locus(v, _positions(causal[name])) for v in own_leads),
            "ridge_r2_ssl": ridge_r2(x, y),
            "ridge_r2_random": ridge_r2(random_x, meta.loc[random_ids, name].to_numpy(float)),
            "best_latent": best, "best_latent_abs_r": float(abs(r[best])), "h2_best_latent": latent_h2.loc[best, "h2"],
            "se_best_latent": latent_h2.loc[best, "se"]})
    latent_rows = []
    for trait in latent.columns:
        trait_leads = leads.loc[leads.TRAIT == trait, "ID"].astype(str).tolist()
        latent_rows.append({
            "trait": trait, "h2": latent_h2.loc[trait, "h2"], "se": latent_h2.loc[trait, "se"],
            "n_leads": len(trait_leads),
            "leads_at_causal_loci": sum(at_causal_locus(v, all_causal) for v in trait_leads),
            "max_log10_p": summary["gwas"]["traits"][trait]["max_log10_p"]})
    seconds = time.perf_counter() - start
    n_leads = sum(r["n_leads"] for r in latent_rows)
    n_true = sum(r["leads_at_causal_loci"] for r in latent_rows)
    markdown = (f"# Genotype -> heart phantom -> SimCLR latents -> GWAS -> h2 ({args.people} people, "
                f"{genotypes.n_variants} variants, {args.epochs} epochs, {seconds:.0f} s)\n\n"
                "## Parameters: the truth and what the latents carry\n\n"
                f"{markdown_table(param_rows, PARAM_COLUMNS)}\n\n"
                f"h2_realised: genetic share of the parameter's variance in this cohort (the truth GREML "
                f"estimates); h2_true_param: GREML of the simulated parameter itself (the ceiling for a latent "
                f"trait); leads_true_param: clumped lead variants (p < 5e-8) of the parameter's own GWAS, and how "
                f"many lie within {LOCUS_KB:.0f} kb of its causal variants; ridge_r2: 5-fold CV R^2 of "
                f"the parameter from the SSL embeddings and from the same encoder at random initialisation; "
                f"best_latent: the latent trait (PCA of the site-adjusted embeddings) most correlated with it.\n\n"
                f"## Latent traits\n\n{markdown_table(latent_rows, LATENT_COLUMNS)}\n\n"
                f"{n_true} of {n_leads} lead variants of the latent traits lie within {LOCUS_KB:.0f} kb of a causal "
                f"variant of some parameter ({args.causal} causal variants per parameter).\n")
    print(markdown)
    payload = {"parameters": param_rows, "latent_traits": latent_rows, "causal": causal,
               "meta": {**{k: str(v) for k, v in vars(args).items()}, "seconds": seconds, "host": host_info()}}
    stem = "genotype_image_chain-cpu" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
