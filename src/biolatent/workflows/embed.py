"""``biolatent embed``: a trained run + data -> ``embeddings.h5ad``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biolatent.build import build_method
from biolatent.config import RunConfig, dump_config, read_yaml
from biolatent.data.batches import BATCH_FIELD, recode_batches
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.embed import compute_embeddings, write_embeddings
from biolatent.errors import DataError
from biolatent.provenance import collect
from biolatent.rundir import read_json, update_json
from biolatent.train.checkpoint import load_weights
from biolatent.workflows.common import EMBEDDINGS_FILE, WEIGHTS_FILE, load_data_info, load_run_config


def data_config_for(config: RunConfig, data: str | Path | None, info: DataInfo):
    """The run's data section, or another data source given as a YAML (its data section) or a path."""
    data_cfg = config.data
    if data is not None:
        data = Path(data)
        if data.suffix in {".yaml", ".yml"}:
            section = read_yaml(data).get("data")
            if not isinstance(section, dict):
                raise DataError(f"{data} has no data section")
            section = {**section}
            for key in ("path", "metadata", "exclude_regions"):
                if section.get(key) and not Path(section[key]).is_absolute():
                    section[key] = str((data.parent / section[key]).resolve())
            data_cfg = type(config.data)(**{**section, "modality": config.data.modality})
        else:
            data_cfg = data_cfg.model_copy(update={"path": data.resolve(), "dataset": None, "metadata": None})
    if getattr(data_cfg, "paired_parts", None):  # the genetics pair subjects for training; every image is embedded
        data_cfg = data_cfg.model_copy(update={"genotypes": None, "genetic_tables": {}})
    if getattr(data_cfg, "records", None) is not None and not _embeds_records(config):
        data_cfg = data_cfg.model_copy(update={"records": None})  # records too, unless the embedding uses them
    if info.modality == "dna":  # positions were learned for this many bases
        data_cfg = data_cfg.model_copy(update={"max_length": info.max_length})
    if info.modality in ("volume", "cine"):  # the encoder's grid (and the cine encoder's number of frames)
        update: dict = {"image_size": info.image_size}
        if info.modality == "cine":
            update["frames"] = info.frames
        data_cfg = data_cfg.model_copy(update=update)
    return data_cfg


def _embeds_records(config: RunConfig) -> bool:
    from biolatent.data.paired import RECORDS
    from biolatent.methods.registry import METHODS

    method = METHODS.get(config.method.name)
    return method is not None and RECORDS in getattr(method, "embed_fields", ())


def check_compatible(trained: DataInfo, samples: SampleSet, trained_features: list[str] | None) -> None:
    new = samples.info
    if trained.modality == "counts" and new.n_features != trained.n_features:
        raise DataError(f"the model was trained on {trained.n_features} features, this data has {new.n_features}")
    if trained_features and samples.feature_names and list(samples.feature_names) != list(trained_features):
        raise DataError("the feature names (genes) differ from those the model was trained on, or their order does")
    if trained.modality == "image2d" and new.channels != trained.channels:
        raise DataError(f"the model was trained on {trained.channels}-channel images, these have {new.channels}")
    if trained.modality == "records" and new.vocab_size != trained.vocab_size:
        raise DataError(f"the model was trained on a vocabulary of {trained.vocab_size} codes, this data gives "
                        f"{new.vocab_size}: embed records prepared as for pre-training (same tables, min_count, "
                        f"value_bins, prediction time)")
    if trained.records_vocab_size and new.records_vocab_size != trained.records_vocab_size:
        raise DataError(f"the model was trained with records of {trained.records_vocab_size} codes, the paired "
                        f"records give {new.records_vocab_size}: prepare them as for pre-training")


def embed_run(run_dir: Path, data: str | Path | None = None, out: Path | None = None, say=print) -> Path:
    from biolatent.data.loaders import load_samples

    config = load_run_config(run_dir)
    info = load_data_info(run_dir)
    samples = load_samples(data_config_for(config, data, info))
    feature_file = run_dir / "features.json"
    check_compatible(info, samples, read_json(feature_file) if feature_file.is_file() else None)
    if info.batch_categories and BATCH_FIELD in samples.fields:  # the codes the model was trained with
        samples.fields[BATCH_FIELD] = recode_batches(samples.fields[BATCH_FIELD], samples.info.batch_categories or [],
                                                     info.batch_categories)
    method = build_method(config, info)
    load_weights(run_dir / WEIGHTS_FILE, method)
    say(f"embedding {len(samples)} samples ...")
    embeddings = compute_embeddings(method, samples.x, batch_size=max(config.train.batch_size, 64), say=say,
                                    fields=samples.fields)
    check_unchanged = getattr(samples.x, "check_unchanged", None)
    if check_unchanged is not None:  # data read from its file batch by batch: not changed since it was opened
        check_unchanged()
    out = out or run_dir / EMBEDDINGS_FILE
    write_embeddings(out, embeddings, samples.obs, collect("embed", config_hash=config.hash()), dump_config(config))
    update_json(run_dir / "metrics.json", "embed", {
        "n_samples": float(embeddings.shape[0]),
        "dim": float(embeddings.shape[1]),
        "mean_norm": float(np.linalg.norm(embeddings, axis=1).mean()),
    })
    return out


def embed_all_seeds(run_dir: Path, data: str | Path | None = None, say=print) -> list[Path]:
    """Embed with every pre-training seed of the run (``common.seed_run_dirs``): one embeddings.h5ad in each."""
    from biolatent.workflows.common import seed_run_dirs

    paths = []
    for seed, seed_dir in seed_run_dirs(run_dir):
        if seed_dir != run_dir:
            say(f"pre-training seed {seed}:")
        paths.append(embed_run(seed_dir, data, say=say))
    return paths
