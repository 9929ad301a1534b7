"""``biolatent evaluate RUN --batch COL --label COL``: batch integration of a run's embedding against its
random-init encoder and PCA of the raw features -> ``RUN/evaluate/integration/`` (``integration.tsv``,
``integration_per_seed.tsv``, ``integration.png``; the summary in ``RUN/metrics.json["integration"]``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.rundir import update_json

INTEGRATION_DIR = ("evaluate", "integration")


def evaluate_integration(run_dir: Path, batch: str, label: str, say: Callable[[str], object] = print) -> Path:
    """Integration metrics (``evaluate.integration``) of every pre-training seed's embedding, its random-init
    encoder and PCA of the raw features, on the run's labelled samples -> integration.tsv (mean and range over
    the pre-training seeds; PCA does not vary with them)."""
    try:
        import scib_metrics  # noqa: F401
    except ImportError:
        raise DataError("evaluate --batch needs scib-metrics: pip install 'biolatent[integration]'") from None
    from biolatent.data.batches import batch_codes
    from biolatent.evaluate.efficiency import pca_features
    from biolatent.evaluate.integration import check_integration_inputs, integration_metrics
    from biolatent.evaluate.plots import plot_integration
    from biolatent.rundir import atomic_path
    from biolatent.workflows.evaluate import build_representations, load_labelled_run

    run = load_labelled_run(run_dir, label, "classification")
    codes, categories = batch_codes(run.obs, batch, str(run_dir), option="--batch")
    batches = np.asarray(categories)[codes.numpy()]
    labels = run.obs[label].astype(str).to_numpy()
    check_integration_inputs(batches, labels, f"{run_dir} ({label!r} labelled samples)")
    reps = build_representations(run, say)
    seed = run.config.train.seed
    candidates: list[tuple[str, int | None, np.ndarray]] = []
    for index, pretrain_seed in enumerate(reps.pretrain_seeds):
        candidates += [("ssl", pretrain_seed, reps.ssl[index]), ("random_init", pretrain_seed, reps.random_init[index])]
    candidates.append(("pca", None, pca_features(reps.raw, seed=seed)))
    rows = []
    for name, pretrain_seed, embedding in candidates:
        say(f"integration metrics of {name}" + ("" if pretrain_seed is None else f" (pre-training seed "
                                                                              f"{pretrain_seed})") + " ...")
        values = integration_metrics(embedding, batches, labels, seed=seed)
        rows += [{"representation": name, "pretrain_seed": pretrain_seed, "metric": metric, "value": value}
                 for metric, value in values.items()]
    per_seed = pd.DataFrame(rows)
    per_seed["pretrain_seed"] = per_seed["pretrain_seed"].astype("Int64")
    summary = (per_seed.groupby(["representation", "metric"], sort=False)["value"]
               .agg(mean="mean", low="min", high="max", n_seeds="count").reset_index())
    folder = run_dir.joinpath(*INTEGRATION_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in (("integration_per_seed.tsv", per_seed), ("integration.tsv", summary)):
        with atomic_path(folder / name) as tmp:
            table.to_csv(tmp, sep="\t", index=False)
    path = folder / "integration.tsv"
    plot_integration(summary, folder / "integration.png", batch, label)
    head = {name: {row.metric: float(row.mean) for row in summary[summary.representation == name].itertuples()}
            for name in summary.representation.unique()}
    update_json(run_dir / "metrics.json", "integration", {"batch": batch, "label": label,
                                                          "pretrain_seeds": reps.pretrain_seeds, **head})
    ssl = head["ssl"]
    say(f"integration: ssl batch correction {ssl['batch_correction']:.3f}, bio conservation "
        f"{ssl['bio_conservation']:.3f} (pca {head['pca']['batch_correction']:.3f} / "
        f"{head['pca']['bio_conservation']:.3f}) -> {path}")
    return path
