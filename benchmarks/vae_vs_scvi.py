"""biolatent's counts VAE vs scvi-tools' ``scvi.model.SCVI`` on the same cells, with matched settings.

    python benchmarks/vae_vs_scvi.py [--epochs 100] [--mc-repeats 10] [--scvi-schedule cosine|constant]
                                     [--quick] [--out-dir DIR]

Data: ``biolatent.datasets.fetch("pbmc68k")`` -> ``pbmc68k.h5ad`` (700 cells x 765 genes, integer counts),
read once; both tools train on the same dense float32 matrix of all cells (no validation split).

Matched (both sides): n_latent 10; encoder one hidden layer of 128 (Linear -> LayerNorm -> ReLU -> dropout
0.1) on log1p(counts); decoder one hidden layer of 128 (Linear -> LayerNorm -> ReLU, no dropout) -> softmax
gene proportions x observed library size = NB mean; gene-wise NB inverse dispersion (no zero inflation);
prior N(0, I); KL weight 1 from the first step (no warm-up); ``--epochs`` epochs of shuffled mini-batches of
128 (the last one partial); AdamW lr 1e-3, weight decay 1e-4, eps 1e-8; gradient-norm clipping at 1.0;
the learning rate decayed by biolatent's cosine schedule (``warmup_cosine``, no warm-up; biolatent's trainer
always applies it, and scVI gets it from the ``CosineLR`` callback here: ``--scvi-schedule constant`` keeps
scVI's own constant rate instead); seed 0; CPU, no DataLoader workers, no progress bar.

Still different (cannot be set on one side or the other without editing either library):

* biolatent's ``MLPEncoder`` ends in a linear map (128 -> 128) before the mean/log-variance heads (the same
  function class as scVI's heads on the hidden layer, +16.5k parameters); its LayerNorms have affine
  weights (scVI's have none); posterior variance = exp(clamped log-variance) vs scVI's exp(.) + 1e-4;
* data loading: biolatent's ``IndexedDataset`` + default collate vs scVI's ``AnnDataLoader``; Lightning
  per-step logging differs (both log per-step metrics).

Time per epoch: a Lightning callback (the same class on both sides) records each training epoch's wall
time, from one ``on_train_epoch_start`` to the next (the last epoch: to its ``on_train_epoch_end``); we
report the median (steady state), the minimum (least disturbed by other load on the machine) and also
the whole ``fit``/``train`` call divided by the epochs (trainer start-up included). Data loading (reading the
h5ad, ``SCVI.setup_anndata``, building the model) is outside both timings.

ELBO per cell (higher is better): the mean over all cells, in eval mode (dropout off), of
``log p(x | z) - KL(q(z | x) || p(z))`` with ``log p(x | z)`` the full NB log-likelihood summed over genes
(normalising ``lgamma`` terms included) at ONE sample ``z ~ q(z | x)`` and the KL in closed form. That is
what ``SCVI.get_elbo()`` returns (``-compute_elbo``, whose ``compute_elbo`` sums reconstruction loss and
local KL: its docstring says "This is not the negative ELBO, so higher is better") and what biolatent's VAE
reports as its ``elbo`` metric (``-(reconstruction + kl).mean()``). Because it is a one-sample Monte-Carlo
estimate, both are averaged over ``--mc-repeats`` seeds (the table shows the mean and the SD over repeats).

Sanity check of the latent spaces: a kNN probe (k = 15, Euclidean) of ``bulk_labels`` on the posterior
means (10 dims), balanced accuracy, stratified 5-fold CV (mean and SD over folds); the 10 leading PCs of
log1p(CP10k) counts are a reference floor.

Results are printed and written to ``<out-dir>/vae_vs_scvi-cpu.{json,md}``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anndata
import lightning as L
import numpy as np
import torch
from _report import RESULTS_DIR, host_info, markdown_table, write_results

from biolatent.build import build_method, load_config
from biolatent.data.samples import DataInfo
from biolatent.datasets import fetch
from biolatent.train.fit import fit
from biolatent.train.module import warmup_cosine

N_LATENT, N_HIDDEN, BATCH_SIZE, LR, WEIGHT_DECAY, ADAM_EPS, CLIP, DROPOUT, SEED = (
    10, 128, 128, 1e-3, 1e-4, 1e-8, 1.0, 0.1, 0
)
LABEL = "bulk_labels"
KNN_K, CV_FOLDS = 15, 5
COLUMNS = (
    "tool", "epochs", "s_per_epoch", "s_per_epoch_min", "s_per_epoch_incl_startup", "train_s",
    "elbo_per_cell", "elbo_sd", "knn_bal_acc", "knn_sd", "params", "params_used",
)


class CosineLR(L.Callback):
    """biolatent's learning-rate schedule (``warmup_cosine``, no warm-up) applied to another trainer.

    Sets every param group's lr to ``lr * warmup_cosine(global_step, 0, total_steps)`` before each step:
    the factor biolatent's ``LambdaLR`` gives the same step.
    """

    def __init__(self, lr: float, total_steps: int) -> None:
        self.lr, self.total_steps = lr, total_steps

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        factor = warmup_cosine(trainer.global_step, 0, self.total_steps)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.lr * factor


class EpochTimer(L.Callback):
    """Wall seconds per training epoch: start hook to the next epoch's start hook (the last: to its end).

    Start-to-start includes everything that recurs once per epoch (the loader's new iterator, epoch-end
    hooks, logging), not only the batches.
    """

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.end = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.starts.append(time.perf_counter())

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.end = time.perf_counter()

    @property
    def times(self) -> list[float]:
        bounds = [*self.starts, self.end]
        return [b - a for a, b in itertools.pairwise(bounds)] if self.starts else []


def load_pbmc68k() -> anndata.AnnData:
    """The registry's pbmc68k cells: X = dense float32 integer counts, obs with ``bulk_labels``."""
    adata = anndata.read_h5ad(fetch("pbmc68k") / "pbmc68k.h5ad")
    x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    adata.X = np.ascontiguousarray(x, dtype=np.float32)
    if not np.array_equal(adata.X, np.round(adata.X)) or (adata.X < 0).any():
        raise SystemExit("pbmc68k.h5ad does not hold non-negative integer counts")
    return adata


def run_biolatent(adata: anndata.AnnData, epochs: int, mc_repeats: int) -> tuple[dict[str, Any], np.ndarray]:
    """Train biolatent's VAE through ``biolatent.train.fit``; -> (row, posterior means)."""
    config = load_config({
        "data": {"modality": "counts", "path": "pbmc68k.h5ad"},
        "method": {"name": "vae", "latent_dim": N_LATENT, "decoder_hidden": N_HIDDEN, "likelihood": "nb",
                   "kl_weight": 1.0},
        "model": {"name": "mlp", "hidden_dims": [N_HIDDEN], "out_dim": N_HIDDEN, "dropout": DROPOUT,
                  "input_transform": "log1p"},
        "train": {"epochs": epochs, "batch_size": BATCH_SIZE, "lr": LR, "weight_decay": WEIGHT_DECAY,
                  "warmup_epochs": 0, "seed": SEED, "accelerator": "cpu", "devices": 1,
                  "gradient_clip": CLIP, "num_workers": 0},
    })
    info = DataInfo("counts", n_features=adata.n_vars, is_counts=True)
    x = torch.from_numpy(adata.X)
    torch.manual_seed(SEED)
    method = build_method(config, info)
    timer = EpochTimer()
    start = time.perf_counter()
    fit(method, x, config.train, callbacks=[timer], progress=False)
    train_s = time.perf_counter() - start

    method.eval()
    elbos = []
    with torch.no_grad():
        for repeat in range(mc_repeats):
            torch.manual_seed(1000 + repeat)
            total = sum(float(method({"x": xb}).metrics["elbo"]) * len(xb) for xb in x.split(BATCH_SIZE))
            elbos.append(total / len(x))
        latent = torch.cat([method.embed(xb) for xb in x.split(BATCH_SIZE)]).numpy()
    row = timing_row("biolatent", epochs, timer.times, train_s, elbos)
    row["params"] = sum(p.numel() for p in method.parameters())
    row["params_used"] = used_parameters(method, lambda: method({"x": x[:BATCH_SIZE]}).loss)
    return row, latent


def run_scvi(
    adata: anndata.AnnData, epochs: int, mc_repeats: int, schedule: str = "cosine"
) -> tuple[dict[str, Any], np.ndarray]:
    """Train ``scvi.model.SCVI`` with the matched settings; -> (row, posterior means).

    ``schedule="cosine"`` gives scVI biolatent's cosine learning-rate decay (a callback); ``"constant"``
    keeps scVI's own constant learning rate.
    """
    import scvi

    scvi.settings.seed = SEED
    scvi.settings.verbosity = logging.WARNING
    scvi.settings.dl_num_workers = 0
    data = adata.copy()
    scvi.model.SCVI.setup_anndata(data)
    model = scvi.model.SCVI(
        data, n_latent=N_LATENT, n_hidden=N_HIDDEN, n_layers=1, dropout_rate=DROPOUT, dispersion="gene",
        gene_likelihood="nb", latent_distribution="normal", log_variational=True,
        use_batch_norm="none", use_layer_norm="both", use_observed_lib_size=True,
    )
    timer = EpochTimer()
    callbacks: list[L.Callback] = [timer]
    if schedule == "cosine":
        steps_per_epoch = math.ceil(adata.n_obs / BATCH_SIZE)
        callbacks.append(CosineLR(LR, epochs * steps_per_epoch))
    start = time.perf_counter()
    model.train(
        max_epochs=epochs, accelerator="cpu", devices=1, train_size=1.0, batch_size=BATCH_SIZE,
        early_stopping=False, enable_progress_bar=False, callbacks=callbacks, gradient_clip_val=CLIP,
        plan_kwargs={"optimizer": "AdamW", "lr": LR, "weight_decay": WEIGHT_DECAY, "eps": ADAM_EPS,
                     "n_epochs_kl_warmup": None, "n_steps_kl_warmup": None, "max_kl_weight": 1.0,
                     "reduce_lr_on_plateau": False},
    )
    train_s = time.perf_counter() - start
    model.module.eval()
    elbos = []
    for repeat in range(mc_repeats):
        torch.manual_seed(1000 + repeat)
        elbos.append(float(model.get_elbo(batch_size=BATCH_SIZE)))
    latent = np.asarray(model.get_latent_representation(batch_size=BATCH_SIZE))
    row = timing_row("scvi-tools", epochs, timer.times, train_s, elbos)
    row["params"] = sum(p.numel() for p in model.module.parameters())
    batch = next(iter(model._make_data_loader(adata=data, batch_size=BATCH_SIZE)))
    row["params_used"] = used_parameters(model.module, lambda: model.module(batch)[2].loss)
    return row, latent


def used_parameters(module: torch.nn.Module, loss: Callable[[], torch.Tensor]) -> int:
    """Number of parameters that get a gradient from ``loss()`` (scVI builds some heads NB never uses)."""
    module.zero_grad(set_to_none=True)
    loss().backward()
    used = sum(p.numel() for p in module.parameters() if p.grad is not None)
    module.zero_grad(set_to_none=True)
    return used


def timing_row(tool: str, epochs: int, epoch_times: list[float], train_s: float,
               elbos: list[float]) -> dict[str, Any]:
    """The timing and ELBO columns of one tool's row."""
    if len(epoch_times) != epochs:
        raise RuntimeError(f"{tool}: timed {len(epoch_times)} epochs, expected {epochs}")
    return {
        "tool": tool,
        "epochs": epochs,
        "s_per_epoch": statistics.median(epoch_times),
        "s_per_epoch_min": min(epoch_times),
        "s_per_epoch_incl_startup": train_s / epochs,
        "train_s": train_s,
        "elbo_per_cell": statistics.fmean(elbos),
        "elbo_sd": statistics.stdev(elbos) if len(elbos) > 1 else 0.0,
        "epoch_times_s": epoch_times,
        "elbo_repeats": elbos,
    }


def knn_probe(latent: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Balanced accuracy of a k-NN classifier, stratified k-fold CV -> (mean, SD over folds)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED)
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=KNN_K), latent, labels, cv=folds,
                             scoring="balanced_accuracy")
    return float(scores.mean()), float(scores.std())


def pca_floor(adata: anndata.AnnData) -> np.ndarray:
    """10 leading PCs of log1p(counts per 10k): the classical reference representation."""
    from sklearn.decomposition import PCA

    x = np.asarray(adata.X, dtype=np.float64)
    logn = np.log1p(x / np.clip(x.sum(axis=1, keepdims=True), 1e-8, None) * 1e4)
    return PCA(n_components=N_LATENT, random_state=SEED).fit_transform(logn)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="default 100 (quick: 2)")
    parser.add_argument("--mc-repeats", type=int, default=None, help="ELBO Monte-Carlo repeats (default 10)")
    parser.add_argument("--scvi-schedule", choices=("cosine", "constant"), default="cosine",
                        help="scVI's lr: biolatent's cosine decay (matched, default) or scVI's constant lr")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 2 ELBO repeats: a smoke run")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (2 if args.quick else 100)
    args.mc_repeats = args.mc_repeats or (2 if args.quick else 10)
    if args.epochs < 1 or args.mc_repeats < 1:
        parser.error("--epochs and --mc-repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both tools, print the table, write JSON + markdown; return the payload."""
    args = parse_args(argv)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message=".*num_workers.*")
    load_before = os.getloadavg()
    adata = load_pbmc68k()
    labels = adata.obs[LABEL].astype(str).to_numpy()
    print(f"pbmc68k: {adata.n_obs} cells x {adata.n_vars} genes; {args.epochs} epochs each", flush=True)

    rows = []
    latents = {}
    runs = (("biolatent", lambda: run_biolatent(adata, args.epochs, args.mc_repeats)),
            ("scvi-tools", lambda: run_scvi(adata, args.epochs, args.mc_repeats, args.scvi_schedule)))
    for name, runner in runs:
        row, latent = runner()
        row["knn_bal_acc"], row["knn_sd"] = knn_probe(latent, labels)
        rows.append(row)
        latents[name] = latent
        print(f"  {name}: {row['s_per_epoch'] * 1e3:.1f} ms/epoch, ELBO/cell {row['elbo_per_cell']:.2f}, "
              f"kNN balanced accuracy {row['knn_bal_acc']:.3f}", flush=True)
    pca_acc, pca_sd = knn_probe(pca_floor(adata), labels)
    rows.append({"tool": "PCA (10 PCs, reference)", "knn_bal_acc": pca_acc, "knn_sd": pca_sd})

    bio, ref = rows[0], rows[1]
    summary = {
        "time_per_epoch_ratio_biolatent_over_scvi": bio["s_per_epoch"] / ref["s_per_epoch"],
        "min_epoch_time_ratio_biolatent_over_scvi": bio["s_per_epoch_min"] / ref["s_per_epoch_min"],
        "time_incl_startup_ratio_biolatent_over_scvi": bio["train_s"] / ref["train_s"],
        "elbo_diff_per_cell_biolatent_minus_scvi": bio["elbo_per_cell"] - ref["elbo_per_cell"],
        "knn_bal_acc_diff_biolatent_minus_scvi": bio["knn_bal_acc"] - ref["knn_bal_acc"],
    }
    table = markdown_table(rows, COLUMNS)
    summary_table = markdown_table([{"quantity": k, "value": v} for k, v in summary.items()],
                                   ("quantity", "value"))
    import scvi

    meta = {
        "dataset": "pbmc68k", "n_cells": adata.n_obs, "n_genes": adata.n_vars, "epochs": args.epochs,
        "mc_repeats": args.mc_repeats, "quick": args.quick, "scvi_schedule": args.scvi_schedule,
        "batch_size": BATCH_SIZE, "lr": LR,
        "weight_decay": WEIGHT_DECAY, "n_latent": N_LATENT, "n_hidden": N_HIDDEN, "knn_k": KNN_K,
        "cv_folds": CV_FOLDS, "label": LABEL, "loadavg_1_5_15_before": load_before,
        "loadavg_1_5_15_after": os.getloadavg(), "scvi_tools": scvi.__version__, "host": host_info(),
        "elbo_definition": "mean over all cells, eval mode, of log p(x|z) (NB, summed over genes, "
                           "lgamma terms included) at one z ~ q(z|x), minus the analytic KL; averaged "
                           "over mc_repeats seeds; higher is better",
    }
    title = (f"# biolatent VAE vs scvi-tools SCVI on pbmc68k ({adata.n_obs} cells x {adata.n_vars} genes), "
             f"cpu\n\n{args.epochs} epochs, batch {BATCH_SIZE}, AdamW lr {LR}, {torch.get_num_threads()} "
             f"threads, torch {torch.__version__}, scvi-tools {scvi.__version__}; ELBO per cell: one-sample "
             f"MC (z ~ q(z|x)), mean of {args.mc_repeats} repeats; kNN (k={KNN_K}) balanced accuracy of "
             f"{LABEL}, {CV_FOLDS}-fold CV. Generated by `python benchmarks/vae_vs_scvi.py` on "
             f"{meta['host']['timestamp']}.\n")
    print()
    print(table)
    print()
    print(summary_table)
    json_path, md_path = write_results(
        args.out_dir, "vae_vs_scvi-cpu",
        {"meta": meta, "columns": list(COLUMNS), "rows": rows, "summary": summary},
        f"{title}\n{table}\n\n{summary_table}\n", args=args,
    )
    print(f"\nwrote {json_path} and {md_path}")
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main()
