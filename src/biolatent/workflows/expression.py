"""``biolatent evaluate RUN --expression``: predict spatial gene expression of held-out tissue from the image.

Representations (each probed with ridge and kNN on the same labelled spots): ``ssl`` (the run's embeddings),
``random_init`` (the same method, untrained), ``pca`` (of pooled tile pixels), ``retrieval`` (clip runs:
BLEEP's weighted mean over the labelled spots nearest in the joint space; probe ``knn``) and
``supervised`` (the image encoder trained from scratch to regress every selected gene on the labelled
spots, early-stopped on a fifth of them: the review's supervised baseline; probe ``finetune``). Outputs in
``RUN/evaluate/expression/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from biolatent.errors import DataError
from biolatent.rundir import atomic_path

EXPRESSION_LABEL = "expression"  # the folder evaluate/expression/ and the metrics.json entry
EXPRESSION_FRACTIONS = (0.1, 0.2, 1.0)
MAP_GENES = 4
RETRIEVAL_K = 50  # BLEEP's k (Xie et al. 2023), capped by the number of labelled spots
HEADLINE_FRACTION = 0.2  # the comparison: 20% of the training spots labelled


def evaluate_expression_run(
    run_dir: Path,
    *,
    n_genes: int = 50,
    fractions: Sequence[float] = EXPRESSION_FRACTIONS,
    seeds: int = 3,
    supervised_steps: int | None = None,
    test_fraction: float = 0.2,
    say=print,
) -> dict:
    """Mean gene Pearson r of every representation at every fraction of the training spots (see module).

    The supervised baseline's budget as in :func:`~biolatent.workflows.evaluate.evaluate_run`
    (:func:`~biolatent.train.supervised.budget`; ``supervised_steps`` overrides the pre-training's steps).
    """
    from biolatent.build import build_encoder, build_method, build_views, fit_input_statistics
    from biolatent.data.features import raw_features
    from biolatent.data.loaders import load_samples
    from biolatent.embed import EMBEDDING_KEY, compute_embeddings, read_embeddings
    from biolatent.evaluate.efficiency import pca_features
    from biolatent.evaluate.expression import (
        log_normalise,
        run_expression_efficiency,
        select_genes,
        spatial_block_split,
        summarise_genes,
    )
    from biolatent.evaluate.splits import label_subset
    from biolatent.methods.clip import retrieval_predict
    from biolatent.train.checkpoint import load_weights
    from biolatent.train.supervised import budget, supervised_baseline
    from biolatent.workflows.common import EMBEDDINGS_FILE, WEIGHTS_FILE, load_data_info, load_run_config
    from biolatent.workflows.embed import data_config_for, embed_run
    from biolatent.workflows.evaluate import VALIDATION_FRACTION, validation_split, write_evaluation

    config = load_run_config(run_dir)
    info = load_data_info(run_dir)
    if info.modality != "spatial":
        raise DataError(f"--expression needs a spatial run (data.modality: spatial); {run_dir} is "
                        f"{info.modality!r}: use --label COLUMN")
    samples = load_samples(data_config_for(config, None, info))
    if "expression" not in samples.fields or not {"x_px", "y_px"} <= set(samples.obs.columns):
        raise DataError("the spatial data carry no expression matrix or spot positions")
    coords = samples.obs[["x_px", "y_px"]].to_numpy(dtype=np.float64)
    train_idx, test_idx, buffer_idx = spatial_block_split(coords, test_fraction, seed=0)
    all_targets = log_normalise(samples.fields["expression"].numpy(), info.is_counts)
    chosen = select_genes(all_targets, train_idx, n_genes)
    targets = all_targets[:, chosen]
    genes = [samples.feature_names[i] for i in chosen]
    say(f"spatial split: {test_idx.size} test spots in held-out regions, {train_idx.size} training spots, "
        f"{buffer_idx.size} dropped within the buffer; {len(genes)} genes (most variable on the training spots)")

    if not (run_dir / EMBEDDINGS_FILE).is_file():
        embed_run(run_dir, say=say)
    adata = read_embeddings(run_dir / EMBEDDINGS_FILE)
    if list(adata.obs_names) != samples.ids:
        raise DataError(f"{run_dir / EMBEDDINGS_FILE} does not hold the run's spots: re-run `biolatent embed`")

    say("random-init encoder and PCA baselines ...")
    torch.manual_seed(config.train.seed)
    random_method = fit_input_statistics(build_method(config, info), samples.x)
    representations = {
        "ssl": np.asarray(adata.obsm[EMBEDDING_KEY], dtype=np.float32),
        "random_init": compute_embeddings(random_method, samples.x, say=say),
        "pca": pca_features(raw_features(samples), seed=config.train.seed),
    }
    supervised_runs: list[dict] = []
    supervised_budget = budget(config.train, samples.x.shape[0], supervised_steps)
    say(f"supervised baseline: {supervised_budget['rule']}; lr from {supervised_budget['lr_grid']}")
    finetune = supervised_baseline(
        lambda: fit_input_statistics(build_encoder(config, info), samples.x), lambda: build_views(config, info),
        samples.x, targets.astype(np.float32), None, config.train, supervised_budget["max_steps"],
        task="regression",
        validation_split=validation_split(), on_trained=supervised_runs.append,
    )
    predictors = {("supervised", "finetune"): lambda labelled, test, seed: finetune(labelled, test, seed)}
    if config.method.name == "clip":
        trained = build_method(config, info)
        load_weights(run_dir / WEIGHTS_FILE, trained)
        trained.eval()
        expression = samples.fields["expression"]
        query = torch.as_tensor(representations["ssl"])

        def retrieve(labelled: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
            with torch.no_grad():
                reference = trained.embed_expression(expression[torch.as_tensor(labelled)].float())
            k = min(RETRIEVAL_K, labelled.size)
            return retrieval_predict(query[torch.as_tensor(test)], reference, torch.as_tensor(targets[labelled]),
                                     k=k).numpy()

        predictors[("retrieval", "knn")] = retrieve

    per_gene, per_seed = run_expression_efficiency(
        representations, targets, genes, train_idx, test_idx, list(fractions), list(range(seeds)),
        predictors=predictors, progress=say,
    )
    settings = {
        "label": EXPRESSION_LABEL, "task": "expression", "genes": genes, "n_genes": len(genes),
        "genes_requested": n_genes,
        "fractions": list(fractions), "seeds": seeds, "test_fraction": test_fraction,
        "split": {"kind": "spatial blocks", "n_test": int(test_idx.size), "n_train": int(train_idx.size),
                  "n_buffer": int(buffer_idx.size)},
        "labelled_per_fraction": {f"{f:g}": int(label_subset(train_idx, np.zeros(len(coords)), f, 0,
                                                              stratify=False).size) for f in fractions},
        "pca_components": int(representations["pca"].shape[1]),
        "supervised": {**supervised_budget, "validation_fraction": VALIDATION_FRACTION,
                       "runs": supervised_runs},
    }
    head = write_evaluation(run_dir, None, per_seed, settings, say, headline_fraction=HEADLINE_FRACTION)
    folder = Path(head["efficiency"]).parent
    with atomic_path(folder / "expression_prediction.tsv") as tmp:
        summarise_genes(per_gene).to_csv(tmp, sep="\t", index=False)
    with atomic_path(folder / "expression_per_seed.tsv") as tmp:
        per_gene.to_csv(tmp, sep="\t", index=False)
    _write_maps(folder, samples.obs, targets, genes, representations["ssl"], train_idx, test_idx, fractions)
    return head


def _write_maps(folder: Path, obs, targets: np.ndarray, genes: list[str], ssl: np.ndarray, train_idx: np.ndarray,
                test_idx: np.ndarray, fractions: Sequence[float]) -> None:
    """``expression_maps.png``: the ridge probe on the SSL features with the largest fraction (seed 0), for the
    first ``MAP_GENES`` selected genes (chosen by training variance, not by how well they are predicted)."""
    from biolatent.evaluate.plots import expression_maps_figure
    from biolatent.evaluate.probes import REGRESSION_PROBES
    from biolatent.evaluate.splits import label_subset
    from biolatent.figures import save_figure

    fraction = max(fractions)
    labelled = label_subset(train_idx, np.zeros(targets.shape[0]), fraction, 0, stratify=False)
    shown = list(range(min(MAP_GENES, len(genes))))
    model = REGRESSION_PROBES["linear"]().fit(ssl[labelled], targets[labelled][:, shown])
    predicted = model.predict(ssl[test_idx]).reshape(test_idx.size, len(shown))
    figure = expression_maps_figure(obs["x_px"].to_numpy(float), obs["y_px"].to_numpy(float), targets[:, shown],
                                    predicted, [genes[i] for i in shown], test_idx,
                                    f"SSL ridge, {fraction * 100:g}% labels")
    save_figure(figure, folder / "expression_maps.png")
