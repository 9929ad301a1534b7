"""The label-efficiency sweep: probes on every representation, for each label fraction and repeat seed.

One fixed test set (``split_seed``); for each ``(fraction, seed)`` one labelled subset of the train pool,
shared by every representation, probe and the supervised baseline. Classification splits are stratified
by class and scored with ``METRICS``; regression targets (``task="regression"``) are split at random and
scored with ``REGRESSION_METRICS``. Results are a long per-seed table; ``summarise`` turns it into
``efficiency.tsv`` (mean and 95% Student-t CI over seeds), with the same columns for both tasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.evaluate.metrics import (
    METRICS,
    REGRESSION_METRICS,
    classification_metrics,
    mean_ci,
    regression_metrics,
)
from biolatent.evaluate.probes import PROBES, REGRESSION_PROBES
from biolatent.evaluate.splits import TASKS, holdout_split, label_subset
from biolatent.rundir import atomic_path

PER_SEED_COLUMNS = ["representation", "probe", "fraction", "seed", "metric", "value"]
SUMMARY_COLUMNS = ["representation", "probe", "fraction", "metric", "mean", "ci_low", "ci_high", "n_seeds"]
SUPERVISED = ("supervised", "finetune")

FinetuneFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def _check_labels(labels: np.ndarray, n_classes: int | None, task: str) -> np.ndarray:
    labels = np.asarray(labels)
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    if task == "regression":
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.number):
            raise DataError("regression targets must be a 1-D array of numbers (use prepare_targets)")
        labels = labels.astype(np.float64)
        if not np.isfinite(labels).all():
            raise DataError("regression targets hold NaN or inf values (use prepare_targets)")
        return labels
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError("labels must be a 1-D array of integer class codes (use prepare_labels)")
    if n_classes is None:
        raise DataError("classification needs n_classes")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"label codes must lie in [0, {n_classes}), got {labels.min()}..{labels.max()}")
    return labels


def _check_inputs(
    representations: dict[str, np.ndarray], labels: np.ndarray, fractions: Sequence[float],
    seeds: Sequence[int], probes: Sequence[str], registry: dict,
) -> dict[str, np.ndarray]:
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise DataError(f"label fractions must lie in (0, 1], got {list(fractions)}")
    if not seeds:
        raise DataError("at least one seed is needed")
    unknown = [p for p in probes if p not in registry]
    if unknown:
        raise DataError(f"unknown probe(s) {unknown}; choose from {sorted(registry)}")
    arrays = {}
    for name, values in representations.items():
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] != labels.size:
            raise DataError(f"representation {name!r} has shape {array.shape}; expected ({labels.size}, D)")
        if not np.isfinite(array).all():
            raise DataError(f"representation {name!r} holds NaN or inf values")
        arrays[name] = array
    return arrays


def run_label_efficiency(
    representations: dict[str, np.ndarray],
    labels: np.ndarray,
    n_classes: int | None,
    fractions: Sequence[float],
    seeds: Sequence[int],
    *,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    probes: Sequence[str] = ("linear", "knn"),
    finetune: FinetuneFn | None = None,
    progress: Callable[[str], None] | None = None,
    task: str = "classification",
) -> pd.DataFrame:
    """Per-seed results: columns ``representation, probe, fraction, seed, metric, value``.

    Classification: ``labels`` are integer class codes in ``[0, n_classes)``, probes come from ``PROBES``
    and ``finetune(train_idx, test_idx, seed) -> proba (len(test_idx), n_classes)``. Regression
    (``task="regression"``): ``labels`` are float targets, ``n_classes`` is unused (None), probes come from
    ``REGRESSION_PROBES`` and ``finetune(...) -> predictions (len(test_idx),)``. The supervised baseline is
    trained by the caller on ``train_idx`` only and recorded as representation "supervised", probe
    "finetune".
    """
    labels = _check_labels(labels, n_classes, task)
    regression = task == "regression"
    registry = REGRESSION_PROBES if regression else PROBES
    arrays = _check_inputs(representations, labels, fractions, seeds, probes, registry)
    train_idx, test_idx = holdout_split(labels, test_fraction, split_seed, stratify=not regression)
    y_test = labels[test_idx]
    expected = (test_idx.size,) if regression else (test_idx.size, n_classes)
    rows: list[tuple] = []

    def record(rep: str, probe: str, fraction: float, seed: int, output: np.ndarray) -> None:
        scores = (regression_metrics(y_test, output) if regression
                  else classification_metrics(y_test, output, n_classes))
        for metric, value in scores.items():
            rows.append((rep, probe, float(fraction), int(seed), metric, value))

    def fit_predict(probe: str, x: np.ndarray, subset: np.ndarray) -> np.ndarray:
        model = registry[probe]().fit(x[subset], labels[subset])
        return model.predict(x[test_idx]) if regression else model.predict_proba(x[test_idx], n_classes)

    for fraction in fractions:
        for seed in seeds:
            subset = label_subset(train_idx, labels, fraction, seed, stratify=not regression)
            if progress:
                progress(f"fraction {fraction:g}, seed {seed}: {subset.size} labelled, {test_idx.size} test")
            for rep, x in arrays.items():
                for probe in probes:
                    record(rep, probe, fraction, seed, fit_predict(probe, x, subset))
            if finetune is not None:
                output = np.asarray(finetune(subset, test_idx, seed))
                if output.shape != expected:
                    raise DataError(f"finetune returned shape {output.shape}; expected {expected}")
                record(*SUPERVISED, fraction, seed, output)
    return pd.DataFrame(rows, columns=PER_SEED_COLUMNS)


def summarise(per_seed: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean and Student-t CI over seeds: columns exactly ``SUMMARY_COLUMNS``.

    ``n_seeds`` counts the finite values; rows keep the order in which representations and probes appear,
    then metric (``METRICS`` then ``REGRESSION_METRICS`` order; others last), then increasing fraction.
    """
    missing = set(PER_SEED_COLUMNS) - set(per_seed.columns)
    if missing:
        raise DataError(f"per-seed table lacks column(s) {sorted(missing)}")
    if per_seed.empty:
        raise DataError("per-seed table is empty: nothing to summarise")
    keys = ["representation", "probe", "fraction", "metric"]
    rows = []
    for key, group in per_seed.groupby(keys, sort=False):
        mean, low, high = mean_ci(group["value"].to_numpy(dtype=np.float64), level)
        rows.append((*key, mean, low, high, int(np.isfinite(group["value"].to_numpy(dtype=float)).sum())))
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    order = {name: i for i, name in enumerate(dict.fromkeys(per_seed["representation"]))}
    probe_order = {name: i for i, name in enumerate(dict.fromkeys(per_seed["probe"]))}
    metric_order = {name: i for i, name in enumerate(METRICS + REGRESSION_METRICS)}
    sort_key = pd.DataFrame({
        "r": summary["representation"].map(order),
        "p": summary["probe"].map(probe_order),
        "m": summary["metric"].map(lambda m: metric_order.get(m, len(metric_order))),
        "f": summary["fraction"],
    })
    return summary.loc[sort_key.sort_values(["r", "p", "m", "f"], kind="stable").index].reset_index(drop=True)


def pca_features(raw: np.ndarray, n_components: int = 50, seed: int = 0) -> np.ndarray:
    """The PCA floor: standardise the raw features, then keep the top principal components (float32).

    Fitted on all samples, test samples included: PCA sees no labels, so this is the same transductive
    setting as self-supervised pre-training on the whole data set. ``n_components`` is clipped to the data.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = raw.toarray() if hasattr(raw, "toarray") else np.asarray(raw)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) == 0:
        raise DataError(f"raw features must be a non-empty 2-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("raw features hold NaN or inf values")
    k = max(1, min(n_components, x.shape[0], x.shape[1]))
    scaled = StandardScaler().fit_transform(x)
    return PCA(n_components=k, random_state=seed).fit_transform(scaled).astype(np.float32)


def write_efficiency(summary: pd.DataFrame, path: str | Path) -> Path:
    """Write the summary as a tab-separated file (``SUMMARY_COLUMNS``), atomically."""
    if list(summary.columns) != SUMMARY_COLUMNS:
        raise DataError(f"efficiency summary needs columns {SUMMARY_COLUMNS}, got {list(summary.columns)}")
    with atomic_path(path) as tmp:
        summary.to_csv(tmp, sep="\t", index=False)
    return Path(path)


def read_efficiency(path: str | Path) -> pd.DataFrame:
    """Read an ``efficiency.tsv`` written by :func:`write_efficiency`; DataError if it is not one."""
    try:
        table = pd.read_csv(path, sep="\t")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if list(table.columns) != SUMMARY_COLUMNS:
        raise DataError(f"{path} is not an efficiency table: columns {list(table.columns)}")
    return table


def headline(summary: pd.DataFrame, fraction: float = 0.1, metric: str | None = None) -> dict:
    """The headline numbers at one label fraction: ``{representation}_{probe}`` -> mean ``metric``.

    ``metric`` defaults to ``balanced_accuracy`` when the summary has it (classification), else
    ``pearson_r`` (regression). Uses the swept fraction closest to ``fraction`` on a log scale (reported as
    ``fraction``). Adds ``ssl_fraction_of_supervised`` = ssl_linear / supervised_finetune (None when either
    is missing or the supervised value is not positive): the "SSL features reach X of supervised
    performance" claim.
    """
    if metric is None:
        metric = "balanced_accuracy" if (summary["metric"] == "balanced_accuracy").any() else "pearson_r"
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise DataError(f"efficiency summary has no rows for metric {metric!r}")
    available = np.unique(rows["fraction"].to_numpy(dtype=float))
    chosen = float(available[np.argmin(np.abs(np.log(available) - math.log(fraction)))])
    at = rows[np.isclose(rows["fraction"].to_numpy(dtype=float), chosen)]
    result: dict = {"metric": metric, "fraction": chosen}
    for _, row in at.iterrows():
        value = float(row["mean"])
        result[f"{row['representation']}_{row['probe']}"] = value if math.isfinite(value) else None
    ssl, sup = result.get("ssl_linear"), result.get("_".join(SUPERVISED))
    result["ssl_fraction_of_supervised"] = ssl / sup if ssl is not None and sup is not None and sup > 0 else None
    return result
