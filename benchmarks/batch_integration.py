"""Batch integration on real cells with a known batch effect: biolatent's VAE with and without the batch
covariate (``data.batch_column``), scvi-tools' ``SCVI(batch_key=...)`` and ``SCVI()`` with the same architecture
and budget, and PCA, scored with the scib metrics (``biolatent.evaluate.integration``: iLISI, kBET, batch ASW;
label ASW, Leiden NMI/ARI of the cell types).

Data: the registry's PBMC 68k cells (700 cells x 765 genes of real 10x counts, 10 cell types in
``bulk_labels``) split into 3 batches with a known effect (``biolatent.data.simulate.counts.add_batch_effect``:
cell types unevenly spread over the batches, per-batch log-normal gene capture efficiencies, sd 0.5, and
depths, sd 0.3, the counts redrawn as Poisson). No real multi-batch single-cell set is reachable from this machine
(see the shared data notes); the cells and their biology are real, the batch effect is simulated and known.

Both VAEs: 10 latent dimensions, one hidden layer of 128 (LayerNorm, dropout 0.1), NB likelihood, AdamW lr 1e-3
with biolatent's cosine decay, batch 128, the same ``--epochs`` (the settings of ``vae_vs_scvi.py``); each
pre-training seed (``--seeds``) trains every model once; PCA (50 components of the standardised log-normalised
counts) does not vary with it. Intervals: min and max over the pre-training seeds (the data and its batch
effect are fixed, data seed 0).

    python benchmarks/batch_integration.py           # 3 pre-training seeds, 100 epochs
    python benchmarks/batch_integration.py --quick   # 1 seed, 2 epochs (a smoke run)
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import pandas as pd
from _report import RESULTS_DIR, host_info, markdown_table, write_results
from vae_vs_scvi import (
    ADAM_EPS,
    BATCH_SIZE,
    CLIP,
    DROPOUT,
    LABEL,
    LR,
    N_HIDDEN,
    N_LATENT,
    WEIGHT_DECAY,
    CosineLR,
    load_pbmc68k,
)

from biolatent.evaluate.integration import BATCH_METRICS, BIO_METRICS, SUMMARY, integration_metrics

BATCH = "batch"
DATA_SEED = 0
METHODS = ("biolatent vae + batch", "biolatent vae", "scvi-tools SCVI(batch_key)", "scvi-tools SCVI()", "pca")
METRICS = (*SUMMARY, *BATCH_METRICS, *BIO_METRICS)


def batched_cells(seed: int = DATA_SEED) -> anndata.AnnData:
    """The PBMC cells with a known batch effect: integer counts in X, obs ``bulk_labels`` and ``batch``."""
    from biolatent.data.simulate.counts import add_batch_effect

    adata = load_pbmc68k()
    counts, batches = add_batch_effect(adata.X, adata.obs[LABEL].to_numpy(), seed=seed)
    obs = pd.DataFrame({LABEL: adata.obs[LABEL].astype(str).to_numpy(), BATCH: batches}, index=adata.obs_names)
    return anndata.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=adata.var_names))


def run_biolatent(path: Path, conditioned: bool, epochs: int, seed: int) -> np.ndarray:
    """biolatent's VAE through the one data path and training loop (``load_samples``, ``train.fit``) -> the
    posterior means."""
    import torch

    from biolatent.build import build_method, load_config
    from biolatent.data.loaders import load_samples
    from biolatent.embed import compute_embeddings
    from biolatent.train.fit import fit

    config = load_config({
        "data": {"modality": "counts", "path": str(path), **({"batch_column": BATCH} if conditioned else {})},
        "method": {"name": "vae", "latent_dim": N_LATENT, "decoder_hidden": N_HIDDEN, "likelihood": "nb"},
        "model": {"name": "mlp", "hidden_dims": [N_HIDDEN], "out_dim": N_HIDDEN, "dropout": DROPOUT,
                  "input_transform": "log1p"},
        "train": {"epochs": epochs, "batch_size": BATCH_SIZE, "lr": LR, "weight_decay": WEIGHT_DECAY,
                  "warmup_epochs": 0, "seed": seed, "accelerator": "cpu", "devices": 1, "gradient_clip": CLIP,
                  "num_workers": 0},
    })
    samples = load_samples(config.data)
    torch.manual_seed(seed)
    method = build_method(config, samples.info)
    fit(method, samples.x, config.train, progress=False, fields=samples.fields)
    return compute_embeddings(method, samples.x, fields=samples.fields)


def run_scvi(adata: anndata.AnnData, batch_key: str | None, epochs: int, seed: int) -> np.ndarray:
    """scvi-tools' SCVI with biolatent's architecture and schedule (as ``vae_vs_scvi.run_scvi``) -> latent means."""
    import scvi

    scvi.settings.seed = seed
    scvi.settings.verbosity = logging.WARNING
    scvi.settings.dl_num_workers = 0
    data = adata.copy()
    scvi.model.SCVI.setup_anndata(data, batch_key=batch_key)
    model = scvi.model.SCVI(
        data, n_latent=N_LATENT, n_hidden=N_HIDDEN, n_layers=1, dropout_rate=DROPOUT, dispersion="gene",
        gene_likelihood="nb", latent_distribution="normal", log_variational=True,
        use_batch_norm="none", use_layer_norm="both", use_observed_lib_size=True,
    )
    model.train(
        max_epochs=epochs, accelerator="cpu", devices=1, train_size=1.0, batch_size=BATCH_SIZE,
        early_stopping=False, enable_progress_bar=False, gradient_clip_val=CLIP,
        callbacks=[CosineLR(LR, epochs * math.ceil(adata.n_obs / BATCH_SIZE))],
        plan_kwargs={"optimizer": "AdamW", "lr": LR, "weight_decay": WEIGHT_DECAY, "eps": ADAM_EPS,
                     "n_epochs_kl_warmup": None, "n_steps_kl_warmup": None, "max_kl_weight": 1.0,
                     "reduce_lr_on_plateau": False},
    )
    return np.asarray(model.get_latent_representation(batch_size=BATCH_SIZE))


def pca_embedding(adata: anndata.AnnData, seed: int = DATA_SEED) -> np.ndarray:
    """The PCA floor of ``evaluate``: standardised log-normalised counts -> principal components."""
    from biolatent.data.features import log_normalise
    from biolatent.evaluate.efficiency import pca_features

    return pca_features(log_normalise(np.asarray(adata.X, dtype=np.float64)), seed=seed)


def summarise(per_seed: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per method: each metric's mean over the pre-training seeds as ``mean [min, max]`` text, and the
    means as numbers under ``<metric>_mean``."""
    rows = []
    for method in METHODS:
        part = per_seed[per_seed.method == method]
        if part.empty:
            continue
        row: dict[str, Any] = {"method": method, "n_seeds": int(part.seed.nunique())}
        for metric in METRICS:
            values = part[metric].to_numpy()
            row[f"{metric}_mean"] = float(values.mean())
            row[metric] = (f"{values.mean():.3f}" if len(values) == 1 or method == "pca"
                           else f"{values.mean():.3f} [{values.min():.3f}, {values.max():.3f}]")
        rows.append(row)
    return rows


def paired_difference(per_seed: pd.DataFrame, metric: str, method: str, reference: str) -> dict[str, float]:
    """``method`` minus ``reference`` on ``metric``, paired by pre-training seed: mean, min and max."""
    a = per_seed[per_seed.method == method].set_index("seed")[metric]
    b = per_seed[per_seed.method == reference].set_index("seed")[metric]
    diff = (a - b).dropna().to_numpy()
    return {"mean": float(diff.mean()), "min": float(diff.min()), "max": float(diff.max())}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, defaults resolved: what the result JSON records under ``arguments``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="default 100 (quick: 2)")
    parser.add_argument("--seeds", type=int, default=None, help="pre-training seeds (default 3, quick: 1)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (2 if args.quick else 100)
    args.seeds = args.seeds or (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    adata = batched_cells()
    labels, batches = adata.obs[LABEL].to_numpy(), adata.obs[BATCH].to_numpy()
    rows = []

    def score(method: str, seed: int, embedding: np.ndarray, train_s: float) -> None:
        values = integration_metrics(embedding, batches, labels)
        rows.append({"method": method, "seed": seed, "train_s": train_s, **values})
        print(f"{method} (seed {seed}): batch correction {values['batch_correction']:.3f}, bio conservation "
              f"{values['bio_conservation']:.3f}", flush=True)

    with tempfile.TemporaryDirectory(prefix="batch-integration-") as tmp:
        path = Path(tmp) / "cells.h5ad"
        adata.write_h5ad(path)
        score("pca", 0, pca_embedding(adata), 0.0)
        for seed in range(args.seeds):
            runs = (("biolatent vae + batch", run_biolatent, (path, True)),
                    ("biolatent vae", run_biolatent, (path, False)),
                    ("scvi-tools SCVI(batch_key)", run_scvi, (adata, BATCH)),
                    ("scvi-tools SCVI()", run_scvi, (adata, None)))
            for method, train, inputs in runs:
                start = time.perf_counter()
                embedding = train(*inputs, args.epochs, seed)
                score(method, seed, embedding, time.perf_counter() - start)
    per_seed = pd.DataFrame(rows)
    summary = summarise(per_seed)
    differences = {
        "biolatent": {m: paired_difference(per_seed, m, "biolatent vae + batch", "biolatent vae")
                      for m in ("batch_correction", "bio_conservation")},
        "scvi-tools": {m: paired_difference(per_seed, m, "scvi-tools SCVI(batch_key)", "scvi-tools SCVI()")
                       for m in ("batch_correction", "bio_conservation")},
    }
    composition = pd.crosstab(adata.obs[LABEL], adata.obs[BATCH])
    diff_text = "; ".join(
        f"{tool}: batch correction {d['batch_correction']['mean']:+.3f} [{d['batch_correction']['min']:+.3f}, "
        f"{d['batch_correction']['max']:+.3f}], bio conservation {d['bio_conservation']['mean']:+.3f} "
        f"[{d['bio_conservation']['min']:+.3f}, {d['bio_conservation']['max']:+.3f}]"
        for tool, d in differences.items())
    markdown = (
        f"# Batch integration: PBMC cells ({adata.n_obs} x {adata.n_vars}) with a known 3-batch effect "
        f"({args.epochs} epochs, {args.seeds} pre-training seed(s), cpu)\n\n"
        f"{markdown_table(summary, ['method', *METRICS, 'n_seeds'])}\n\n"
        "Higher is better everywhere. batch_correction = mean of ilisi, kbet, batch_asw (batch mixing); "
        "bio_conservation = mean of label_asw, nmi, ari (cell types kept apart); total = 0.4 x batch + 0.6 x bio "
        "(scib's weighting; scib also counts graph connectivity, isolated labels, cLISI and PC regression, not "
        "computed here). Each cell: mean [min, max] over the pre-training seeds; PCA does not vary with them. "
        "The cells and their types are real (10x PBMC, `bulk_labels`); the batches and their effect are "
        "simulated and known (per-batch gene capture efficiencies, log-normal sd 0.5, depths sd 0.3, uneven "
        "cell-type composition), because no real multi-batch single-cell set is reachable here.\n\n"
        f"Conditioned minus unconditioned, paired by pre-training seed (mean [min, max]): {diff_text}.\n\n"
        f"## Cells per type and batch\n\n"
        f"{markdown_table(composition.reset_index().to_dict('records'), [LABEL, *composition.columns])}\n")
    print(markdown)
    payload = {"rows": summary, "per_seed": per_seed.to_dict("records"), "differences": differences,
               "composition": composition.reset_index().to_dict("records"),
               "meta": {**{k: str(v) for k, v in vars(args).items()}, "host": host_info()}}
    stem = "batch_integration-cpu" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(args.out_dir, stem, payload, markdown, args=args)
    print(f"-> {json_path}\n-> {md_path}")
    return payload


if __name__ == "__main__":
    main()
