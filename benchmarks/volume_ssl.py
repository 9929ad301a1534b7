"""Self-supervised pre-training on 3D brains and 3D+time heart cines, probed for the subjects' known parameters.

    python benchmarks/volume_ssl.py [--quick] [--epochs E] [--brain-subjects N] [--heart-subjects M]
                                    [--seeds S] [--supervised-steps K] [--work DIR] [--configs NAME ...]

1. Cohorts with a known truth: N synthetic brains from the real MNI152 template (``data simulate brain``: 32^3,
   3 scanner sites, per-subject atrophy and age, two scans per subject for MICLe) and M heart cines
   (``data simulate heart``: cavity volume, wall thickness, ejection fraction, twist, 3 sites).
2. Every example config of ``configs/volume`` (brain) and ``configs/cine`` (heart) is pre-trained on its cohort
   with ``biolatent pretrain``'s code (``--epochs`` overrides ``train.epochs``) and embedded.
3. Subject-level probes with the label-efficiency sweep of ``biolatent evaluate`` (one held-out test set, nested
   label subsets, ``--seeds`` repeats): every numeric subject parameter is a regression target (linear =
   ridge probe, Pearson r and R^2 on the test subjects), the site a classification target (balanced accuracy).
   Side by side on the same splits: each SSL encoder, the same architectures at random initialisation, PCA of
   pooled voxels, hand-made intensity statistics (per frame: foreground voxel count, mean, sd and 10/50/90th
   percentiles of the foreground intensities; each statistic standardised over the subjects), and the supervised
   baseline (the ResNet / cine encoder trained
   from scratch on the labelled subjects for at most ``--supervised-steps`` steps, learning rate and step chosen
   on a validation fifth of them as ``biolatent evaluate`` does). Brains are probed on their first
   scan only (one row per subject; otherwise a subject's second scan would sit in the test set while the first
   is in the training set).

Writes ``benchmarks/results/volume_ssl-<cpu|cuda>.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from _report import RESULTS_DIR, device_tag, host_info, markdown_table, write_results

from biolatent.build import build_encoder, build_method, build_views, load_config
from biolatent.config import RunConfig
from biolatent.data.features import raw_features
from biolatent.data.loaders import load_samples
from biolatent.embed import EMBEDDING_KEY, compute_embeddings, read_embeddings
from biolatent.evaluate.efficiency import pca_features, run_label_efficiency, summarise
from biolatent.train.supervised import LR_MULTIPLIERS, supervised_baseline
from biolatent.workflows.embed import embed_run
from biolatent.workflows.evaluate import VALIDATION_FRACTION, prepare_label_column, validation_split
from biolatent.workflows.pretrain import pretrain

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COHORTS = {
    "brain": {"configs": "volume", "labels": ("atrophy", "age", "csf_ml", "site")},
    "heart": {"configs": "cine",
              "labels": ("ejection_fraction", "wall_thickness", "cavity_volume", "twist", "site")},
}
FRACTIONS = (0.1, 1.0)
QUICK_OVERRIDES = ["data.image_size=16", "train.batch_size=8"]


def make_cohorts(work: Path, brains: int, hearts: int, size: int, say, quick: bool = False) -> dict[str, Path]:
    """The two cohorts (reused when already there); ``quick`` uses the analytic stand-in of the brain template."""
    from biolatent.anomaly.volumes import write_brain_set
    from biolatent.data.simulate.brain import ellipsoid_template
    from biolatent.data.simulate.heart import simulate_heart_cohort

    paths = {"brain": work / "brain", "heart": work / "heart"}
    if not (paths["brain"] / "meta.tsv").is_file():
        shutil.rmtree(paths["brain"], ignore_errors=True)
        write_brain_set(paths["brain"], brains, size=size, sites=3, subject_parameters=True, scans_per_subject=2,
                        seed=0, say=say, template=ellipsoid_template() if quick else None)
    if not (paths["heart"] / "meta.tsv").is_file():
        shutil.rmtree(paths["heart"], ignore_errors=True)
        simulate_heart_cohort(hearts, paths["heart"], seed=0)
    return paths


def train_run(config: RunConfig, run_dir: Path, say) -> dict[str, float]:
    """Pre-train (or reuse a finished run with the same config) and embed; -> the pretrain metrics."""
    from biolatent.rundir import read_json
    from biolatent.workflows.common import load_run_config

    done = (run_dir / "model.safetensors").is_file() and (run_dir / "embeddings.h5ad").is_file()
    if done and load_run_config(run_dir).hash() == config.hash():
        return read_json(run_dir / "metrics.json")["pretrain"]
    shutil.rmtree(run_dir, ignore_errors=True)
    metrics = pretrain(config, run_dir, progress=False, say=say)
    embed_run(run_dir, say=say)
    return metrics


def intensity_statistics(x: torch.Tensor, threshold: float = 0.05) -> np.ndarray:
    """(N, C, S, S, S) -> (N, 6 C): per channel (frame) the foreground voxel count (intensity > ``threshold``) and
    the mean, sd and 10/50/90th percentiles of the foreground intensities."""
    rows = []
    for sample in x.numpy():
        features = []
        for channel in sample:
            fg = channel[channel > threshold]
            fg = fg if fg.size else np.zeros(1, channel.dtype)
            features += [float(fg.size), float(fg.mean()), float(fg.std()), *np.percentile(fg, [10, 50, 90])]
        rows.append(features)
    return np.asarray(rows, dtype=np.float32)


def evaluate_cohort(name: str, runs: dict[str, tuple[RunConfig, Path]], args, say) -> list[dict[str, Any]]:
    """Probe every run's embeddings and the baselines on the cohort's subject parameters -> summary rows."""
    first_config = next(iter(runs.values()))[0]
    samples = load_samples(first_config.data)
    keep = np.ones(len(samples), bool)
    if name == "brain":
        keep = np.array([sid.endswith("-scan1") for sid in samples.ids])
    rows_idx = torch.as_tensor(np.flatnonzero(keep))
    x, obs = samples.x[rows_idx], samples.obs.iloc[np.flatnonzero(keep)]
    representations: dict[str, np.ndarray] = {}
    baselines: dict[str, RunConfig] = {}
    for method, (config, run_dir) in runs.items():
        adata = read_embeddings(run_dir / "embeddings.h5ad")
        representations[method] = np.asarray(adata.obsm[EMBEDDING_KEY])[keep]
        baselines.setdefault(str(config.model.name), config)
    for key, config in baselines.items():
        torch.manual_seed(config.train.seed)
        representations[f"random_init_{key}"] = compute_embeddings(build_method(config, samples.info), x)
    representations["pca"] = pca_features(raw_features(samples)[keep], seed=0)
    # each statistic standardised over all subjects (label-free, as PCA is): the probes scale every dimension by
    # one global factor, under which the voxel count (thousands) would swamp the intensities (below 1)
    stats = intensity_statistics(x)
    representations["intensity_stats"] = (stats - stats.mean(axis=0)) / np.maximum(stats.std(axis=0), 1e-12)
    supervised_config = next(c for k, c in baselines.items() if k != "vit")
    out: list[dict[str, Any]] = []
    for label in COHORTS[name]["labels"]:
        labels = prepare_label_column(obs, label)  # the evaluate command's rule: site classes, parameters numbers
        task, kept = labels.task, torch.as_tensor(np.flatnonzero(labels.keep))
        say(f"{name}: probing {label} ({task}) ...")
        finetune = supervised_baseline(
            lambda c=supervised_config: build_encoder(c, samples.info),
            lambda c=supervised_config: build_views(c, samples.info),
            x[kept], labels.values, labels.n_classes, supervised_config.train, args.supervised_steps, task=task,
            validation_split=validation_split(labels.values, stratify=task != "regression"),  # as `evaluate` does
        )
        started = time.perf_counter()
        per_seed = run_label_efficiency({k: v[labels.keep] for k, v in representations.items()}, labels.values,
                                        labels.n_classes, FRACTIONS, list(range(args.seeds)), probes=("linear",),
                                        finetune=finetune, task=task)
        summary = summarise(per_seed)
        metric = "pearson_r" if task == "regression" else "balanced_accuracy"
        for row in summary[summary["metric"].isin([metric, "r2"])].itertuples(index=False):
            out.append({"cohort": name, "label": label, "representation": row.representation, "probe": row.probe,
                        "fraction": float(row.fraction), "metric": row.metric, "mean": float(row.mean),
                        "ci_low": float(row.ci_low), "ci_high": float(row.ci_high), "n_seeds": int(row.n_seeds)})
        say(f"  {time.perf_counter() - started:.0f} s")
    return out


def results_table(rows: list[dict[str, Any]], cohort: str) -> str:
    """Rows: representations; columns: every label at each fraction (Pearson r; balanced accuracy for site)."""
    table = pd.DataFrame([r for r in rows if r["cohort"] == cohort and r["metric"] != "r2"])
    if table.empty:
        return ""
    table["column"] = table["label"] + " @" + (table["fraction"] * 100).round().astype(int).astype(str) + "%"
    wide = table.pivot_table(index="representation", columns="column", values="mean", sort=False)
    columns = [c for label in COHORTS[cohort]["labels"] for c in wide.columns if c.startswith(label + " @")]
    records = [{"representation": rep, **{c: float(wide.loc[rep, c]) for c in columns}} for rep in wide.index]
    return markdown_table(records, ["representation", *columns])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs of every config (default 15)")
    parser.add_argument("--brain-subjects", type=int, default=None, help="default 120 (two scans each)")
    parser.add_argument("--heart-subjects", type=int, default=None, help="default 200")
    parser.add_argument("--seeds", type=int, default=None, help="label-subset repeats (default 3)")
    parser.add_argument("--supervised-steps", type=int, default=None, help="default 60 (the published run)")
    parser.add_argument("--configs", nargs="*", default=None, help="config stems to run (default all)")
    parser.add_argument("--work", type=Path, default=None, help="cohorts and runs (default: cache folder)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny cohorts (analytic brain template), 1 epoch, 16^3: a smoke run")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    q = args.quick
    args.epochs = args.epochs or (1 if q else 15)
    args.brain_subjects = args.brain_subjects or (12 if q else 120)
    args.heart_subjects = args.heart_subjects or (12 if q else 200)
    args.seeds = args.seeds or (2 if q else 3)
    args.supervised_steps = args.supervised_steps or (3 if q else 60)
    if args.work is None:
        cache = Path(os.environ.get("BIOLATENT_CACHE", Path.home() / ".cache" / "biolatent"))
        args.work = cache / "bench" / ("volume_ssl-quick" if q else "volume_ssl")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)

    def say(message: str) -> None:
        print(message, flush=True)

    started = time.perf_counter()
    cohorts = make_cohorts(args.work, args.brain_subjects, args.heart_subjects, 32, say, args.quick)
    pretraining: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for cohort, spec in COHORTS.items():
        runs: dict[str, tuple[RunConfig, Path]] = {}
        for path in sorted((CONFIGS / spec["configs"]).glob("*.yaml")):
            if args.configs and path.stem not in args.configs:
                continue
            overrides = [f"data.path={cohorts[cohort]}", f"train.epochs={args.epochs}"]
            config = load_config(path, overrides + (QUICK_OVERRIDES if args.quick else []))
            if config.data.paired_parts:  # no genotypes in these cohorts: contig is in genotype_image_chain.py
                say(f"skipping {path.stem}: it pairs the images with genotypes, which this cohort lacks")
                continue
            if args.quick and config.method.name == "moco":  # the queue must stay shorter than the tiny cohort
                config = load_config(path, overrides + QUICK_OVERRIDES + ["method.queue_size=8"])
            say(f"pre-training {path.stem} ...")
            metrics = train_run(config, args.work / "runs" / path.stem, say)
            method = path.stem.split("_", 1)[1]  # brain_simclr_geometric -> simclr_geometric
            runs[method] = (config, args.work / "runs" / path.stem)
            pretraining.append({"config": path.stem, "method": method, "encoder": config.model.name,
                                "epochs": args.epochs, "train_s": metrics.get("train_seconds"),
                                "samples_per_s": metrics.get("samples_per_second"),
                                "loader_wait_fraction": metrics.get("loader_wait_fraction"),
                                "final_loss": metrics.get("final_loss")})
        if runs:
            rows += evaluate_cohort(cohort, runs, args, say)
    meta = {"epochs": args.epochs, "brain_subjects": args.brain_subjects, "heart_subjects": args.heart_subjects,
            "seeds": args.seeds, "supervised_steps": args.supervised_steps, "fractions": list(FRACTIONS),
            "quick": args.quick, "seconds": time.perf_counter() - started, "host": host_info(),
            "supervised": {"max_steps": args.supervised_steps, "lr_multipliers": list(LR_MULTIPLIERS),
                           "validation_fraction": VALIDATION_FRACTION}}
    parts = [f"# Self-supervised 3D / 3D+time pre-training, probed for known subject parameters (CPU)\n\n"
             f"{args.brain_subjects} brains (2 scans each, probed on scan 1), {args.heart_subjects} heart cines, "
             f"{args.epochs} epochs, linear probes (ridge for numbers: Pearson r; logistic for site: balanced "
             f"accuracy), mean over {args.seeds} label subsets, one held-out 20% test set. Generated by "
             f"`python benchmarks/volume_ssl.py` in {meta['seconds'] / 60:.0f} min. Supervised baseline: at most "
             f"{args.supervised_steps} optimizer steps, learning rate from train.lr x "
             f"{{{', '.join(f'{m:g}' for m in LR_MULTIPLIERS)}}} and step chosen on a validation fifth of the "
             "labelled subjects (never the test subjects).\n",
             "## Pre-training\n", markdown_table(pretraining, list(pretraining[0]) if pretraining else []), ""]
    for cohort in COHORTS:
        table = results_table(rows, cohort)
        if table:
            parts += [f"## {cohort}\n", table, ""]
    markdown = "\n".join(parts)
    print(markdown)
    json_path, md_path = write_results(args.out_dir, f"volume_ssl-{device_tag()}" + ("-quick" if args.quick else ""),
                                       {"meta": meta, "pretraining": pretraining, "rows": rows}, markdown,
                                       args=args)
    print(f"wrote {json_path} and {md_path}")
    return rows


if __name__ == "__main__":
    main()
