"""Every method that takes counts-modality data, on a continuous microarray-like cohort (57 samples x 2000
genes, means 4..12, SDs 0.05..1.5): per-gene standardisation (the default) gives a non-collapsed embedding;
without it (``input_transform: none``) the embedding collapses (issue 11, item 1) and the check says so."""

from pathlib import Path

import numpy as np
import pytest

from biolatent.build import resolve_sections
from biolatent.config import RunConfig
from biolatent.data.simulate import simulate_expression
from biolatent.methods.registry import METHODS
from biolatent.workflows.pretrain import pretrain

COUNTS_METHODS = [name for name, cls in METHODS.items() if "counts" in cls.modalities]
FOR_CONTINUOUS = {"vae": {"likelihood": "gaussian"}, "moco": {"queue_size": 32}}  # 57 samples: a small queue


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("microarray") / "expression.h5ad"
    simulate_expression(n_samples=57, n_genes=2000, seed=0).write_h5ad(path)
    return path


def _pretrain(cohort: Path, run: Path, name: str, model: dict) -> tuple[dict, list[str]]:
    config = resolve_sections(RunConfig(
        data={"modality": "counts", "path": str(cohort)},
        method={"name": name, **FOR_CONTINUOUS.get(name, {})},
        model={"name": "mlp", "hidden_dims": [64], "out_dim": 32, **model},
        train={"epochs": 4, "batch_size": 32, "seed": 0, "accelerator": "cpu"},
    ))
    printed: list[str] = []
    metrics = pretrain(config, run, progress=False, say=printed.append)
    return metrics, printed


def test_fixture_is_continuous_on_very_different_scales(cohort: Path) -> None:
    from biolatent.data.loaders import load_samples

    samples = load_samples(RunConfig(data={"modality": "counts", "path": str(cohort)}, method={"name": "simclr"}).data)
    x = samples.x.numpy()
    assert not samples.info.is_counts and x.shape == (57, 2000)
    assert x.mean(0).min() < 6 and x.mean(0).max() > 11 and np.median(x.std(0)) < 0.5
    assert samples.obs["diagnosis"].nunique() == 3 and samples.obs["batch"].nunique() == 5


@pytest.mark.parametrize("name", COUNTS_METHODS)
def test_standardised_continuous_input_does_not_collapse(cohort: Path, tmp_path: Path, name: str) -> None:
    from biolatent.embed import read_embeddings
    from biolatent.evaluate.quality import effective_rank
    from biolatent.rundir import read_json
    from biolatent.workflows.embed import embed_run

    metrics, printed = _pretrain(cohort, tmp_path / "run", name, {})
    collapse = metrics["collapse"]
    assert collapse["collapsed"] is False, collapse
    assert collapse["effective_rank"] > 3.0 and collapse["mean_cosine"] < 0.9
    assert read_json(tmp_path / "run" / "metrics.json")["pretrain"]["collapse"] == collapse
    assert not any("COLLAPSE" in line for line in printed)
    # embed rebuilds the model from config + weights: the statistics come back with the weights
    embed_run(tmp_path / "run", say=lambda _: None)
    emb = np.asarray(read_embeddings(tmp_path / "run" / "embeddings.h5ad").obsm["X_biolatent"])
    assert effective_rank(emb) == pytest.approx(collapse["effective_rank"], rel=1e-4)


@pytest.mark.parametrize("name", COUNTS_METHODS)
def test_unscaled_continuous_input_collapses_and_is_flagged(cohort: Path, tmp_path: Path, name: str) -> None:
    metrics, printed = _pretrain(cohort, tmp_path / "run", name, {"input_transform": "none"})
    collapse = metrics["collapse"]
    assert collapse["collapsed"] is True and collapse["effective_rank"] < 1.5 and collapse["mean_cosine"] > 0.99
    warning = "\n".join(printed)
    assert "REPRESENTATION COLLAPSE" in warning and "input_transform: none" in warning


def test_random_init_baseline_uses_the_runs_input_statistics(cohort: Path, tmp_path: Path) -> None:
    """evaluate rebuilds a fresh model for the random-init and supervised baselines: they standardise with the
    statistics of the run's data (without them a standardising encoder refuses to run)."""
    import torch

    from biolatent.build import build_method, fit_input_statistics
    from biolatent.data.loaders import load_samples
    from biolatent.train.checkpoint import load_weights
    from biolatent.workflows.common import WEIGHTS_FILE, load_data_info, load_run_config
    from biolatent.workflows.evaluate import evaluate_run

    run = tmp_path / "run"
    _pretrain(cohort, run, "simclr", {})
    config, info = load_run_config(run), load_data_info(run)
    trained = build_method(config, info)
    load_weights(run / WEIGHTS_FILE, trained)

    fresh = fit_input_statistics(build_method(config, info), load_samples(config.data).x)
    for key in ("encoder.input_mean", "encoder.input_scale"):
        torch.testing.assert_close(fresh.state_dict()[key], trained.state_dict()[key])
    head = evaluate_run(run, "diagnosis", fractions=[1.0], seeds=1, supervised_steps=5, say=lambda _: None)
    assert head["metric"] == "balanced_accuracy"
    for representation in ("ssl_linear", "random_init_linear", "supervised_finetune"):
        assert head[representation] is not None and 0.0 <= head[representation] <= 1.0
