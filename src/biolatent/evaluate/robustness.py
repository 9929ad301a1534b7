"""The robustness checks of a representation: cross-site transfer, site leakage, label noise, view ablation.

Pure functions over embeddings, labels and sites -> long per-seed tables; :func:`summarise_robustness` turns
them into ``robustness.tsv`` (columns ``ROBUSTNESS_COLUMNS``). The probes, splits, labelled subsets and
metrics are those of the label-efficiency sweep (:func:`~biolatent.evaluate.efficiency.run_label_efficiency`).
The checks follow the review's robustness questions: does a representation transfer to a site it never saw
(leave-one-site-out, e.g. Zech et al. 2018, PLoS Med 15(11), "Variable generalization performance of a deep
learning model to detect pneumonia in chest radiographs: a cross-sectional study"), how strongly does it
encode the acquisition site itself, a spurious cue a probe can exploit (the same paper; Glocker et al. 2019,
arXiv:1910.04597, "Machine learning with multi-site imaging data: an empirical study on the impact of scanner
effects"), how fast do probes degrade when training labels are wrong (symmetric label noise, Natarajan et al.
2013, NeurIPS, "Learning with noisy labels"), and which family of augmentation views the features depend on
(one view family removed at a time, as in Chen et al. 2020, ICML, "A simple framework for contrastive
learning of visual representations", section 3).

What varies behind an interval (mean and 95% Student-t CI, :func:`~biolatent.evaluate.metrics.mean_ci`): the
repeat ``seeds`` (each draws a labelled subset of ``fraction`` of the training pool; for site leakage, label
noise and the ablation also its own stratified test split and, for label noise, its own flipped labels) and,
for ``ssl`` and ``random_init``, every pre-training seed of the run. The cross-site test set is the held-out
site itself, so the split does not vary there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.evaluate.efficiency import FinetuneFn, run_label_efficiency
from biolatent.evaluate.metrics import METRIC_RANGES, mean_ci
from biolatent.evaluate.splits import holdout_split
from biolatent.rundir import atomic_path

CHECKS = ("cross_site", "site_leakage", "label_noise", "augmentation_ablation")
ROBUSTNESS_COLUMNS = ["check", "representation", "probe", "setting", "metric", "mean", "ci_low", "ci_high"]
PER_SEED_COLUMNS = ["check", "representation", "probe", "setting", "pretrain_seed", "seed", "metric", "value"]
CLASSIFICATION_METRICS = ("balanced_accuracy", "auroc")  # as the label-efficiency report shows them
REGRESSION_METRICS = ("pearson_r", "r2")
DROP_SUFFIX = "_drop"  # label noise: metric at noise 0 minus metric at the noise level, paired by seed
ALL_SITES = "all"  # the setting of the site-leakage rows


def check_noise_levels(levels: Sequence[float]) -> list[float]:
    """The label-noise levels, each in [0, 1), sorted and unique, with 0 (the clean reference) added.

    A flip fraction of 1 or more (or a negative one) is a one-line DataError.
    """
    values = [float(v) for v in levels]
    bad = [v for v in values if not (np.isfinite(v) and 0.0 <= v < 1.0)]
    if bad or not values:
        raise DataError(f"--noise levels must lie in [0, 1), got {', '.join(f'{v:g}' for v in values) or 'none'}")
    return sorted({0.0, *values})


def site_codes(sites: pd.Series) -> tuple[np.ndarray, list[str]]:
    """``(codes, names)`` of a site (or batch) column: one integer code per sample, indexing the sorted names.

    DataError when a sample has no site or when the column holds a single site: the cross-site and
    site-leakage checks need at least two.
    """
    name = str(sites.name) if sites.name is not None else "site"
    series = pd.Series(sites).reset_index(drop=True)
    text = series.astype(object).map(lambda v: None if pd.isna(v) or not str(v).strip() else str(v))
    if text.isna().any():
        raise DataError(f"site column {name!r} is empty for {int(text.isna().sum())} labelled sample(s)")
    names = sorted(text.unique())
    if len(names) < 2:
        raise DataError(f"site column {name!r} holds a single site ({names[0] if names else 'none'!r}): the "
                        "cross-site and site-leakage checks need at least two")
    lookup = {value: code for code, value in enumerate(names)}
    return text.map(lookup).to_numpy(dtype=np.int64), names


def flip_labels(labels: np.ndarray, rows: np.ndarray, fraction: float, n_classes: int, seed: int) -> np.ndarray:
    """A copy of the class codes ``labels`` with ``round(fraction * len(rows))`` of ``rows`` flipped (symmetric noise).

    The flipped rows are drawn uniformly from ``rows`` and each gets a class drawn uniformly from the other
    ``n_classes - 1`` classes (symmetric noise, Natarajan et al. 2013); every other label is unchanged.
    ``fraction`` 0 returns an unchanged copy.
    """
    labels = np.asarray(labels)
    rows = np.asarray(rows, dtype=np.int64)
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"label noise must lie in [0, 1), got {fraction:g}")
    if n_classes < 2:
        raise DataError("label noise needs at least two classes")
    out = labels.copy()
    n_flip = round(fraction * rows.size)
    if n_flip == 0:
        return out
    rng = np.random.default_rng(seed)
    chosen = rng.choice(rows, size=n_flip, replace=False)
    shift = rng.integers(1, n_classes, size=n_flip)  # 1..n_classes-1: never the same class
    out[chosen] = (labels[chosen] + shift) % n_classes
    return out


def _metrics_for(task: str) -> tuple[str, ...]:
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


def _rows(table: pd.DataFrame, check: str, setting: str, task: str) -> pd.DataFrame:
    """run_label_efficiency's table -> PER_SEED_COLUMNS (pretrain_seed left to the caller: NA)."""
    kept = table[table["metric"].isin(_metrics_for(task))]
    return pd.DataFrame({
        "check": check, "representation": kept["representation"].to_numpy(), "probe": kept["probe"].to_numpy(),
        "setting": setting, "pretrain_seed": pd.array([pd.NA] * len(kept), dtype="Int64"),
        "seed": kept["seed"].to_numpy(), "metric": kept["metric"].to_numpy(), "value": kept["value"].to_numpy(),
    }, columns=PER_SEED_COLUMNS)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PER_SEED_COLUMNS)


def cross_site(
    representations: dict[str, np.ndarray],
    labels: np.ndarray,
    n_classes: int | None,
    sites: np.ndarray,
    site_names: Sequence[str],
    *,
    fraction: float = 1.0,
    seeds: Sequence[int] = (0,),
    task: str = "classification",
    finetune: FinetuneFn | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Leave-one-site-out: probes fitted on every site but one, scored on the held-out site (``setting`` = its name).

    ``sites`` are integer codes indexing ``site_names``; ``finetune`` (the supervised baseline, trained on the
    training rows it is given) is recorded as representation ``supervised``. Each seed draws a labelled subset of
    ``fraction`` of the other sites' samples. A held-out site that is the only one with some class still scores;
    a site holding a single class gets NaN AUROC (balanced accuracy stays defined).
    """
    sites = np.asarray(sites, dtype=np.int64)
    parts = []
    for code, name in enumerate(site_names):
        test_idx = np.flatnonzero(sites == code)
        train_idx = np.flatnonzero(sites != code)
        if test_idx.size == 0:
            continue
        if progress:
            progress(f"cross-site: held-out site {name} ({test_idx.size} samples, {train_idx.size} training)")
        table = run_label_efficiency(representations, labels, n_classes, [fraction], list(seeds),
                                     split=(train_idx, test_idx), finetune=finetune, task=task)
        parts.append(_rows(table, "cross_site", str(name), task))
    return _concat(parts)


def site_leakage(
    representations: dict[str, np.ndarray],
    sites: np.ndarray,
    n_sites: int,
    *,
    fraction: float = 1.0,
    seeds: Sequence[int] = (0,),
    test_fraction: float = 0.2,
) -> pd.DataFrame:
    """How well each representation predicts the site itself (``setting`` = ``all``): the spurious cue.

    The site codes are the labels of the label-efficiency probes; seed ``s`` uses the stratified test split of
    split seed ``s`` and a labelled subset of ``fraction`` of its training pool. Chance is ``1 / n_sites``
    balanced accuracy and 0.5 AUROC; a representation that encodes the site scores near 1.
    """
    parts = []
    for seed in seeds:
        table = run_label_efficiency(representations, np.asarray(sites, dtype=np.int64), n_sites, [fraction], [seed],
                                     test_fraction=test_fraction, split_seed=int(seed))
        parts.append(_rows(table, "site_leakage", ALL_SITES, "classification"))
    return _concat(parts)


def label_noise(
    representations: dict[str, np.ndarray],
    labels: np.ndarray,
    n_classes: int,
    levels: Sequence[float],
    *,
    fraction: float = 1.0,
    seeds: Sequence[int] = (0,),
    test_fraction: float = 0.2,
    finetune_for: Callable[[np.ndarray], FinetuneFn] | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Probes fitted on labels of which a fraction (each of ``levels``, ``setting`` = the level) was flipped.

    Seed ``s``: the stratified test split of split seed ``s`` (scored against the clean labels), a labelled subset
    of ``fraction`` of its training pool (the same for every level: the comparison is paired) and
    :func:`flip_labels` of the training rows with seed ``s``. ``finetune_for(noisy_labels)`` gives the supervised
    baseline trained on those labels. Level 0 reproduces the noise-free result exactly.
    """
    labels = np.asarray(labels)
    levels = check_noise_levels(levels)
    parts = []
    for seed in seeds:
        train_idx, test_idx = holdout_split(labels, test_fraction, int(seed))
        for level in levels:
            if progress:
                progress(f"label noise {level:g}, seed {seed}")
            noisy = flip_labels(labels, train_idx, level, n_classes, int(seed))
            table = run_label_efficiency(representations, labels, n_classes, [fraction], [seed],
                                         split=(train_idx, test_idx), fit_labels=noisy,
                                         finetune=None if finetune_for is None else finetune_for(noisy))
            parts.append(_rows(table, "label_noise", f"{level:g}", "classification"))
    return _concat(parts)


def noise_degradation(per_seed: pd.DataFrame) -> pd.DataFrame:
    """``<metric>_drop`` rows of the label-noise check: the value at noise 0 minus the value at each level, paired
    by representation, probe, pre-training seed and seed (so the noise-0 drop is exactly 0)."""
    noise = per_seed[per_seed["check"] == "label_noise"]
    if noise.empty:
        return pd.DataFrame(columns=PER_SEED_COLUMNS)
    keys = ["representation", "probe", "pretrain_seed", "seed", "metric"]
    clean = noise[noise["setting"] == "0"][[*keys, "value"]].rename(columns={"value": "clean"})
    merged = noise.merge(clean, on=keys, how="inner")
    merged["value"] = merged["clean"] - merged["value"]
    merged["metric"] = merged["metric"] + DROP_SUFFIX
    return merged[PER_SEED_COLUMNS].reset_index(drop=True)


def augmentation_ablation(
    embeddings: dict[str, np.ndarray],
    labels: np.ndarray,
    n_classes: int | None,
    *,
    fraction: float = 1.0,
    seeds: Sequence[int] = (0,),
    test_fraction: float = 0.2,
    task: str = "classification",
) -> pd.DataFrame:
    """Probes on the SSL embeddings of each pre-training variant (``setting`` = variant, e.g. ``no_crop``).

    ``embeddings``: variant name -> its embeddings of the same samples. Seed ``s``: the test split of split seed
    ``s`` and one labelled subset, shared by every variant (a paired comparison). Rows are representation ``ssl``.
    """
    parts = []
    for seed in seeds:
        table = run_label_efficiency(embeddings, labels, n_classes, [fraction], [seed], test_fraction=test_fraction,
                                     split_seed=int(seed), task=task)
        for variant, rows in table.groupby("representation", sort=False):
            rows = rows.assign(representation="ssl")
            parts.append(_rows(rows, "augmentation_ablation", str(variant), task))
    return _concat(parts)


def summarise_robustness(per_seed: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean and Student-t CI (clipped to the metric's range) of every (check, representation, probe, setting,
    metric) over its per-seed values: columns exactly ``ROBUSTNESS_COLUMNS``, in the order the rows first appear."""
    missing = set(PER_SEED_COLUMNS) - set(per_seed.columns)
    if missing:
        raise DataError(f"per-seed robustness table lacks column(s) {sorted(missing)}")
    if per_seed.empty:
        raise DataError("per-seed robustness table is empty: nothing to summarise")
    keys = ["check", "representation", "probe", "setting", "metric"]
    rows = []
    for key, group in per_seed.groupby(keys, sort=False):
        metric = str(key[4])
        bounds = (-1.0, 1.0) if metric.endswith(DROP_SUFFIX) else METRIC_RANGES.get(metric)
        rows.append((*key, *mean_ci(group["value"].to_numpy(dtype=np.float64), level, bounds)))
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)


def write_robustness(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a summary table as TSV atomically (its columns must be ``ROBUSTNESS_COLUMNS``)."""
    if list(table.columns) != ROBUSTNESS_COLUMNS:
        raise DataError(f"not a robustness table: columns {list(table.columns)}")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return Path(path)


def read_robustness(path: str | Path) -> pd.DataFrame:
    """Read ``robustness.tsv``; DataError when it is unreadable or not a robustness table."""
    try:
        table = pd.read_csv(path, sep="\t", dtype={"setting": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if list(table.columns) != ROBUSTNESS_COLUMNS:
        raise DataError(f"{path} is not a robustness table: columns {list(table.columns)}")
    return table
