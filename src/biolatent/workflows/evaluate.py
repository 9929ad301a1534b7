"""``biolatent evaluate`` / ``biolatent probe``: label-efficiency sweeps with every baseline side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from biolatent import provenance
from biolatent.errors import DataError
from biolatent.rundir import update_json, write_json, write_text

if TYPE_CHECKING:
    from biolatent.config import RunConfig
    from biolatent.data.samples import DataInfo, SampleSet
    from biolatent.evaluate.efficiency import FinetuneFn

DEFAULT_FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)


def _label_column(obs: pd.DataFrame, label: str) -> pd.Series:
    if label not in obs.columns:
        raise DataError(f"label column {label!r} not found (columns: {', '.join(map(str, obs.columns)) or 'none'})")
    return obs[label]


@dataclass
class Labels:
    """A label column ready for the sweep: ``values`` (class codes or float targets) of the kept samples."""

    task: str
    values: np.ndarray
    keep: np.ndarray
    classes: list[str] | None  # None for regression

    @property
    def n_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    def settings(self) -> dict:
        """What metrics.json records about the labels."""
        out: dict = {"task": self.task}
        if self.classes is not None:
            out["classes"] = self.classes
        else:
            out["target_range"] = [float(self.values.min()), float(self.values.max())]
        return {**out, "n_labelled": int(self.keep.sum())}


def prepare_label_column(obs: pd.DataFrame, label: str, task: str = "auto") -> Labels:
    """Class codes or regression targets of ``obs[label]``; ``task="auto"`` follows ``label_task``."""
    from biolatent.evaluate.splits import prepare_labels, prepare_targets, resolve_task

    column = _label_column(obs, label)
    resolved = resolve_task(column, task)
    if resolved == "regression":
        targets, keep = prepare_targets(column)
        return Labels(resolved, targets, keep, None)
    codes, classes, keep = prepare_labels(column)
    return Labels(resolved, codes, keep, classes)


def _announce_sizes(labels: Labels, fractions: Sequence[float], test_fraction: float, say,
                    train_idx: np.ndarray | None = None) -> dict[str, int]:
    from biolatent.evaluate.efficiency import labelled_sizes, same_size_fractions

    sizes = labelled_sizes(labels.values, fractions, test_fraction=test_fraction, task=labels.task,
                           train_idx=train_idx)
    for sentence in same_size_fractions(sizes):
        floor = " (one per class: the minimum)" if labels.n_classes and min(sizes.values()) == labels.n_classes else ""
        say(f"note: {sentence}{floor}")
    return {f"{fraction:g}": size for fraction, size in sizes.items()}


def write_evaluation(out_dir: Path, n_classes: int | None, per_seed: pd.DataFrame, settings: dict, say,
                     headline_fraction: float = 0.1) -> dict:
    """``OUT/evaluate/<label>/``: efficiency.tsv, efficiency_per_seed.tsv, efficiency.png, evaluate.json; the
    label's entry in ``OUT/metrics.json["evaluate"]`` (other labels' entries are kept)."""
    from biolatent.evaluate.efficiency import headline, label_dir, summarise, write_efficiency
    from biolatent.evaluate.plots import plot_label_efficiency
    from biolatent.rundir import atomic_path, read_json

    folder = label_dir(out_dir, settings["label"])
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarise(per_seed, protocol=settings.get("protocol", "transductive"))
    write_efficiency(summary, folder / "efficiency.tsv")
    with atomic_path(folder / "efficiency_per_seed.tsv") as tmp:
        per_seed.to_csv(tmp, sep="\t", index=False)
    plot_label_efficiency(summary, folder / "efficiency.png")
    head = headline(summary, headline_fraction, n_classes=n_classes)
    entry = {**settings, "headline_fraction": headline_fraction, "headline": head}
    write_json(folder / "evaluate.json", entry)
    metrics_path = out_dir / "metrics.json"
    previous = read_json(metrics_path).get("evaluate", {}) if metrics_path.is_file() else {}
    by_label = previous if isinstance(previous, dict) and "label" not in previous else {}
    update_json(metrics_path, "evaluate", {**by_label, settings["label"]: entry})
    say(f"label efficiency -> {folder / 'efficiency.tsv'}")
    return {**head, "efficiency": str(folder / "efficiency.tsv")}


def resolve_protocol(protocol: str | None, holdout: dict | None) -> str:
    """``protocol`` checked against the run: inductive needs a run whose pre-training kept the test ids out
    (``pretrain --holdout-splits``); None picks inductive for such a run, transductive otherwise."""
    from biolatent.evaluate.efficiency import PROTOCOLS

    if protocol is None:
        return "transductive" if holdout is None else "inductive"
    if protocol not in PROTOCOLS:
        raise DataError(f"--protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    if protocol == "inductive" and holdout is None:
        raise DataError("--protocol inductive needs a run pre-trained without the test samples: this run was "
                        "pre-trained on all samples (re-run pretrain with --holdout-splits S)")
    if protocol == "transductive" and holdout is not None:
        raise DataError("this run was pre-trained without the test ids of its holdout splits (holdout.json): "
                        "evaluate it with --protocol inductive")
    return protocol


def _splits(labels: Labels, ids: np.ndarray, n_splits: int, test_fraction: float, holdout: dict | None,
            ) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per split: None (the stratified split of that seed, drawn by the sweep) or the ``(train, test)`` positions
    of the kept samples that the holdout record gives (the inductive protocol)."""
    from biolatent.evaluate.splits import check_test_splits

    if n_splits < 1:
        raise DataError(f"--test-splits must be at least 1, got {n_splits}")
    if holdout is None:
        check_test_splits(labels.values, n_splits, test_fraction, stratify=labels.task != "regression")
        return [None] * n_splits
    recorded = holdout["splits"]
    if n_splits > len(recorded):
        raise DataError(f"--test-splits {n_splits}: the run recorded only {len(recorded)} holdout split(s) at "
                        "pre-training")
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for split, test_ids in enumerate(recorded[:n_splits]):
        is_test = np.isin(ids, np.asarray(test_ids, dtype=str))
        if not is_test.any() or is_test.all():
            raise DataError(f"holdout split {split} leaves {int(is_test.sum())} of {ids.size} labelled samples "
                            "for testing")
        out.append((np.flatnonzero(~is_test), np.flatnonzero(is_test)))
    return out


@dataclass
class LabelledRun:
    """A run directory with one label column read: its config, data facts, holdout record, samples and labels."""

    run_dir: Path
    config: RunConfig
    info: DataInfo
    holdout: dict | None
    samples: SampleSet
    labels: Labels
    # transfer (``evaluate --data OTHER``): the other data source; its samples were never seen by pre-training
    data: Path | None = None

    @property
    def out_dir(self) -> Path:
        """Where the evaluation's outputs go: the run, or ``RUN/transfer/<data name>/`` for other data."""
        return self.run_dir if self.data is None else transfer_dir(self.run_dir, self.data)

    def embeddings_file(self, seed_dir: Path) -> Path:
        """One pre-training seed's embeddings of the evaluated samples."""
        from biolatent.workflows.common import EMBEDDINGS_FILE

        base = seed_dir if self.data is None else transfer_dir(seed_dir, self.data)
        return base / EMBEDDINGS_FILE

    @property
    def ids(self) -> np.ndarray:
        """The ids of the labelled (kept) samples."""
        return np.asarray(self.samples.ids)[self.labels.keep]

    @property
    def obs(self) -> pd.DataFrame:
        """The metadata rows of the labelled (kept) samples."""
        return self.samples.obs.iloc[np.flatnonzero(self.labels.keep)]

    @property
    def pretrained_rows(self) -> np.ndarray:
        """Positions of the samples pre-training saw: every sample but the holdout splits' test ids (other data:
        none was seen; every sample stands for the data the random-init encoder's input statistics come from)."""
        if self.data is not None:
            return np.arange(len(self.samples), dtype=np.int64)
        excluded = set().union(*self.holdout["splits"]) if self.holdout is not None else set()
        return np.asarray([i for i, sample in enumerate(self.samples.ids) if sample not in excluded], dtype=np.int64)


def transfer_dir(run_dir: Path, data: Path) -> Path:
    """``RUN/transfer/<name>/``: the evaluation of a run on other data (a config YAML's or a file's name)."""
    from biolatent.evaluate.efficiency import label_slug

    return run_dir / "transfer" / label_slug(Path(data).name.split(".")[0])


def pretraining_samples(run: LabelledRun) -> int:
    """How many samples the run was pre-trained on (the supervised baseline's step budget follows from it)."""
    from biolatent.rundir import read_json

    if run.data is None:
        return int(run.pretrained_rows.size)
    metrics = run.run_dir / "metrics.json"
    n = read_json(metrics).get("pretrain", {}).get("n_samples") if metrics.is_file() else None
    if n is None:
        raise DataError(f"{metrics} does not record how many samples the run was pre-trained on")
    return int(n)


def load_labelled_run(run_dir: Path, label: str, task: str = "auto", data: Path | None = None) -> LabelledRun:
    """Read ``run_dir``'s config, its data (or ``data``: other data, a config YAML or a path, as ``embed --data``)
    and the ``label`` column (nothing is written: bad input fails here)."""
    from biolatent.data.loaders import load_samples
    from biolatent.rundir import read_json
    from biolatent.workflows.common import load_data_info, load_run_config, read_holdout
    from biolatent.workflows.embed import check_compatible, data_config_for

    config = load_run_config(run_dir)
    info = load_data_info(run_dir)
    holdout = None if data is not None else read_holdout(run_dir)
    samples = load_samples(data_config_for(config, data, info))
    if data is not None:
        features = run_dir / "features.json"
        check_compatible(info, samples, read_json(features) if features.is_file() else None)
        if not isinstance(samples.x, torch.Tensor):
            raise DataError(f"{data}: evaluation needs its samples in memory (not windows of a genome or a backed "
                            "file)")
    return LabelledRun(run_dir, config, info, holdout, samples, prepare_label_column(samples.obs, label, task),
                       data=None if data is None else Path(data))


@dataclass
class Representations:
    """The representations of a run's labelled samples that evaluate and the robustness checks compare.

    ``ssl`` and ``random_init``: one array per pre-training seed (``pretrain_seeds``; the random-init encoder gets
    one init per seed); ``raw``: the raw features (PCA input); ``x``: the encoder inputs (the supervised baseline).
    """

    pretrain_seeds: list[int]
    ssl: list[np.ndarray]
    random_init: list[np.ndarray]
    raw: np.ndarray
    x: torch.Tensor


def build_representations(run: LabelledRun, say: Callable[[str], None] = print) -> Representations:
    """Embed every pre-training seed of the run (``biolatent embed`` where embeddings.h5ad is missing), draw the
    random-init encoders (input statistics of the samples pre-training saw) and read the raw features."""
    from biolatent.build import build_method, fit_input_statistics
    from biolatent.data.features import raw_features
    from biolatent.embed import EMBEDDING_KEY, compute_embeddings, read_embeddings
    from biolatent.workflows.common import seed_run_dirs
    from biolatent.workflows.embed import embed_run

    samples, keep = run.samples, run.labels.keep
    runs = seed_run_dirs(run.run_dir)
    ssl = []
    for _, seed_dir in runs:
        path = run.embeddings_file(seed_dir)
        if not path.is_file():
            embed_run(seed_dir, run.data, out=None if run.data is None else path, say=say)
        adata = read_embeddings(path)
        if list(adata.obs_names) != samples.ids:
            raise DataError(f"{path} does not hold the evaluated samples: delete it, or re-run `biolatent embed`")
        ssl.append(np.asarray(adata.obsm[EMBEDDING_KEY])[keep])
    rows = torch.as_tensor(np.flatnonzero(keep))
    x = samples.x[rows]
    kept_fields = {name: value[rows] for name, value in samples.fields.items()}  # e.g. paired records
    # the samples pre-training saw: their input statistics are the random-init encoder's too
    seen = torch.as_tensor(run.pretrained_rows)
    say(f"random-init encoder ({len(runs)} init(s)) and PCA baselines ...")
    random_init = []
    for seed, _ in runs:
        torch.manual_seed(seed)
        random_method = fit_input_statistics(build_method(run.config, run.info), samples.x[seen])
        random_init.append(compute_embeddings(random_method, x, fields=kept_fields))
    return Representations([seed for seed, _ in runs], ssl, random_init, raw_features(samples)[keep], x)


def supervised_finetune(run: LabelledRun, x: torch.Tensor, steps: int, *, fit_rows: np.ndarray | None = None,
                        labels: np.ndarray | None = None,
                        on_trained: Callable[[dict], None] | None = None) -> FinetuneFn:
    """The supervised baseline's ``finetune(train_idx, test_idx, seed)`` for the run's labelled inputs ``x``.

    Its input scaler is fitted on every sample (``fit_rows`` None, transductive) or on ``x[fit_rows]``;
    ``labels`` replaces the run's label values for training (e.g. noisy labels; same task and classes).
    """
    from biolatent.build import build_encoder, build_views, fit_input_statistics
    from biolatent.train.supervised import supervised_baseline

    config, info, task = run.config, run.info, run.labels.task
    values = run.labels.values if labels is None else labels
    scaled_on = run.samples.x if fit_rows is None else x[torch.as_tensor(fit_rows)]
    return supervised_baseline(
        lambda: fit_input_statistics(build_encoder(config, info), scaled_on), lambda: build_views(config, info),
        x, values, run.labels.n_classes, config.train, steps, task=task,
        validation_split=validation_split(values, stratify=task != "regression"), on_trained=on_trained,
    )


def evaluate_run(
    run_dir: Path,
    label: str,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seeds: int = 3,
    supervised_steps: int | None = None,
    test_fraction: float = 0.2,
    task: str = "auto",
    test_splits: int = 1,
    protocol: str | None = None,
    data: Path | None = None,
    split_column: str | None = None,
    say=print,
) -> dict:
    """SSL probes vs random-init probes vs PCA-of-raw-features probes vs the supervised baseline.

    ``split_column``: a metadata column of ``train`` / ``test`` values (e.g. a data set's official split) gives the
    one test split instead of ``test_splits`` random stratified ones (``evaluate.splits.column_split``); a run
    pre-trained with its own holdout splits refuses it.

    ``data``: evaluate on other data than the run's (transfer; a config YAML or a path, as ``embed --data``): the
    outputs go to ``RUN/transfer/<name>/``, PCA and the supervised baseline see only that data, and the supervised
    baseline's step budget is still the pre-training's.

    ``task``: ``auto`` (a numeric column with many values is a regression target, see ``label_task``),
    ``classification`` or ``regression``. Every pre-training seed of the run (``pretrain --seeds``) x
    ``test_splits`` test splits x ``seeds`` labelled subsets; the random-init encoder gets one init per
    pre-training seed, PCA and the supervised baseline vary with split and subset. ``protocol`` (see
    :func:`resolve_protocol`): ``inductive`` uses the test ids recorded at pre-training and fits PCA and every
    scaler (input statistics) on the training samples of each split only. The supervised baseline's budget
    (:func:`~biolatent.train.supervised.budget`): at most the pre-training's optimizer steps (``supervised_steps``
    overrides), learning rate and step chosen on a validation part of each labelled subset.
    """
    from biolatent.evaluate.efficiency import pca_features, run_label_efficiency
    from biolatent.train.supervised import budget

    if data is not None and protocol == "inductive":
        raise DataError("--protocol inductive does not apply to --data: pre-training never saw the other data; its "
                        "PCA and input statistics are fitted on all of its samples (transductive)")
    run = load_labelled_run(run_dir, label, task, data)
    config, holdout, labels = run.config, run.holdout, run.labels
    protocol = resolve_protocol(protocol, holdout)
    if holdout is not None:
        test_fraction = float(holdout.get("test_fraction", test_fraction))
    keep = labels.keep
    if split_column is None:
        splits = _splits(labels, run.ids, test_splits, test_fraction, holdout)  # bad input fails before any write
    else:
        if holdout is not None:
            raise DataError("--split-column: this run was pre-trained with its own holdout splits (pretrain "
                            "--holdout-splits); evaluate it without --split-column")
        if test_splits != 1:
            raise DataError("--split-column gives one fixed test split: drop --test-splits")
        from biolatent.evaluate.splits import column_split

        train_part, test_part = column_split(run.obs, split_column)
        splits = [(train_part, test_part)]
        test_fraction = test_part.size / (train_part.size + test_part.size)
    reps = build_representations(run, say)
    raw = reps.raw
    transductive_pca = pca_features(raw, seed=config.train.seed) if protocol == "transductive" else None
    supervised_runs: list[dict] = []
    supervised_budget = budget(config.train, pretraining_samples(run), supervised_steps)
    say(f"supervised baseline: {supervised_budget['rule']}; lr from {supervised_budget['lr_grid']}")

    def finetune_for(fit_rows: np.ndarray | None):
        return supervised_finetune(run, reps.x, supervised_budget["max_steps"], fit_rows=fit_rows,
                                   on_trained=supervised_runs.append)

    n_runs = len(reps.pretrain_seeds)
    say(f"{labels.task} on {label!r} ({int(keep.sum())} labelled samples; {n_runs} pre-training seed(s) x "
        f"{test_splits} test split(s) x {seeds} labelled subset(s), {protocol})")
    sizes = _announce_sizes(labels, fractions, test_fraction, say,
                            train_idx=None if split_column is None else splits[0][0])
    tables = []
    for split_seed, split in enumerate(splits):
        inductive = protocol == "inductive" and split is not None
        pca = pca_features(raw, seed=config.train.seed, fit_rows=split[0]) if inductive else transductive_pca
        for index, pretrain_seed in enumerate(reps.pretrain_seeds):
            representations = {"ssl": reps.ssl[index], "random_init": reps.random_init[index]}
            first = index == 0
            if first:
                representations["pca"] = pca
            table = run_label_efficiency(
                representations, labels.values, labels.n_classes, list(fractions), list(range(seeds)),
                test_fraction=test_fraction, split_seed=split_seed, split=split,
                finetune=finetune_for(split[0] if inductive else None) if first else None,
                progress=say, task=labels.task,
            )
            varies = table["representation"].isin(["ssl", "random_init"])
            table.insert(3, "pretrain_seed", pd.array(np.where(varies, pretrain_seed, 0), dtype="Int64"))
            table.loc[~varies, "pretrain_seed"] = pd.NA  # PCA and supervised do not depend on pre-training
            table.insert(4, "test_split", split_seed)
            tables.append(table)
    per_seed = pd.concat(tables, ignore_index=True)
    settings = {"label": label, **labels.settings(), "protocol": protocol, "fractions": list(fractions),
                "seeds": seeds, "test_splits": test_splits, "pretrain_seeds": reps.pretrain_seeds,
                "data": None if data is None else str(data), "split_column": split_column,
                "labelled_per_fraction": sizes, "test_fraction": test_fraction,
                "pca_components": int(pca.shape[1]),
                "supervised": {**supervised_budget, "validation_fraction": VALIDATION_FRACTION,
                               "runs": supervised_runs}}
    return write_evaluation(run.out_dir, labels.n_classes, per_seed, settings, say)


VALIDATION_FRACTION = 0.2


def validation_split(labels: np.ndarray | None = None, *, stratify: bool = False):
    """The supervised baseline's early-stopping split of a labelled subset, ``split(train_idx, seed) -> (fit,
    validation) positions into train_idx``: 20% of it (stratified by the class codes ``labels`` when ``stratify``;
    classes with one label stay in training), or None when the subset cannot spare one (fewer than 5 labels, or no
    class with two). Regression targets need no ``labels``: the part is drawn uniformly."""
    from biolatent.evaluate.splits import holdout_split

    def split(train_idx: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
        subset = labels[train_idx] if stratify and labels is not None else np.zeros(len(train_idx))
        if subset.size < 5 or (stratify and np.bincount(subset).max() < 2):
            return None
        return holdout_split(subset, VALIDATION_FRACTION, seed, stratify=stratify)

    return split


def probe_embeddings(
    embeddings: Path,
    label: str,
    out_dir: Path,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seeds: int = 3,
    test_fraction: float = 0.2,
    key: str = "X_biolatent",
    task: str = "auto",
    split_column: str | None = None,
    say=print,
) -> dict:
    """Linear and kNN probes on an embeddings file from anywhere (AnnData with obsm[key] or X).

    ``task`` and ``split_column`` (an obs column of ``train`` / ``test`` values: the one fixed test split) as in
    :func:`evaluate_run`: regression probes (ridge, kNN) for a continuous label.
    """
    from biolatent.embed import read_embeddings
    from biolatent.evaluate.efficiency import run_label_efficiency
    from biolatent.evaluate.splits import column_split

    adata = read_embeddings(embeddings, key)
    labels = prepare_label_column(adata.obs, label, task)
    keep = labels.keep
    split = None if split_column is None else column_split(adata.obs.iloc[np.flatnonzero(keep)], split_column)
    if split is not None:
        test_fraction = split[1].size / (split[0].size + split[1].size)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {"embeddings": str(embeddings), "label": label, **labels.settings(), "fractions": list(fractions),
                "seeds": seeds, "test_fraction": test_fraction, "split_column": split_column, "key": key}
    import yaml

    write_text(out_dir / "config.yaml", yaml.safe_dump(settings, sort_keys=False))
    write_json(out_dir / "provenance.json", provenance.collect("probe"))
    settings["labelled_per_fraction"] = _announce_sizes(labels, fractions, test_fraction, say,
                                                        train_idx=None if split is None else split[0])
    per_seed = run_label_efficiency(
        {"ssl": np.asarray(adata.obsm[key], dtype=np.float32)[keep]}, labels.values, labels.n_classes,
        list(fractions), list(range(seeds)), test_fraction=test_fraction, split=split, progress=say,
        task=labels.task,
    )
    return write_evaluation(out_dir, labels.n_classes, per_seed, settings, say)
