"""The label-efficiency sweep: probes on every representation, for each label fraction and repeat seed.

One test set per call (``split_seed``, or an explicit ``split``); for each ``(fraction, seed)`` one
labelled subset of the train pool, shared by every representation, probe and the supervised baseline.
Classification splits are stratified by class and scored with ``METRICS``; regression targets
(``task="regression"``) are split at random and scored with ``REGRESSION_METRICS``. Results are a long
per-seed table; ``summarise`` turns it into ``efficiency.tsv`` (mean and 95% Student-t CI over every value
behind a cell: pre-training seed x test split x labelled subset, named in its ``sources`` column), with the
same columns for both tasks.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.evaluate.metrics import (
    METRIC_RANGES,
    METRICS,
    REGRESSION_METRICS,
    chance_level,
    classification_metrics,
    mean_ci,
    regression_metrics,
)
from biolatent.evaluate.probes import PROBES, REGRESSION_PROBES
from biolatent.evaluate.splits import TASKS, holdout_split, label_subset
from biolatent.progress import eta_text
from biolatent.rundir import atomic_path

PER_SEED_COLUMNS = ["representation", "probe", "fraction", "seed", "metric", "value"]
# columns of efficiency_per_seed.tsv naming the other sources of variation (absent: one pre-training run, split 0)
SOURCE_COLUMNS = {"pretrain_seed": "pretrain_seed", "test_split": "test_split", "seed": "label_subset"}
LEGACY_SUMMARY_COLUMNS = ["representation", "probe", "fraction", "metric", "mean", "ci_low", "ci_high", "n_seeds"]
SUMMARY_COLUMNS = [*LEGACY_SUMMARY_COLUMNS, "sources", "protocol"]
PROTOCOLS = ("transductive", "inductive")
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
    split: tuple[np.ndarray, np.ndarray] | None = None,
    probes: Sequence[str] = ("linear", "knn"),
    finetune: FinetuneFn | None = None,
    progress: Callable[[str], None] | None = None,
    task: str = "classification",
    fit_labels: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-seed results: columns ``representation, probe, fraction, seed, metric, value``.

    Classification: ``labels`` are integer class codes in ``[0, n_classes)``, probes come from ``PROBES``
    and ``finetune(train_idx, test_idx, seed) -> proba (len(test_idx), n_classes)``. Regression
    (``task="regression"``): ``labels`` are float targets, ``n_classes`` is unused (None), probes come from
    ``REGRESSION_PROBES`` and ``finetune(...) -> predictions (len(test_idx),)``. The supervised baseline is
    trained by the caller on ``train_idx`` only and recorded as representation "supervised", probe
    "finetune". ``split`` = ``(train_idx, test_idx)`` replaces the stratified split of ``split_seed`` (the
    inductive protocol's test ids recorded at pre-training). ``fit_labels`` (same shape and coding as ``labels``,
    e.g. labels with noise) are what the probes are fitted on; the splits and subsets are drawn, and the test set
    scored, with ``labels`` (a ``finetune`` trained on other labels is the caller's).
    """
    labels = _check_labels(labels, n_classes, task)
    train_labels = labels if fit_labels is None else _check_labels(fit_labels, n_classes, task)
    if train_labels.shape != labels.shape:
        raise DataError(f"fit_labels has shape {train_labels.shape}; expected {labels.shape}")
    regression = task == "regression"
    registry = REGRESSION_PROBES if regression else PROBES
    arrays = _check_inputs(representations, labels, fractions, seeds, probes, registry)
    if split is None:
        train_idx, test_idx = holdout_split(labels, test_fraction, split_seed, stratify=not regression)
    else:
        train_idx, test_idx = (np.asarray(part, dtype=np.int64) for part in split)
        if train_idx.size == 0 or test_idx.size == 0:
            raise DataError(f"split {split_seed}: {train_idx.size} training and {test_idx.size} test samples")
    y_test = labels[test_idx]
    expected = (test_idx.size,) if regression else (test_idx.size, n_classes)
    rows: list[tuple] = []

    def record(rep: str, probe: str, fraction: float, seed: int, output: np.ndarray) -> None:
        scores = (regression_metrics(y_test, output) if regression
                  else classification_metrics(y_test, output, n_classes))
        for metric, value in scores.items():
            rows.append((rep, probe, float(fraction), int(seed), metric, value))

    def fit_predict(probe: str, x: np.ndarray, subset: np.ndarray) -> np.ndarray:
        model = registry[probe]().fit(x[subset], train_labels[subset])
        return model.predict(x[test_idx]) if regression else model.predict_proba(x[test_idx], n_classes)

    total, done, started = len(fractions) * len(seeds), 0, time.perf_counter()
    for fraction in fractions:
        for seed in seeds:
            subset = label_subset(train_idx, labels, fraction, seed, stratify=not regression)
            if progress:
                progress(f"[{done + 1}/{total}] fraction {fraction:g}, seed {seed}: {subset.size} labelled, "
                         f"{test_idx.size} test{eta_text(time.perf_counter() - started, done, total)}")
            done += 1
            for rep, x in arrays.items():
                for probe in probes:
                    record(rep, probe, fraction, seed, fit_predict(probe, x, subset))
            if finetune is not None:
                output = np.asarray(finetune(subset, test_idx, seed))
                if output.shape != expected:
                    raise DataError(f"finetune returned shape {output.shape}; expected {expected}")
                record(*SUPERVISED, fraction, seed, output)
    return pd.DataFrame(rows, columns=PER_SEED_COLUMNS)


def labelled_sizes(
    labels: np.ndarray, fractions: Sequence[float], *, test_fraction: float = 0.2, split_seed: int = 0,
    task: str = "classification", train_idx: np.ndarray | None = None,
) -> dict[float, int]:
    """How many labelled samples each fraction gives (seed 0; stratified fractions keep one per class at least) of
    the training part of the split of ``split_seed``, or of the given ``train_idx`` (a fixed split)."""
    stratify = task != "regression"
    if train_idx is None:
        train_idx, _ = holdout_split(np.asarray(labels), test_fraction, split_seed, stratify=stratify)
    return {float(f): int(label_subset(train_idx, np.asarray(labels), f, 0, stratify=stratify).size)
            for f in fractions}


def same_size_fractions(sizes: dict[float, int]) -> list[str]:
    """One sentence per group of fractions that give the same number of labels (e.g. 1% and 5% = one per class)."""
    groups: dict[int, list[float]] = {}
    for fraction, size in sizes.items():
        groups.setdefault(size, []).append(fraction)
    return [f"fractions {', '.join(f'{f:g}' for f in group)} all give {size} labelled samples"
            for size, group in groups.items() if len(group) > 1]


def sources(group: pd.DataFrame) -> str:
    """What varied behind one summary row, ``+``-joined in the order pretrain_seed, test_split, label_subset.

    A source counts when its column takes more than one value in ``group`` (a group of :func:`one_draw_per_fit`'s
    table, where the labelled subset no longer varies at fraction 1.0). ``none`` when nothing varied.
    """
    names = [name for column, name in SOURCE_COLUMNS.items()
             if column in group.columns and group[column].dropna().nunique() >= 2]
    return "+".join(names) or "none"


def one_draw_per_fit(per_seed: pd.DataFrame) -> pd.DataFrame:
    """The per-seed table with the repeats of one fit merged: at fraction 1.0 every labelled-subset ``seed`` labels
    the whole training pool, so the rows that differ only in ``seed`` (and ``value``) are averaged into one row
    (NaN values ignored; ``seed`` the smallest of them). A probe repeats the same value there; a supervised
    encoder's repeats differ in its initialisation only. Rows below fraction 1.0 are kept as they are.
    """
    whole = np.isclose(per_seed["fraction"].to_numpy(dtype=float), 1.0)
    if "seed" not in per_seed.columns or not whole.any():
        return per_seed
    keys = [column for column in per_seed.columns if column not in ("seed", "value")]
    merged = (per_seed[whole].groupby(keys, sort=False, dropna=False, as_index=False)
              .agg(value=("value", "mean"), seed=("seed", "min")))
    return pd.concat([per_seed[~whole], merged[per_seed.columns]], ignore_index=True)


def summarise(per_seed: pd.DataFrame, level: float = 0.95, protocol: str = "transductive") -> pd.DataFrame:
    """Mean and Student-t CI over every value of a cell (clipped to the metric's range): columns exactly
    ``SUMMARY_COLUMNS``.

    The values behind one (representation, probe, fraction, metric) are all its rows: every pre-training seed x
    test split x labelled subset the per-seed table holds (``sources`` names those that varied, ``protocol`` is
    written as given). At fraction 1.0 the labelled subset is the whole training pool whatever its seed, so the rows
    of one pre-training seed and test split repeat one fit (identical values for a deterministic probe): they are
    averaged into one value first (:func:`one_draw_per_fit`), and the interval covers the sources that varied
    only; counting the repeats as independent would narrow it by about the square root of their number
    (pseudo-replication). ``n_seeds`` counts the finite values behind the interval; rows keep the order in which
    representations and probes appear, then metric (``METRICS`` then ``REGRESSION_METRICS`` order; others last),
    then increasing fraction.
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    missing = set(PER_SEED_COLUMNS) - set(per_seed.columns)
    if missing:
        raise DataError(f"per-seed table lacks column(s) {sorted(missing)}")
    if per_seed.empty:
        raise DataError("per-seed table is empty: nothing to summarise")
    keys = ["representation", "probe", "fraction", "metric"]
    rows = []
    for key, group in one_draw_per_fit(per_seed).groupby(keys, sort=False):
        values = group["value"].to_numpy(dtype=np.float64)
        mean, low, high = mean_ci(values, level, METRIC_RANGES.get(key[3]))
        rows.append((*key, mean, low, high, int(np.isfinite(values).sum()), sources(group), protocol))
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


PCA_MAX_COMPONENTS = 50
PCA_SAMPLES_PER_COMPONENT = 5


def pca_components(n_samples: int, n_features: int, max_components: int = PCA_MAX_COMPONENTS) -> int:
    """How many principal components the PCA floor keeps: ``min(max_components, n_features, n_samples // 5)``.

    At least five samples per component (at least 2 components): 700 cells keep 50, a cohort of 57 samples
    keeps 11. More components than the samples support are noise directions that the probes must then
    learn to ignore (57 samples with 50 components scored 0.39-0.50 balanced accuracy where 10 scored
    0.53-0.90). The rule sees no labels.
    """
    return int(max(1, min(max_components, n_features, max(2, n_samples // PCA_SAMPLES_PER_COMPONENT))))


def pca_features(
    raw: np.ndarray, n_components: int | None = None, seed: int = 0, fit_rows: np.ndarray | None = None
) -> np.ndarray:
    """The PCA floor: standardise the raw features, then keep the top principal components (float32).

    ``n_components=None`` follows :func:`pca_components`; an explicit number is clipped to the data. By default
    fitted on all samples, test samples included: PCA sees no labels, so this is the same transductive setting
    as self-supervised pre-training on the whole data set. ``fit_rows`` (the inductive protocol): the scaler and
    the components are fitted on those rows only (the training samples), then applied to every row. The
    components are not whitened: the probes keep their relative variance (see ``evaluate.probes``).
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = raw.toarray() if hasattr(raw, "toarray") else np.asarray(raw)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) == 0:
        raise DataError(f"raw features must be a non-empty 2-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError("raw features hold NaN or inf values")
    fit_x = x if fit_rows is None else x[np.asarray(fit_rows, dtype=np.int64)]
    if fit_x.shape[0] < 2:
        raise DataError(f"PCA needs at least 2 samples to fit, got {fit_x.shape[0]}")
    wanted = pca_components(*fit_x.shape) if n_components is None else n_components
    k = max(1, min(wanted, fit_x.shape[0], fit_x.shape[1]))
    scaler = StandardScaler().fit(fit_x)
    pca = PCA(n_components=k, random_state=seed).fit(scaler.transform(fit_x))
    return pca.transform(scaler.transform(x)).astype(np.float32)


EVALUATE_DIR = "evaluate"


def label_slug(label: str) -> str:
    """A folder name for a label column: letters, digits, ``-``, ``_`` and ``.`` kept, anything else ``_``."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", str(label)).strip(".")
    return slug or "_"


def label_dir(out_dir: str | Path, label: str) -> Path:
    """Where the outputs of one label go: ``OUT/evaluate/<label>/`` (each label keeps its own files)."""
    return Path(out_dir) / EVALUATE_DIR / label_slug(label)


def evaluated_labels(out_dir: str | Path, transfer: bool = False) -> list[Path]:
    """The per-label folders of a run that hold an ``efficiency.tsv``, sorted by name; ``transfer``: those of its
    evaluations on other data (``RUN/transfer/<name>/evaluate/<label>/``, ``evaluate --data``) instead."""
    if transfer:
        root = Path(out_dir) / "transfer"
        return sorted(p.parent for p in root.glob(f"*/{EVALUATE_DIR}/*/efficiency.tsv")) if root.is_dir() else []
    root = Path(out_dir) / EVALUATE_DIR
    return sorted(p.parent for p in root.glob("*/efficiency.tsv")) if root.is_dir() else []


def write_efficiency(summary: pd.DataFrame, path: str | Path) -> Path:
    """Write the summary as a tab-separated file (``SUMMARY_COLUMNS``), atomically."""
    if list(summary.columns) != SUMMARY_COLUMNS:
        raise DataError(f"efficiency summary needs columns {SUMMARY_COLUMNS}, got {list(summary.columns)}")
    with atomic_path(path) as tmp:
        summary.to_csv(tmp, sep="\t", index=False)
    return Path(path)


def read_efficiency(path: str | Path) -> pd.DataFrame:
    """Read an ``efficiency.tsv`` written by :func:`write_efficiency`; DataError if it is not one.

    Tables written before ``sources`` and ``protocol`` existed read as what they were: intervals over the
    labelled subset only, transductive."""
    try:
        table = pd.read_csv(path, sep="\t")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if list(table.columns) == LEGACY_SUMMARY_COLUMNS:
        table = table.assign(sources="label_subset", protocol="transductive")
    if list(table.columns) != SUMMARY_COLUMNS:
        raise DataError(f"{path} is not an efficiency table: columns {list(table.columns)}")
    return table


def headline(
    summary: pd.DataFrame, fraction: float = 0.1, metric: str | None = None, n_classes: int | None = None
) -> dict:
    """The headline numbers at one label fraction: ``{representation}_{probe}`` -> mean ``metric``.

    ``metric`` defaults to ``balanced_accuracy`` when the summary has it (classification), else
    ``mean_gene_pearson_r`` (expression prediction), else ``pearson_r`` (regression). Uses the swept fraction
    closest to ``fraction`` on a log scale (reported as
    ``fraction``). Adds ``ssl_fraction_of_supervised`` = ssl_linear / supervised_finetune, the "SSL features
    reach X of supervised performance" claim, only where that ratio means something: the supervised
    baseline must be above chance (``chance``, from :func:`chance_level`; its CI's lower end above chance
    when it has one). Otherwise the ratio is None and ``ratio_withheld`` says why.
    """
    if metric is None:
        present = set(summary["metric"])
        metric = next((m for m in ("balanced_accuracy", "mean_gene_pearson_r") if m in present), "pearson_r")
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise DataError(f"efficiency summary has no rows for metric {metric!r}")
    available = np.unique(rows["fraction"].to_numpy(dtype=float))
    chosen = float(available[np.argmin(np.abs(np.log(available) - math.log(fraction)))])
    at = rows[np.isclose(rows["fraction"].to_numpy(dtype=float), chosen)]
    chance = chance_level(metric, n_classes)
    result: dict = {"metric": metric, "fraction": chosen, "chance": chance}
    supervised_low = None
    for _, row in at.iterrows():
        value = float(row["mean"])
        key = f"{row['representation']}_{row['probe']}"
        result[key] = value if math.isfinite(value) else None
        if key == "_".join(SUPERVISED):
            supervised_low = float(row["ci_low"]) if math.isfinite(float(row["ci_low"])) else result[key]
    ssl, sup = result.get("ssl_linear"), result.get("_".join(SUPERVISED))
    result["ssl_fraction_of_supervised"] = None
    result["ratio_withheld"] = None
    if ssl is None or sup is None:
        result["ratio_withheld"] = "no SSL linear or supervised result at this fraction"
    elif chance is None or supervised_low is None:
        result["ratio_withheld"] = f"the chance level of {metric} is unknown"
    elif supervised_low <= chance:
        result["ratio_withheld"] = (f"the supervised baseline ({sup:.3g}, CI low {supervised_low:.3g}) is not above "
                                    f"chance ({chance:.3g})")
    elif sup > 0:
        result["ssl_fraction_of_supervised"] = ssl / sup
    return result
