"""The cardiac chain against a truth, on 3D+time cines: genotype -> heart cine -> features -> phenotype -> h2.

The review's first result: a heritable cardiac trait predicted from MRI by self-supervised features and a linear
probe trained on few labels has an h2 7% above that of the same trait predicted by a fully supervised CNN.
Per replicate cohort (``--replicates``, seeds 0, 1, ...):

1. msprime genotypes (``--people``, two 2 Mb chromosomes, MAF >= 0.05); heart phantom parameters driven by them
   (``heart_parameters``: cavity volume h2 0.6, wall thickness 0.4, ejection fraction 0.4, twist 0.3, ``--causal``
   causal variants each); one 3D+time cine per person (``simulate_heart_cohort``, 10 frames);
2. a random ``--label-fraction`` of the people have their four parameters measured (the labels); the rest are
   the held-out people every number below is computed on;
3. arms, all with the cine encoder of ``configs/cine/heart_simclr.yaml`` (early fusion, its domain views: the
   same 3D view for every frame of a cycle) and its training settings (``--epochs``):
   ``simclr`` (that config, no label), ``contig`` (``configs/cine/heart_contig.yaml``: the images against the
   people's own genotypes, no label), ``random_init`` (the encoder untrained), each followed by a ridge probe
   (``evaluate.probes.RidgeProbe``, its strength by leave-one-out on the labelled people) per parameter; and
   ``supervised``: the same encoder trained from scratch to regress the four parameters on the labelled people
   (the budget: as many optimizer steps as the SSL pre-training at most, learning rate and step chosen on a
   validation fifth of the labelled people, as ``biolatent evaluate`` does);
4. for every arm and parameter, on the held-out people: Pearson r of the predicted with the true parameter,
   GREML h2 of the predicted phenotype, and the lead variants of its GWAS (p < 5e-8, clumped) within 250 kb of a
   causal variant; next to the GREML h2 of the true parameter on the same people (the ceiling);
5. the review's discovery claim, clusters of latent embeddings go with genetic risk scores: the held-out people's
   features of each label-free arm (``simclr``, ``contig``, ``random_init``; ``truth``: the four standardised true
   parameters) clustered as ``biolatent discover`` does by default (Leiden, 15 neighbours, resolution 1), then
   Kruskal-Wallis of each parameter's true polygenic score across the clusters (``discover.associations``, BH
   q-values over the five scores of an arm): the scores are ``discover.genetics.pgs`` with the simulated effects
   as weights (the genetic value itself; a real study would take weights from an external GWAS), plus a negative
   control ``pgs_null`` (five random non-causal variants, standard-normal weights) that no arm should find.

Intervals: mean [95% t-interval] over the replicate cohorts (each a new genotype draw, cohort, label subset,
pre-training and supervised seed: they cover all of these sources of variation at once).

    python benchmarks/genotype_image_chain.py              # 2000 people, 3 replicates, 20 epochs
    python benchmarks/genotype_image_chain.py --quick      # 60 people, 2 replicates, 1 epoch (smoke run)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.build import load_config
from biolatent.discover.associations import cluster_associations
from biolatent.discover.clusters import cluster
from biolatent.discover.genetics.clump import clump
from biolatent.discover.genetics.grm import genetic_relationship_matrix
from biolatent.discover.genetics.gwas import linear_gwas
from biolatent.discover.genetics.heritability import h2_table
from biolatent.discover.genetics.pgs import polygenic_score
from biolatent.discover.genetics.simulate import heart_parameters, simulate_genotypes
from biolatent.evaluate.metrics import mean_ci
from biolatent.evaluate.probes import RidgeProbe
from biolatent.io.genotypes import write_plink

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "cine"
H2 = {"cavity_volume": 0.6, "wall_thickness": 0.4, "ejection_fraction": 0.4, "twist": 0.3}
LOCUS_KB = 250.0
ARMS = ("simclr", "contig", "random_init", "supervised")
LATENT_ARMS = ("truth", "simclr", "contig", "random_init")  # arms with label-free features to cluster
NULL_PGS = "pgs_null"
REPLICATE_FILE = "replicate.json"
REVIEW_GAIN = 0.07  # the review: h2 of the SSL-predicted trait 7% above that of the supervised CNN's


def at_causal_locus(variant: str, causal: list[tuple[str, int]]) -> bool:
    chrom, pos = variant.split(":")[0], int(variant.split(":")[1])
    return any(c == chrom and abs(p - pos) <= LOCUS_KB * 1000 for c, p in causal)


def _positions(ids: list[str]) -> list[tuple[str, int]]:
    return [(v.split(":")[0], int(v.split(":")[1])) for v in ids]


def make_cohort(work: Path, people: int, n_causal: int, seed: int, grid) -> dict[str, Any]:
    from biolatent.data.simulate.heart import simulate_heart_cohort

    genotypes = simulate_genotypes(people, sequence_length=2_000_000, n_chromosomes=2, seed=seed)
    prefix = write_plink(genotypes, work / "genotypes")
    parameters, scores, causal = heart_parameters(genotypes, H2, n_causal=n_causal, seed=seed + 1)
    if not (work / "cohort" / "meta.tsv").is_file():
        simulate_heart_cohort(len(parameters), work / "cohort", seed=seed + 2, parameters=parameters, grid=grid)
    return {"genotypes": genotypes, "prefix": prefix, "parameters": parameters, "causal": causal,
            "cohort": work / "cohort", "pgs": true_polygenic_scores(genotypes, scores.attrs["effects"], causal, seed)}


def true_polygenic_scores(genotypes, effects: dict[str, dict], causal: dict[str, list[str]], seed: int) -> pd.DataFrame:
    """Per person: each parameter's true polygenic score (its simulated effects as weights) and ``pgs_null``."""
    columns = {f"pgs_{name}": polygenic_score(genotypes, pd.DataFrame(effects[name])) for name in H2}
    taken = {v for ids in causal.values() for v in ids}
    variants = genotypes.variants[~genotypes.variants["id"].astype(str).isin(taken)]
    rng = np.random.default_rng(seed + 4)
    chosen = variants.iloc[np.sort(rng.choice(len(variants), 5, replace=False))]
    null = pd.DataFrame({"ID": chosen["id"].astype(str), "A1": chosen["alt"].astype(str),
                         "BETA": rng.standard_normal(5)})
    columns[NULL_PGS] = polygenic_score(genotypes, null)
    return pd.DataFrame(columns)


def cluster_rows(arm: str, features: np.ndarray, pgs: pd.DataFrame, seed: int) -> list[dict]:
    """Leiden clusters of the held-out people's features (``discover``'s defaults) against the polygenic scores."""
    labels = cluster(features, "leiden", n_neighbors=15, resolution=1.0, seed=seed)
    table = cluster_associations(labels, pgs).set_index("column")
    return [{"arm": arm, "score": column, "n_clusters": int(labels.max() + 1), "p": float(table.loc[column, "p"]),
             "q": float(table.loc[column, "q"]), "epsilon2": float(table.loc[column, "effect"])}
            for column in pgs.columns]


def ssl_features(arm: str, cohort: dict, overrides: list[str], run_dir: Path, say) -> tuple[list[str], np.ndarray]:
    """Pre-train (``simclr``, ``contig``) or build (``random_init``) the arm's encoder; its features of every cine."""
    import torch

    from biolatent.build import build_method, fit_input_statistics
    from biolatent.embed import compute_embeddings, read_embeddings
    from biolatent.workflows.embed import embed_run
    from biolatent.workflows.pretrain import pretrain

    config_file = CONFIGS / ("heart_contig.yaml" if arm == "contig" else "heart_simclr.yaml")
    extra = [f"data.genotypes={cohort['prefix']}", "data.max_variants=null"] if arm == "contig" else []
    config = load_config(config_file, [f"data.path={cohort['cohort']}", *overrides, *extra])
    if arm == "random_init":
        samples = cohort_samples(cohort, overrides)
        torch.manual_seed(config.train.seed)
        method = fit_input_statistics(build_method(config, samples.info), samples.x)
        return samples.ids, compute_embeddings(method, samples.x, batch_size=64)
    if not (run_dir / "embeddings.h5ad").is_file():
        pretrain(config, run_dir, progress=False, say=say)
        embed_run(run_dir, say=say)
    adata = read_embeddings(run_dir / "embeddings.h5ad")
    return [str(s) for s in adata.obs_names], np.asarray(adata.obsm["X_biolatent"], dtype=np.float64)


def cohort_samples(cohort: dict, overrides: list[str]):
    """The cohort's cines as the SimCLR config loads them, loaded once per replicate (random-init, supervised)."""
    from biolatent.data.loaders import load_samples

    if "samples" not in cohort:
        config = load_config(CONFIGS / "heart_simclr.yaml", [f"data.path={cohort['cohort']}", *overrides])
        cohort["samples"] = load_samples(config.data)
    return cohort["samples"]


def supervised_predictions(cohort: dict, overrides: list[str], labelled: np.ndarray, held_out: np.ndarray,
                           steps: int, seed: int) -> tuple[list[str], np.ndarray, dict]:
    """The cine encoder trained from scratch on the labelled people's four parameters -> predictions (held-out)."""
    from biolatent.build import build_encoder, build_views, fit_input_statistics
    from biolatent.train.supervised import supervised_baseline
    from biolatent.workflows.evaluate import validation_split

    config = load_config(CONFIGS / "heart_simclr.yaml", [f"data.path={cohort['cohort']}", *overrides])
    samples = cohort_samples(cohort, overrides)
    targets = cohort["parameters"].loc[samples.ids, list(H2)].to_numpy(np.float64)
    position = {s: i for i, s in enumerate(samples.ids)}

    def make_encoder():
        return fit_input_statistics(build_encoder(config, samples.info), samples.x)

    runs: list[dict] = []  # early stopping on a random fifth of the labelled people, as `evaluate` does
    finetune = supervised_baseline(make_encoder, lambda: build_views(config, samples.info), samples.x, targets, None,
                                   config.train, steps, task="regression", validation_split=validation_split(),
                                   on_trained=runs.append)
    train_idx = np.array([position[s] for s in labelled])
    test_idx = np.array([position[s] for s in held_out])
    return list(held_out), finetune(train_idx, test_idx, seed), runs[0]


def score_arm(arm: str, predicted: pd.DataFrame, cohort: dict, grm: np.ndarray, held_out: list[str]) -> list[dict]:
    """Per parameter: r with the truth, GREML h2 and lead variants at causal loci of the predicted phenotype."""
    genotypes = cohort["genotypes"]
    truth = cohort["parameters"].loc[held_out]
    frame = predicted.loc[held_out]
    h2 = h2_table(frame, grm, [str(s) for s in genotypes.samples], None, "greml").set_index("trait")
    leads = clump(linear_gwas(genotypes, frame), genotypes)
    rows = []
    for name in H2:
        own = leads.loc[leads.TRAIT == name, "ID"].astype(str).tolist()
        rows.append({"arm": arm, "parameter": name, "r_truth": float(np.corrcoef(frame[name], truth[name])[0, 1]),
                     "h2": float(h2.loc[name, "h2"]), "se": float(h2.loc[name, "se"]), "n_leads": len(own),
                     "leads_at_causal": sum(at_causal_locus(v, _positions(cohort["causal"][name])) for v in own)})
    return rows


def run_replicate(rep: int, args, work: Path, say) -> dict[str, list[dict]]:
    """Rows of every arm x parameter and of every clustered arm x score; kept in the replicate's folder so an
    interrupted run resumes at the first unfinished replicate."""
    from biolatent.data.simulate.heart import Grid

    rep_dir = work / f"rep{rep}"
    stored = json.loads((rep_dir / REPLICATE_FILE).read_text()) if (rep_dir / REPLICATE_FILE).is_file() else None
    if stored is not None and stored.get("supervised") is not None:
        return stored
    rep_dir.mkdir(parents=True, exist_ok=True)
    grid = Grid(shape=(32, 32, 16), spacing=(5.25, 5.25, 10.5), n_frames=10)  # the default field of view, coarser
    cohort = make_cohort(rep_dir, args.people, args.causal, seed=100 * rep, grid=grid)
    ids = [str(s) for s in cohort["genotypes"].samples]
    rng = np.random.default_rng(100 * rep + 3)
    n_labelled = max(4, round(args.label_fraction * len(ids)))
    labelled_idx = np.sort(rng.choice(len(ids), n_labelled, replace=False))
    labelled = [ids[i] for i in labelled_idx]
    held_out = [s for s in ids if s not in set(labelled)]
    overrides = [f"train.epochs={args.epochs}", f"train.seed={rep}", "data.image_size=16"]
    grm, _ = genetic_relationship_matrix(cohort["genotypes"])
    if stored is not None:  # a replicate stored before the supervised arm recorded its choice: re-run that arm only
        return rerun_supervised(stored, cohort, grm, args, overrides, labelled, held_out, rep, rep_dir, say)
    truth = cohort["parameters"][list(H2)].copy()
    rows = [{**r, "arm": "truth", "r_truth": 1.0} for r in score_arm("truth", truth, cohort, grm, held_out)]
    pgs = cohort["pgs"].loc[held_out]
    standard = truth.loc[held_out].to_numpy(float)
    clusters = cluster_rows("truth", (standard - standard.mean(0)) / standard.std(0), pgs, seed=rep)
    steps = None
    for arm in ARMS[:-1]:
        started = time.perf_counter()
        feature_ids, features = ssl_features(arm, cohort, overrides, rep_dir / arm, say)
        at = {s: i for i, s in enumerate(feature_ids)}
        lab = features[[at[s] for s in labelled]]
        predicted = pd.DataFrame(index=pd.Index(held_out))
        for name in H2:
            probe = RidgeProbe().fit(lab, cohort["parameters"].loc[labelled, name].to_numpy(float))
            predicted[name] = probe.predict(features[[at[s] for s in held_out]])
        rows += score_arm(arm, predicted, cohort, grm, held_out)
        clusters += cluster_rows(arm, features[[at[s] for s in held_out]], pgs, seed=rep)
        say(f"[rep {rep}] {arm}: {time.perf_counter() - started:.0f} s")
        if arm == "simclr" and steps is None:
            steps = _ssl_steps(len(ids), args.epochs)
    supervised_rows, run = supervised_arm(cohort, grm, overrides, labelled, held_out, steps, rep, say)
    rows += supervised_rows
    result = {"rows": [{**r, "replicate": rep, "n_labelled": n_labelled, "n_held_out": len(held_out)} for r in rows],
              "clusters": [{**r, "replicate": rep} for r in clusters], "supervised": run}
    (rep_dir / REPLICATE_FILE).write_text(json.dumps(result))
    return result


def _ssl_steps(people: int, epochs: int) -> int:
    """The SSL arm's optimizer steps (evaluate's budget rule): the supervised arm's step budget."""
    from biolatent.train.supervised import pretraining_steps

    ssl_train = load_config(CONFIGS / "heart_simclr.yaml").train.model_copy(update={"epochs": epochs})
    return pretraining_steps(people, ssl_train)


def supervised_arm(cohort: dict, grm, overrides: list[str], labelled: list[str], held_out: list[str],
                   steps: int | None, rep: int, say) -> tuple[list[dict], dict]:
    """The supervised arm's rows and its run's record (learning rate and step chosen on the validation part)."""
    started = time.perf_counter()
    held, values, run = supervised_predictions(cohort, overrides, np.array(labelled), np.array(held_out), steps,
                                               seed=rep)
    rows = score_arm("supervised", pd.DataFrame(values, index=pd.Index(held), columns=list(H2)), cohort, grm,
                     held_out)
    say(f"[rep {rep}] supervised: {time.perf_counter() - started:.0f} s (lr {run['lr']:.3g}, best step "
        f"{run['best_step']} of {run['steps']})")
    return rows, run


def rerun_supervised(stored: dict, cohort: dict, grm, args, overrides: list[str], labelled: list[str],
                     held_out: list[str], rep: int, rep_dir: Path, say) -> dict:
    """Replace a stored replicate's supervised arm (trained before the learning-rate grid and validation-step rule)
    by one trained under the rule; the label-free arms, which the rule does not touch, are kept and the replicate
    records when its supervised arm was re-run."""
    say(f"[rep {rep}] stored before the supervised budget rule: re-running its supervised arm")
    steps = _ssl_steps(len(cohort["parameters"]), args.epochs)
    new, run = supervised_arm(cohort, grm, overrides, labelled, held_out, steps, rep, say)
    kept = [r for r in stored["rows"] if r["arm"] != "supervised"]
    extra = {"replicate": rep, "n_labelled": kept[0]["n_labelled"], "n_held_out": kept[0]["n_held_out"]}
    result = {"rows": kept + [{**r, **extra} for r in new], "clusters": stored["clusters"],
              "supervised": run, "supervised_rerun_at": host_info()["timestamp"]}
    (rep_dir / REPLICATE_FILE).write_text(json.dumps(result))
    return result


def summary_rows(per_rep: pd.DataFrame) -> list[dict]:
    rows = []
    for (arm, name), group in per_rep.groupby(["arm", "parameter"], sort=False):
        row = {"parameter": name, "arm": arm}
        for column, bounds in (("h2", (0.0, 1.0)), ("r_truth", (-1.0, 1.0))):
            mean, low, high = mean_ci(group[column].to_numpy(float), bounds=bounds)
            row[column] = f"{mean:.3f} [{low:.3f}, {high:.3f}]"
        row["leads at causal / leads"] = f"{int(group.leads_at_causal.sum())} / {int(group.n_leads.sum())}"
        rows.append(row)
    order = {a: i for i, a in enumerate(("truth", *ARMS))}
    return sorted(rows, key=lambda r: (list(H2).index(r["parameter"]), order[r["arm"]]))


def verdict_rows(per_rep: pd.DataFrame) -> list[dict]:
    """Per parameter and SSL arm: h2(SSL) - h2(supervised), paired over replicates, against the review's +7%."""
    rows = []
    for name in H2:
        sup = per_rep[(per_rep.arm == "supervised") & (per_rep.parameter == name)].set_index("replicate").h2
        for arm in ("simclr", "contig"):
            ssl = per_rep[(per_rep.arm == arm) & (per_rep.parameter == name)].set_index("replicate").h2
            diff = (ssl - sup.reindex(ssl.index)).to_numpy(float)
            mean, low, high = mean_ci(diff, bounds=(-1.0, 1.0))
            if low > 0:
                says = "SSL above supervised"
            elif high < 0:
                says = "SSL below supervised: the claim does not hold"
            else:
                says = "no difference can be claimed"
            ratio = ssl.mean() / sup.mean() - 1 if sup.mean() > 0 else float("nan")
            rows.append({"parameter": name, "ssl": arm, "h2 SSL - supervised": f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]",
                         "relative": f"{ratio:+.0%}" if np.isfinite(ratio) else "n/a", "verdict": says})
    return rows


def cluster_summary_rows(per_rep: pd.DataFrame) -> list[dict]:
    """Per clustered arm and score: epsilon^2 and the number of clusters over replicates, replicates with q < 0.05."""
    rows = []
    for (arm, score), group in per_rep.groupby(["arm", "score"], sort=False):
        mean, low, high = mean_ci(group.epsilon2.to_numpy(float), bounds=(0.0, 1.0))
        rows.append({"arm": arm, "score": score, "epsilon^2": f"{mean:.3f} [{low:.3f}, {high:.3f}]",
                     "clusters": f"{group.n_clusters.min()}-{group.n_clusters.max()}",
                     "replicates with q < 0.05": f"{int((group.q < 0.05).sum())} / {len(group)}"})
    order = {a: i for i, a in enumerate(LATENT_ARMS)}
    scores = [*(f"pgs_{n}" for n in H2), NULL_PGS]
    return sorted(rows, key=lambda r: (scores.index(r["score"]), order[r["arm"]]))


def rerun_note(reruns: dict[int, str]) -> list[str]:
    """A sentence naming the replicates whose supervised arm was re-run after the label-free arms (none: nothing)."""
    if not reruns:
        return []
    when = ", ".join(f"{rep} ({stamp[:16].replace('T', ' ')} UTC)" for rep, stamp in sorted(reruns.items()))
    return ["", f"The supervised arm of replicate(s) {when} was re-run under this budget rule after the replicate "
                "was stored with an earlier supervised arm (a fixed learning rate); the label-free arms, which the "
                "rule does not touch, are those of the first run, so the stated minutes cover the re-run only."]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=None, help="default 2000 (60 with --quick)")
    parser.add_argument("--replicates", type=int, default=None, help="default 3 (2 with --quick)")
    parser.add_argument("--epochs", type=int, default=None, help="default 20 (1 with --quick)")
    parser.add_argument("--label-fraction", type=float, default=0.2)
    parser.add_argument("--causal", type=int, default=5, help="causal variants per parameter")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "genotype_image_chain")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.people = args.people or (60 if args.quick else 2000)
    args.replicates = args.replicates or (2 if args.quick else 3)
    args.epochs = args.epochs or (1 if args.quick else 20)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()

    def say(message: str) -> None:
        print(message, flush=True)

    rows, clusters, reruns = [], [], {}
    for rep in range(args.replicates):
        result = run_replicate(rep, args, args.work_dir / ("quick" if args.quick else "full"), say)
        rows += result["rows"]
        clusters += result["clusters"]
        if "supervised_rerun_at" in result:
            reruns[rep] = result["supervised_rerun_at"]
    per_rep = pd.DataFrame(rows)
    seconds = time.perf_counter() - started
    n_labelled, n_held = int(per_rep.n_labelled.iloc[0]), int(per_rep.n_held_out.iloc[0])
    markdown = "\n".join([
        "## The cardiac chain on 3D+time cines (`benchmarks/genotype_image_chain.py`, CPU)", "",
        f"{args.replicates} replicate cohorts of {args.people} people (msprime genotypes, two 2 Mb chromosomes; "
        f"{args.causal} causal variants per parameter), one cine each (10 frames, resampled to 16^3); "
        f"{n_labelled} labelled people ({args.label_fraction:.0%}), every number on the {n_held} held-out people; "
        f"{args.epochs} pre-training epochs; {seconds / 60:.0f} min in all. Arms: `truth` = the simulated parameter "
        "itself (the ceiling), `simclr` and `contig` (images against the people's genotypes) + a ridge probe, "
        "`random_init` + a ridge probe, `supervised` = the same cine encoder trained on the labelled people "
        "(same number of optimizer steps as the pre-training at most; learning rate from train.lr x {0.3, 1, 3} "
        "and step chosen on a validation fifth of the labelled people).", *rerun_note(reruns), "",
        "Mean [95% t-interval over the replicate cohorts: genotypes, cohort, labelled subset and training seeds "
        "together]:", "",
        markdown_table(summary_rows(per_rep), ["parameter", "arm", "h2", "r_truth", "leads at causal / leads"]), "",
        f"The review's claim: h2 of the SSL-predicted trait {REVIEW_GAIN:+.0%} over the supervised CNN's. Paired "
        "differences over the replicates:", "",
        markdown_table(verdict_rows(per_rep), ["parameter", "ssl", "h2 SSL - supervised", "relative", "verdict"]),
        "", "The review's discovery claim, clusters of latent embeddings go with genetic risk scores: Leiden clusters "
        "(`discover`'s defaults) of the held-out people's features against each parameter's true polygenic score "
        "and a null score (five random non-causal variants); Kruskal-Wallis effect epsilon^2, mean [95% t-interval "
        "over the replicates], and the replicates where the score differs between clusters (BH q < 0.05 over the "
        "arm's five scores). `truth` clusters the four true parameters.", "",
        markdown_table(cluster_summary_rows(pd.DataFrame(clusters)),
                       ["score", "arm", "epsilon^2", "clusters", "replicates with q < 0.05"]),
        ""])
    print(markdown)
    payload = {"per_replicate": rows, "clusters": clusters,
               "meta": {**{k: str(v) for k, v in vars(args).items()}, "seconds": seconds, "host": host_info(),
                        "supervised_rerun_at": {str(k): v for k, v in reruns.items()}}}
    stem = "genotype_image_chain-cpu" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
