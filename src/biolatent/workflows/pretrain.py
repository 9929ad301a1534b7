"""``biolatent pretrain``: config -> data -> method -> training -> weights, in a run directory."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from biolatent.build import build_method, fit_input_statistics
from biolatent.config import RunConfig, TrainConfig
from biolatent.errors import BiolatentError
from biolatent.rundir import update_json, write_json
from biolatent.train.checkpoint import save_weights
from biolatent.workflows.common import (
    WEIGHTS_FILE,
    check_run_dir,
    save_data_info,
    write_run_header,
)


def holdout_splits(samples: Any, n_splits: int, test_fraction: float, label: str | None = None) -> list[list[str]]:
    """The test ids of ``n_splits`` splits (split seeds 0..S-1): stratified by ``label`` (as ``evaluate`` splits;
    samples without a label are never test samples) or, without a label, ``test_fraction`` of all ids at random."""
    import numpy as np

    from biolatent.evaluate.splits import check_test_splits, holdout_split, prepare_labels

    ids = np.asarray(samples.ids)
    if label is None:
        codes, keep, stratify = np.zeros(len(ids), dtype=np.int64), np.ones(len(ids), dtype=bool), False
    else:
        if label not in samples.obs.columns:
            raise BiolatentError(f"--holdout-label {label!r} is not a metadata column "
                                 f"(columns: {', '.join(map(str, samples.obs.columns)) or 'none'})")
        codes, _, keep = prepare_labels(samples.obs[label])
        stratify = True
    check_test_splits(codes, n_splits, test_fraction, stratify=stratify)
    kept = ids[keep]
    return [sorted(kept[holdout_split(codes, test_fraction, split, stratify=stratify)[1]].tolist())
            for split in range(n_splits)]


def _subset(samples: Any, rows: Any) -> Any:
    """The samples at ``rows`` (positions), every per-sample part cut alike."""
    from dataclasses import replace

    index = torch.as_tensor(rows, dtype=torch.long)
    # a matrix read from its file (counts backed, genome windows) stays lazy
    x = samples.x[index] if isinstance(samples.x, torch.Tensor) else samples.x.take(index)
    return replace(samples, x=x, obs=samples.obs.iloc[rows],
                   fields={k: v[index] for k, v in samples.fields.items()},
                   groups=None if samples.groups is None else samples.groups[index])


def pretrain(
    config: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    seeds: int = 1,
    holdout: int = 0,
    test_fraction: float = 0.2,
    holdout_label: str | None = None,
    say=print,
) -> dict[str, Any]:
    """Train ``config``'s method on its data into ``run_dir``; returns the ``pretrain`` metrics (floats, and
    ``collapse``: the collapse diagnostics of the trained embeddings, see :func:`check_collapse`).

    ``seeds`` > 1 trains ``train.seed + 1 ...`` too, each into ``RUN/seeds/<seed>/`` (a complete run directory:
    config, weights, metrics); the run itself stays the ``train.seed`` run, exactly as a single-seed run.
    ``holdout`` > 0 keeps the test ids of that many splits (split seeds 0..S-1, ``test_fraction`` each,
    stratified by ``holdout_label`` when given) out of pre-training and records them in ``RUN/holdout.json``:
    such a run can be evaluated with ``--protocol inductive``."""
    from biolatent.data.loaders import load_samples
    from biolatent.workflows.common import SEEDS_DIR

    if seeds < 1:
        raise BiolatentError(f"--seeds must be at least 1, got {seeds}")
    if holdout < 0:
        raise BiolatentError(f"--holdout-splits must be 0 (pre-train on every sample) or more, got {holdout}")
    if not 0 < test_fraction < 1:
        raise BiolatentError(f"--test-fraction must lie in (0, 1), got {test_fraction}")
    if holdout_label is not None and holdout == 0:
        raise BiolatentError("--holdout-label needs --holdout-splits S (S >= 1)")
    primary = launched_rank() == 0  # DDP launches one process per device; only the first writes files
    if primary:
        config = check_run_dir(run_dir, config, resume)
    say(f"loading {config.data.modality} data ...")
    samples = load_samples(config.data)
    record = None
    if holdout:
        splits = holdout_splits(samples, holdout, test_fraction, holdout_label)
        excluded = set().union(*splits)
        train_rows = [i for i, sample in enumerate(samples.ids) if sample not in excluded]
        if len(train_rows) < 2:
            raise BiolatentError(f"{holdout} holdout split(s) of {test_fraction:g} leave {len(train_rows)} "
                                 "sample(s) for pre-training")
        record = {"test_fraction": test_fraction, "stratify_by": holdout_label, "n_excluded": len(excluded),
                  "splits": splits}
        say(f"inductive: {len(excluded)} test ids of {holdout} split(s) kept out of pre-training")
        samples = _subset(samples, train_rows)
    if resume and primary:
        from biolatent.workflows.common import read_holdout

        saved = read_holdout(run_dir)
        if (saved is None) != (record is None) or (saved is not None and record is not None
                                                   and saved["splits"] != record["splits"]):
            raise BiolatentError(f"the holdout splits differ from those {run_dir} was started with (holdout.json): "
                                 "resume with the same --holdout-splits, --test-fraction and --holdout-label")
    seed_list = [config.train.seed + k for k in range(seeds)]
    metrics = _pretrain_one(config, run_dir, samples, resume=resume, progress=progress, callbacks=callbacks,
                            primary=primary, holdout=record, say=say)
    from biolatent.train.fit import LAST_CHECKPOINT

    for seed in seed_list[1:]:  # every DDP process trains every seed; only the first writes
        seed_dir = run_dir / SEEDS_DIR / str(seed)
        seed_config = config.model_copy(update={"train": config.train.model_copy(update={"seed": seed})})
        again = resume and (seed_dir / LAST_CHECKPOINT).is_file()
        if primary:
            check_run_dir(seed_dir, seed_config, again)
            say(f"pre-training seed {seed} -> {seed_dir}")
        _pretrain_one(seed_config, seed_dir, samples, resume=again, progress=progress, callbacks=callbacks,
                      primary=primary, holdout=record, say=say)
    if not primary:
        return {}
    extra = {"seeds": seed_list}
    if record is not None:
        extra["holdout"] = {k: v for k, v in record.items() if k != "splits"} | {"splits": holdout}
    metrics.update(extra)
    update_json(run_dir / "metrics.json", "pretrain", metrics)
    return metrics


def _pretrain_one(config: RunConfig, run_dir: Path, samples: Any, *, resume: bool, progress: bool,
                  callbacks: Sequence[Any], primary: bool, holdout: dict | None, say) -> dict[str, Any]:
    """One seed: ``samples`` -> weights, metrics and collapse diagnostics in ``run_dir`` (and ``holdout.json``,
    written with the run's header, when test ids were kept out)."""
    from biolatent.train.fit import check_world_size, fit, world_size
    from biolatent.train.memory import check_step_memory, estimate_step_memory
    from biolatent.train.timing import LoaderWaitTimer
    from biolatent.workflows.common import HOLDOUT_FILE

    pairing = samples.extra.get("pairing")
    if pairing:
        from biolatent.data.paired import pairing_text

        say(pairing_text(pairing))
    torch.manual_seed(config.train.seed)  # the initial weights are part of a seeded run
    method = build_method(config, samples.info)
    method.check_samples(samples)  # before anything is written: bad data leaves no half run
    if config.model.from_pretrained is not None and not resume:
        from biolatent.models.huggingface import load_pretrained

        loaded = load_pretrained(method.encoder, config.model.from_pretrained, head=getattr(method, "head", None)
                                 if config.method.name == "mlm" else None)
        say(f"initialised the {' and '.join(loaded)} from {config.model.from_pretrained}")
    fit_input_statistics(method, samples.x)  # e.g. per-gene standardisation; the weights file carries them
    n_params = sum(p.numel() for p in method.parameters())
    say(f"{len(samples)} samples; method {config.method.name} with encoder {config.model.name} "
        f"({n_params / 1e6:.2f} M parameters)")
    assert config.train.batch_size is not None
    processes = world_size(config.train)  # DDP: train.batch_size is split over them
    check_world_size(len(samples), config.train.batch_size, processes)  # before anything is written
    # a step that does not fit is refused here, with the batch that does, before the kernel's OOM killer takes the
    # machine down mid-run (and before anything is written)
    step_memory = check_step_memory(estimate_step_memory(method, samples.x, fields=samples.fields,
                                                         groups=samples.groups), config.train, processes=processes)
    say(f"a training step with batch {config.train.batch_size} needs about {step_memory / 1e9:.2f} GB"
        + (f" on {processes} processes" if processes > 1 else ""))
    if primary:
        write_run_header(run_dir, "pretrain", config, n_samples=len(samples))
        save_data_info(run_dir, samples.info)
        if holdout is not None:
            write_json(run_dir / HOLDOUT_FILE, holdout)
        if samples.feature_names is not None:
            write_json(run_dir / "features.json", list(samples.feature_names))
        _write_records_overview(run_dir, samples, config.train.seed)

    epochs_before = _completed_epochs(run_dir) if resume else 0
    started = time.perf_counter()
    timer = LoaderWaitTimer()
    history = fit(method, samples.x, config.train, run_dir=run_dir, resume=resume,
                  callbacks=[*callbacks, timer], progress=progress, fields=samples.fields, groups=samples.groups)
    seconds = time.perf_counter() - started
    check_unchanged = getattr(samples.x, "check_unchanged", None)
    if check_unchanged is not None:  # counts read from their file batch by batch: no weights from a changed file
        check_unchanged()
    if not primary:
        return {}
    save_weights(run_dir / WEIGHTS_FILE, method, {"method": config.method.name, "encoder": config.model.name,
                                                  "config_hash": config.hash()})
    final = history.iloc[-1].to_dict() if len(history) else {}
    metrics = {f"final_{k}": float(v) for k, v in final.items() if k not in {"epoch", "time_s"}}
    epochs_run = config.train.epochs - epochs_before
    metrics.update({
        "epochs": float(config.train.epochs),
        "n_samples": float(len(samples)),
        "n_parameters": float(n_params),
        "train_seconds": seconds,
        "samples_per_second": len(samples) * max(epochs_run, 1) / max(seconds, 1e-9),
        "loader_wait_fraction": timer.wait_fraction,
        "step_memory_gb": step_memory / 1e9,  # estimated peak of one training step (train.memory)
    })
    if pairing:
        metrics["pairing"] = pairing
    metrics["collapse"] = check_collapse(method, samples, config.train, say)
    update_json(run_dir / "metrics.json", "pretrain", metrics)
    return metrics


def check_collapse(method: torch.nn.Module, samples: Any, train: TrainConfig, say=print) -> dict:
    """Collapse diagnostics (``evaluate.collapse``) of the trained model's embeddings of up to 2000 training
    samples (subset seeded by ``train.seed``, embedded ``train.batch_size`` at a time); a collapsed embedding is
    announced loudly with its likely causes."""
    import numpy as np

    from biolatent.data.lazy_rows import LazyRows
    from biolatent.embed import compute_embeddings
    from biolatent.errors import DataError
    from biolatent.evaluate.collapse import MAX_SAMPLES, collapse_diagnostics, collapse_warning

    n = len(samples)
    seed = train.seed
    rows = np.arange(n) if n <= MAX_SAMPLES else np.sort(np.random.default_rng(seed).choice(n, MAX_SAMPLES, False))
    try:
        index = torch.as_tensor(rows)
        # a matrix read from its file (backed counts, genome windows, lazy volumes or slide tiles) is read per batch
        x = samples.x.take(index) if isinstance(samples.x, LazyRows) else samples.x[index]
        embeddings = compute_embeddings(method, x, batch_size=train.batch_size,
                                        fields={name: value[index] for name, value in samples.fields.items()})
    except DataError as exc:  # non-finite embeddings: training diverged
        diagnostics: dict = {"n_samples": float(rows.size), "collapsed": True, "flags": [str(exc)]}
    else:
        diagnostics = collapse_diagnostics(embeddings, seed=seed)
    if diagnostics["collapsed"]:
        say(collapse_warning(diagnostics, _likely_causes(method, samples.info)))
    else:
        say(f"embeddings not collapsed: effective rank {diagnostics['effective_rank']:.2f}, mean pairwise cosine "
            f"{diagnostics['mean_cosine']:.3f}")
    return diagnostics


def _likely_causes(method: torch.nn.Module, info: Any) -> list[str]:
    """Causes that the run's own settings point at (the generic ones are added by ``collapse_warning``)."""
    transform = getattr(method.encoder, "input_transform", None)
    if info.modality != "counts" or transform is None:
        return []
    if not info.is_counts and transform != "standardize":
        return [f"continuous input not standardised (model.input_transform: {transform}): genes on different "
                "scales; use input_transform: auto (per-gene standardisation)"]
    if info.is_counts and transform == "none":
        return ["raw counts without normalisation (model.input_transform: none): use auto (log1p_normalize)"]
    return []


def _completed_epochs(run_dir: Path) -> int:
    from biolatent.rundir import read_json
    from biolatent.train.fit import LAST_CHECKPOINT

    return int(read_json((run_dir / LAST_CHECKPOINT).with_suffix(".json"))["epoch"])


def launched_rank() -> int:
    """This process's rank when a distributed launcher (Lightning, torchrun, Slurm's srun) started it, else 0
    (a positive rank of any of them: a secondary process)."""
    for variable in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        value = os.environ.get(variable, "0")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


def _write_records_overview(run_dir: Path, samples: Any, seed: int) -> None:
    """``RUN/records.json`` (``data.records_overview``) for records data and images paired with records."""
    from biolatent.data.paired import RECORDS
    from biolatent.data.records_overview import records_overview

    if samples.info.modality == "records":
        tokens, vocab = samples.x, samples.extra.get("vocab")
    else:
        tokens, vocab = samples.fields.get(RECORDS), samples.extra.get("records_vocab")
    if tokens is None or not vocab:
        return
    write_json(run_dir / "records.json", records_overview(tokens, list(vocab), samples.ids, seed=seed))
