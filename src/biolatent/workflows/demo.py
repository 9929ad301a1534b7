"""``biolatent demo``: the whole chain on real PBMC cells (pbmc68k), on a laptop CPU in minutes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from biolatent.build import load_config

DEMO_CONFIG = {
    "data": {"modality": "counts", "dataset": "pbmc68k"},
    "method": {"name": "vae", "latent_dim": 10},
    "model": {"hidden_dims": [256, 128], "out_dim": 128},
    "train": {"epochs": 200, "batch_size": 128, "lr": 1e-3, "seed": 0},
}
DEMO_LABEL = "bulk_labels"


def run_demo(out: Path, *, epochs: int | None = None, seeds: int = 3, progress: bool = True, say=print) -> Path:
    from biolatent.report import build_report
    from biolatent.workflows.embed import embed_run
    from biolatent.workflows.evaluate import evaluate_run
    from biolatent.workflows.pretrain import pretrain

    overrides = [f"train.epochs={epochs}"] if epochs else []
    config = load_config(DEMO_CONFIG, overrides)
    run_dir = out / f"pbmc68k-vae-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    say(f"demo: scVI-style VAE on pbmc68k (700 real PBMCs, 765 genes) -> {run_dir}")
    pretrain(config, run_dir, progress=progress, say=say)
    embed_run(run_dir, say=say)
    head = evaluate_run(run_dir, DEMO_LABEL, seeds=seeds, say=say)
    report = build_report(run_dir, say=say)
    say("")
    say(f"report: {report.resolve()}")
    say(_headline_text(head))
    return report


def _headline_text(head: dict) -> str:
    parts = [f"{k} = {v:.3f}" for k, v in head.items() if isinstance(v, float)]
    return "headline (balanced accuracy at 10% labels): " + ", ".join(parts)
