"""Time-series self-supervision (TS2Vec, masked reconstruction) against random init, PCA and MiniRocket, with few
labels, on the UCR/UEA data sets shipped in aeon and on simulated ECG rhythms.

    python benchmarks/series_ssl.py [--quick] [--datasets NAME ...] [--steps S] [--pretrain-seeds P]
                                    [--label-seeds K] [--work DIR]

1. Data: every classification data set shipped in aeon (``datasets.aeon_ucr.SHIPPED``: ``aeon-gunpoint``,
   ``aeon-arrowhead``, ``aeon-italypowerdemand``, ``aeon-basicmotions`` (6 channels), ``aeon-japanesevowels`` (12
   channels, 7-29 steps), ``aeon-acsf1``, ``aeon-osuleaf``, ``aeon-pickupgesturewiimotez`` (29-361 steps),
   ``aeon-unittest`` and ``aeon-covid3month-disc``), loaded through ``data.modality: series`` (official train/test
   split in ``meta.tsv``; unequal lengths resampled to the longest), and ``ecg-sim``: ECG-like signals of four
   rhythm classes (``data.simulate.ecg``, 4 s at 32 Hz, 50 per class to train and 50 per class to test, one
   seeded draw).
2. Pre-training on the training split only, without labels, through ``train.fit`` (the one training loop):
   ``ts2vec`` with TS2Vec's dilated CNN (``series_cnn``) and ``masked_series`` with the patch transformer
   (``series_transformer``), ``--steps`` optimizer steps at batch 8 (TS2Vec's 200 iterations for small data
   sets), learning rate 1e-3, for each of ``--pretrain-seeds`` seeds. The random-init baseline of each is the
   same network, same seed, before training.
3. Label efficiency (``evaluate.efficiency.run_label_efficiency``) with the official split (``split=``): 10% and
   100% of the training split labelled (stratified, at least one per class; ``--label-seeds`` draws), the same
   linear probe (logistic regression, L2 chosen by cross-validation on the labelled subset only, as ``biolatent
   evaluate``) on every frozen representation, scored on the official test split. PCA of the raw values (fitted on
   the training split, components by ``pca_components``). MiniRocket (Dempster, Schmidt & Webb 2021, KDD; aeon's
   ``MiniRocketClassifier``: 10k features + ridge classifier with its own leave-one-out CV over alpha) trained on
   the same labelled subsets. Nothing is tuned on the test split.
4. Intervals: mean and 95% Student-t CI over pre-training seeds x labelled-subset draws (MiniRocket, PCA: draws
   only); ``ssl - random init`` is also given as a paired difference over the same (pre-training seed, draw)
   pairs.

Writes ``benchmarks/results/series_ssl-<cpu|cuda>.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from _report import RESULTS_DIR, device_tag, host_info, markdown_table, write_results

from biolatent.build import build_method, fit_input_statistics, load_config
from biolatent.data.features import raw_features
from biolatent.data.loaders import load_samples
from biolatent.data.samples import SampleSet
from biolatent.datasets.aeon_ucr import SHIPPED, dataset_name
from biolatent.embed import compute_embeddings
from biolatent.evaluate.efficiency import pca_features, run_label_efficiency, summarise
from biolatent.evaluate.metrics import mean_ci
from biolatent.evaluate.splits import prepare_labels
from biolatent.train.fit import fit

DATASETS = (*(dataset_name(name) for name in SHIPPED), "ecg-sim")  # every classification set aeon ships
METHODS = {"ts2vec": "series_cnn", "masked_series": "series_transformer"}
FRACTIONS = (0.1, 1.0)
BATCH_SIZE = 8
ECG_FS, ECG_SECONDS = 32.0, 4.0  # 128 steps per signal
METRIC = "accuracy"  # the UCR archive's metric; balanced accuracy is stored too


def data_section(name: str, work: Path, ecg_per_class: int) -> dict[str, Any]:
    """The data section of one benchmark data set (the ECG simulation written to ``work`` first)."""
    if name != "ecg-sim":
        return {"modality": "series", "dataset": name}
    from biolatent.data.simulate.ecg import RHYTHMS, write_ecg_dataset

    folder = work / "ecg-sim"
    n = ecg_per_class * len(RHYTHMS)
    path = write_ecg_dataset(folder / "ecg.npz", 2 * n, seed=0, fs=ECG_FS, seconds=ECG_SECONDS)
    ids = [f"ecg{i}" for i in range(2 * n)]
    pd.DataFrame({"id": ids, "split": ["train"] * n + ["test"] * n}).to_csv(folder / "meta.tsv", sep="\t",
                                                                            index=False)
    return {"modality": "series", "path": str(path), "metadata": str(folder / "meta.tsv")}


def minirocket(x: np.ndarray, labels: np.ndarray, n_classes: int):
    """``finetune(train_idx, test_idx, seed) -> one-hot predictions`` of aeon's MiniRocketClassifier."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    def finetune(train_idx: np.ndarray, test_idx: np.ndarray, seed: int) -> np.ndarray:
        model = MiniRocketClassifier(random_state=seed, n_jobs=1).fit(x[train_idx], labels[train_idx])
        predicted = model.predict(x[test_idx]).astype(np.int64)
        return np.eye(n_classes)[predicted]

    return finetune


def pretrain_and_embed(data: dict[str, Any], samples: SampleSet, train_rows: np.ndarray, method: str, seed: int,
                       steps: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(random-init embeddings, pre-trained embeddings, seconds) of every sample; training on ``train_rows``."""
    epochs = max(1, round(steps * BATCH_SIZE / train_rows.size))
    config = load_config({"data": data, "method": {"name": method}, "model": {"name": METHODS[method]},
                          "train": {"epochs": epochs, "batch_size": BATCH_SIZE, "lr": 1e-3, "seed": seed,
                                    "accelerator": "cpu", "devices": 1}})
    torch.manual_seed(seed)
    model = build_method(config, samples.info)
    x_train = samples.x[torch.as_tensor(train_rows)]
    fit_input_statistics(model, x_train)
    random_init = compute_embeddings(model, samples.x)
    model.train()  # compute_embeddings left it in eval mode (Lightning keeps the mode it is given)
    started = time.perf_counter()
    fit(model, x_train, config.train, progress=False)
    return random_init, compute_embeddings(model, samples.x), time.perf_counter() - started


def pretrain_dataset(name: str, args: argparse.Namespace, say) -> dict[str, Any]:
    """Load one data set, pre-train every method for every seed on its training split; -> what the probes need."""
    data = data_section(name, args.work, args.ecg_per_class)
    samples = load_samples(load_config({"data": data, "method": {"name": "ts2vec"}}).data)
    labels, classes, keep = prepare_labels(samples.obs["label"])
    if not keep.all():
        raise SystemExit(f"{name}: {int((~keep).sum())} series without a label")
    split = samples.obs["split"].to_numpy()
    train_idx, test_idx = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    info = {"dataset": name, "n_train": int(train_idx.size), "n_test": int(test_idx.size),
            "channels": int(samples.x.shape[1]), "length": int(samples.x.shape[2]), "classes": len(classes),
            "train_seconds": {}}
    say(f"{name}: {info['n_train']} train / {info['n_test']} test series, {info['channels']} channel(s) x "
        f"{info['length']} steps, {len(classes)} classes")
    per_pretrain_seed = []
    for pretrain_seed in range(args.pretrain_seeds):
        representations = {}
        if pretrain_seed == 0:
            representations["pca"] = pca_features(raw_features(samples), seed=0, fit_rows=train_idx)
        for method, encoder in METHODS.items():
            random_init, trained, seconds = pretrain_and_embed(data, samples, train_idx, method, pretrain_seed,
                                                               args.steps)
            representations[method] = trained
            representations[f"random_init_{encoder}"] = random_init
            info["train_seconds"].setdefault(method, []).append(round(seconds, 1))
            say(f"  {method} seed {pretrain_seed}: {seconds:.0f} s")
        per_pretrain_seed.append(representations)
    return {"info": info, "x": samples.x.numpy().astype(np.float64), "labels": labels, "n_classes": len(classes),
            "split": (train_idx, test_idx), "representations": per_pretrain_seed}


def probe_dataset(prepared: dict[str, Any], args: argparse.Namespace) -> pd.DataFrame:
    """The label-efficiency sweep of every pre-training seed's representations; MiniRocket with seed 0's (it does
    not depend on pre-training)."""
    tables = []
    labels, n_classes = prepared["labels"], prepared["n_classes"]
    for pretrain_seed, representations in enumerate(prepared["representations"]):
        finetune = minirocket(prepared["x"], labels, n_classes) if pretrain_seed == 0 else None
        per_seed = run_label_efficiency(representations, labels, n_classes, FRACTIONS, list(range(args.label_seeds)),
                                        split=prepared["split"], probes=("linear",), finetune=finetune)
        tables.append(per_seed.assign(pretrain_seed=pretrain_seed))
    per_seed = pd.concat(tables, ignore_index=True)
    per_seed.loc[per_seed["representation"] == "supervised", ["representation", "probe"]] = ["minirocket",
                                                                                            "ridge_cv"]
    return per_seed.assign(dataset=prepared["info"]["dataset"])


def summary_rows(per_seed: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for dataset, group in per_seed.groupby("dataset", sort=False):
        summary = summarise(group.drop(columns="dataset"))
        for row in summary.itertuples(index=False):
            if row.metric in (METRIC, "balanced_accuracy"):
                rows.append({"dataset": dataset, "representation": row.representation, "probe": row.probe,
                             "fraction": float(row.fraction), "metric": row.metric, "mean": float(row.mean),
                             "ci_low": float(row.ci_low), "ci_high": float(row.ci_high), "n": int(row.n_seeds),
                             "sources": row.sources})
    return rows


def paired_gains(per_seed: pd.DataFrame) -> list[dict[str, Any]]:
    """SSL minus its random-init encoder, paired on (pre-training seed, labelled subset): mean and 95% CI."""
    rows = []
    table = per_seed[per_seed["metric"] == METRIC]
    for (dataset, fraction), group in table.groupby(["dataset", "fraction"], sort=False):
        wide = group.pivot_table(index=["pretrain_seed", "seed"], columns="representation", values="value")
        for method, encoder in METHODS.items():
            diff = (wide[method] - wide[f"random_init_{encoder}"]).dropna().to_numpy()
            mean, low, high = mean_ci(diff)
            rows.append({"dataset": dataset, "method": method, "fraction": float(fraction), "metric": METRIC,
                         "gain": float(mean), "ci_low": float(low), "ci_high": float(high), "n": int(diff.size),
                         "ssl_beats_random_init": bool(mean > 0)})
    return rows


def results_table(rows: list[dict[str, Any]]) -> str:
    """Rows: data set x representation; columns: accuracy (95% CI) at each label fraction."""
    table = pd.DataFrame([r for r in rows if r["metric"] == METRIC])
    records = []
    for (dataset, rep), group in table.groupby(["dataset", "representation"], sort=False):
        record: dict[str, Any] = {"dataset": dataset, "representation": rep}
        for row in group.itertuples(index=False):
            record[f"{row.fraction * 100:g}% labels"] = f"{row.mean:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"
        records.append(record)
    return markdown_table(records, ["dataset", "representation", *(f"{f * 100:g}% labels" for f in FRACTIONS)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="*", default=None, help=f"default: {' '.join(DATASETS)}")
    parser.add_argument("--steps", type=int, default=None, help="pre-training steps at batch 8 (default 200)")
    parser.add_argument("--pretrain-seeds", type=int, default=None, help="default 2")
    parser.add_argument("--label-seeds", type=int, default=None, help="labelled-subset draws (default 5)")
    parser.add_argument("--ecg-per-class", type=int, default=None, help="ECG series per class and split (50)")
    parser.add_argument("--work", type=Path, default=None, help="simulated data (default: cache folder)")
    parser.add_argument("--quick", action="store_true", help="two data sets, 10 steps, 1 seed: a smoke run")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    q = args.quick
    args.datasets = args.datasets or (["aeon-italypowerdemand", "ecg-sim"] if q else list(DATASETS))
    args.steps = args.steps or (10 if q else 200)
    args.pretrain_seeds = args.pretrain_seeds or (1 if q else 2)
    args.label_seeds = args.label_seeds or (2 if q else 5)
    args.ecg_per_class = args.ecg_per_class or (5 if q else 50)
    if args.work is None:
        cache = Path(os.environ.get("BIOLATENT_CACHE", Path.home() / ".cache" / "biolatent"))
        args.work = cache / "bench" / ("series_ssl-quick" if q else "series_ssl")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)

    def say(message: str) -> None:
        print(message, flush=True)

    started = time.perf_counter()
    # every pre-training first: once numba (MiniRocket) has started its worker threads in this process, torch
    # training beside them ran ~6x slower on 2 cores
    prepared = [pretrain_dataset(name, args, say) for name in args.datasets]
    datasets = [p["info"] for p in prepared]
    say("probing ...")
    per_seed = pd.concat([probe_dataset(p, args) for p in prepared], ignore_index=True)
    rows, gains = summary_rows(per_seed), paired_gains(per_seed)
    wins = sorted({g["dataset"] for g in gains if g["fraction"] == 0.1 and g["method"] == "ts2vec"
                   and g["ssl_beats_random_init"] and g["dataset"].startswith("aeon-")})
    meta = {"steps": args.steps, "batch_size": BATCH_SIZE, "pretrain_seeds": args.pretrain_seeds,
            "label_seeds": args.label_seeds, "fractions": list(FRACTIONS), "ecg_per_class": args.ecg_per_class,
            "metric": METRIC, "quick": args.quick, "seconds": time.perf_counter() - started, "host": host_info(),
            "ts2vec_beats_random_init_at_10pct_on_aeon": wins}
    gain_records = [{"dataset": g["dataset"], "method": g["method"], "labels": f"{g['fraction'] * 100:g}%",
                     "gain": f"{g['gain']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]", "n": g["n"]}
                    for g in gains]
    markdown = "\n".join([
        f"# Time-series self-supervision vs random init, PCA and MiniRocket ({device_tag().upper()})\n",
        f"Test-split {METRIC} (mean [95% CI]) of a linear probe on frozen representations, pre-trained for "
        f"{args.steps} steps (batch {BATCH_SIZE}) on the training split without labels; {args.label_seeds} "
        f"labelled-subset draws x {args.pretrain_seeds} pre-training seeds (PCA and MiniRocket: draws only). "
        f"Generated by `python benchmarks/series_ssl.py` in {meta['seconds'] / 60:.0f} min.\n",
        markdown_table(datasets, ["dataset", "n_train", "n_test", "channels", "length", "classes"]), "",
        results_table(rows), "",
        "## SSL minus its random-init encoder (paired over pre-training seed x labelled subset)\n",
        markdown_table(gain_records, ["dataset", "method", "labels", "gain", "n"]), "",
        f"TS2Vec beats its random-init encoder at 10% labels (mean paired gain > 0) on {len(wins)} aeon data "
        f"set(s): {', '.join(wins) or 'none'}.",
    ])
    print(markdown)
    result = {"meta": meta, "datasets": datasets, "rows": rows, "gains": gains}
    json_path, md_path = write_results(args.out_dir, f"series_ssl-{device_tag()}" + ("-quick" if args.quick else ""),
                                       result, markdown, args=args)
    print(f"wrote {json_path} and {md_path}")
    return result


if __name__ == "__main__":
    main()
