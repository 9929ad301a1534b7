"""``biolatent robustness RUN --label COL`` and ``biolatent robustness ablate CONFIG --label COL``.

The run check compares the representations that ``biolatent evaluate`` compares (ssl, random_init, pca and the
supervised baseline, built by :mod:`biolatent.workflows.evaluate`) under site shift, site leakage and label
noise (:mod:`biolatent.evaluate.robustness`); the ablation pre-trains one variant of a config per view family
removed. Both write ``robustness.tsv`` (and ``robustness_per_seed.tsv``, ``robustness.json``); bad input fails
before anything is written.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from biolatent import provenance
from biolatent.errors import ConfigError, DataError
from biolatent.rundir import atomic_path, update_json, write_json

if TYPE_CHECKING:
    from biolatent.config import RunConfig
    from biolatent.data.samples import DataInfo
    from biolatent.evaluate.efficiency import FinetuneFn

DEFAULT_NOISE = (0.1, 0.2, 0.4)
DEFAULT_FRACTION = 0.8
SITE_COLUMNS = ("site", "batch")  # looked for, in this order, when --site-column is not given
ROBUSTNESS_FILE = "robustness.tsv"
PER_SEED_FILE = "robustness_per_seed.tsv"
SETTINGS_FILE = "robustness.json"
ALL_VIEWS = "all_views"


Say = Callable[[str], None]


def _check_fraction(fraction: float, seeds: int, test_fraction: float) -> None:
    if not 0 < fraction <= 1:
        raise DataError(f"--fraction must lie in (0, 1], got {fraction:g}")
    if seeds < 1:
        raise DataError(f"--seeds must be at least 1, got {seeds}")
    if not 0 < test_fraction < 1:
        raise DataError(f"--test-fraction must lie in (0, 1), got {test_fraction:g}")


def _site_column(obs: pd.DataFrame, site_column: str | None, say: Say) -> str | None:
    if site_column is not None:
        if site_column not in obs.columns:
            raise DataError(f"--site-column {site_column!r} not found (columns: {', '.join(map(str, obs.columns))})")
        return site_column
    found = next((c for c in SITE_COLUMNS if c in obs.columns), None)
    if found is None:
        say("note: no site or batch column (give --site-column COL): cross_site and site_leakage skipped")
    else:
        say(f"note: site column {found!r} (give --site-column to choose another)")
    return found


def _write_outputs(out_dir: Path, per_seed: pd.DataFrame, settings: dict, say: Say) -> Path:
    from biolatent.evaluate.robustness import summarise_robustness, write_robustness

    summary = summarise_robustness(per_seed)
    with atomic_path(out_dir / PER_SEED_FILE) as tmp:
        per_seed.to_csv(tmp, sep="\t", index=False)
    write_json(out_dir / SETTINGS_FILE, settings)
    path = write_robustness(summary, out_dir / ROBUSTNESS_FILE)
    say(f"robustness -> {path}")
    return path


def robustness_run(
    run_dir: Path,
    label: str,
    *,
    site_column: str | None = None,
    noise: Sequence[float] | None = None,
    fraction: float = DEFAULT_FRACTION,
    seeds: int = 3,
    supervised_steps: int | None = None,
    test_fraction: float = 0.2,
    task: str = "auto",
    say: Say = print,
) -> Path:
    """``RUN/robustness.tsv``: cross_site and site_leakage (with a site column) and label_noise (class labels).

    ``site_column`` None looks for a ``site``, then a ``batch`` column. ``noise`` None uses ``DEFAULT_NOISE`` for
    class labels and skips the check, with a note, for a continuous label (an explicit ``noise`` is then an
    error). Every pre-training seed of the run x ``seeds`` repeats (see :mod:`biolatent.evaluate.robustness` for
    what each repeat draws); PCA (fitted on every sample, no labels: the transductive setting) and the supervised
    baseline use the first pre-training seed only, as in ``biolatent evaluate``, with its budget rule
    (:func:`~biolatent.train.supervised.budget`: at most the pre-training's optimizer steps unless
    ``supervised_steps``, learning rate and step chosen on a validation part of the training labels). The
    supervised baseline's representation is its own classifier: it is not part of site leakage.
    """
    from biolatent.evaluate.efficiency import pca_features
    from biolatent.evaluate.robustness import (
        check_noise_levels,
        cross_site,
        label_noise,
        noise_degradation,
        site_codes,
        site_leakage,
    )
    from biolatent.train.supervised import budget
    from biolatent.workflows.evaluate import build_representations, load_labelled_run, supervised_finetune

    _check_fraction(fraction, seeds, test_fraction)
    levels = check_noise_levels(DEFAULT_NOISE if noise is None else noise)
    run = load_labelled_run(run_dir, label, task)
    labels = run.labels
    column = _site_column(run.obs, site_column, say)
    sites, site_names = (None, []) if column is None else site_codes(run.obs[column].rename(column))
    regression = labels.task == "regression"
    if regression and noise is not None:
        raise DataError(f"--noise applies to class labels; {label!r} is a regression target (label noise flips "
                        "classes)")
    if regression:
        say("note: label_noise skipped: it flips class labels and the label is a regression target")
    if column is None and regression:
        raise DataError("nothing to check: no site column (give --site-column COL) and label noise needs class "
                        "labels")
    reps = build_representations(run, say)
    pca = pca_features(reps.raw, seed=run.config.train.seed)
    seed_list = list(range(seeds))
    supervised_runs: list[dict] = []
    supervised_budget = budget(run.config.train, int(run.pretrained_rows.size), supervised_steps)
    max_steps = supervised_budget["max_steps"]
    parts = []
    for index, pretrain_seed in enumerate(reps.pretrain_seeds):
        representations = {"ssl": reps.ssl[index], "random_init": reps.random_init[index]}
        first = index == 0
        if first:
            representations["pca"] = pca
        say(f"pre-training seed {pretrain_seed}: robustness checks on {len(labels.values)} labelled samples ...")
        tables = []
        if sites is not None:
            finetune = (supervised_finetune(run, reps.x, max_steps, on_trained=supervised_runs.append)
                        if first else None)
            tables.append(cross_site(representations, labels.values, labels.n_classes, sites, site_names,
                                     fraction=fraction, seeds=seed_list, task=labels.task, finetune=finetune,
                                     progress=say))
            tables.append(site_leakage(representations, sites, len(site_names), fraction=fraction, seeds=seed_list,
                                       test_fraction=test_fraction))
        if not regression:
            def finetune_for(noisy: np.ndarray) -> FinetuneFn:
                return supervised_finetune(run, reps.x, max_steps, labels=noisy,
                                           on_trained=supervised_runs.append)

            tables.append(label_noise(representations, labels.values, int(labels.n_classes), levels,
                                      fraction=fraction, seeds=seed_list, test_fraction=test_fraction,
                                      finetune_for=finetune_for if first else None, progress=say))
        for table in tables:
            varies = table["representation"].isin(["ssl", "random_init"]).to_numpy()
            table["pretrain_seed"] = pd.array(np.where(varies, pretrain_seed, 0), dtype="Int64")
            table.loc[~varies, "pretrain_seed"] = pd.NA  # PCA and supervised do not depend on pre-training
            parts.append(table)
    per_seed = pd.concat(parts, ignore_index=True)
    per_seed = pd.concat([per_seed, noise_degradation(per_seed)], ignore_index=True)
    checks = sorted(set(per_seed["check"]))
    settings = {"label": label, **labels.settings(), "site_column": column, "sites": site_names,
                "noise": levels if not regression else None, "fraction": fraction, "seeds": seeds,
                "test_fraction": test_fraction, "pretrain_seeds": reps.pretrain_seeds, "checks": checks,
                "pca_components": int(pca.shape[1]), "protocol": "transductive",
                "supervised": {**supervised_budget, "runs": supervised_runs},
                "provenance": provenance.collect("robustness")}
    path = _write_outputs(run_dir, per_seed, settings, say)
    update_json(run_dir / "metrics.json", "robustness", {k: v for k, v in settings.items()
                                                         if k not in ("supervised", "provenance")})
    return path


def _default_kwargs(cls: type) -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, default=list) == json.dumps(b, default=list)


def ablation_variants(config: RunConfig, info: DataInfo, families: Sequence[str] | None = None,
                      ) -> dict[str, dict[str, Any]]:
    """``{variant: views overrides}``: ``all_views`` (none) and ``no_<family>`` for every view family of the data
    (:func:`biolatent.data.views.view_families`) or the chosen ``families``; a family the config already switches
    off is left out (its variant would be ``all_views`` again)."""
    from biolatent.data.views import VIEWS, view_families
    from biolatent.methods.registry import METHODS

    if not METHODS[config.method.name].uses_views:
        raise ConfigError(f"method {config.method.name!r} uses no augmentation views: nothing to ablate")
    known = view_families(info)
    chosen = list(known) if families is None else list(families)
    unknown = [f for f in chosen if f not in known]
    if unknown or not chosen:
        raise ConfigError(f"--families: unknown view family {', '.join(unknown) or '(none given)'} for "
                          f"{info.modality} data; choose from {', '.join(known)}")
    current = {**_default_kwargs(VIEWS[info.modality]), **dict(config.views.model_extra or {})}
    variants: dict[str, dict[str, Any]] = {ALL_VIEWS: {}}
    for family in chosen:
        off = known[family]
        if all(_same(current.get(key), value) for key, value in off.items()):
            continue
        variants[f"no_{family}"] = off
    return variants


def ablate(
    config_path: Path,
    label: str,
    out_dir: Path,
    *,
    overrides: list[str] | None = None,
    families: Sequence[str] | None = None,
    fraction: float = DEFAULT_FRACTION,
    seeds: int = 3,
    test_fraction: float = 0.2,
    task: str = "auto",
    say: Say = print,
) -> Path:
    """Pre-train ``config_path`` once with all its views and once per view family removed (``OUT/<variant>/``),
    embed each, and compare linear and kNN probes on ``label`` -> ``OUT/robustness.tsv`` (check
    ``augmentation_ablation``, ``setting`` = variant).

    Same seeds, same budget: every variant is the same config (``train`` section: epochs, batch size, seed) with
    only the ``views`` overrides of its family (:data:`biolatent.data.views.VIEW_FAMILIES`) added; the probes of
    every variant share each seed's test split and labelled subset.
    """
    from biolatent.build import load_config
    from biolatent.data.loaders import load_samples
    from biolatent.embed import EMBEDDING_KEY, read_embeddings
    from biolatent.evaluate.robustness import augmentation_ablation
    from biolatent.workflows.embed import embed_run
    from biolatent.workflows.evaluate import prepare_label_column
    from biolatent.workflows.pretrain import pretrain

    _check_fraction(fraction, seeds, test_fraction)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DataError(f"{out_dir} already exists and is not empty: choose another --out")
    base = load_config(config_path, overrides)
    samples = load_samples(base.data)
    labels = prepare_label_column(samples.obs, label, task)
    variants = ablation_variants(base, samples.info, families)
    if len(variants) == 1:
        raise ConfigError("every chosen view family is already off in the config: nothing to ablate")
    say(f"{len(variants)} variants ({', '.join(variants)}), each {base.train.epochs} epoch(s), seed "
        f"{base.train.seed}")
    embeddings = {}
    for variant, views in variants.items():
        extra = [f"views.{key}={json.dumps(value)}" for key, value in views.items()]
        config = load_config(config_path, [*(overrides or []), *extra])
        variant_dir = out_dir / variant
        say(f"pre-training {variant} -> {variant_dir}")
        pretrain(config, variant_dir, progress=False, say=say)
        adata = read_embeddings(embed_run(variant_dir, say=say))
        embeddings[variant] = np.asarray(adata.obsm[EMBEDDING_KEY])[labels.keep]
    per_seed = augmentation_ablation(embeddings, labels.values, labels.n_classes, fraction=fraction,
                                     seeds=list(range(seeds)), test_fraction=test_fraction, task=labels.task)
    settings = {"label": label, **labels.settings(), "config": str(config_path), "overrides": overrides or [],
                "variants": variants, "train": base.train.model_dump(mode="json"), "fraction": fraction,
                "seeds": seeds, "test_fraction": test_fraction, "checks": ["augmentation_ablation"],
                "provenance": provenance.collect("robustness ablate")}
    return _write_outputs(out_dir, per_seed, settings, say)
