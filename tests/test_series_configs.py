"""Every example config of configs/series validates, pre-trains on a tiny .ts set through the CLI, embeds and is
evaluated on the .ts class labels (pretrain -> embed -> evaluate, the whole chain)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from biolatent.build import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "series").glob("*.yaml"))
TINY_MODEL = {
    "series_cnn": {"hidden_dim": 8, "out_dim": 8, "depth": 2},
    "series_transformer": {"patch_size": 4, "dim": 8, "depth": 1, "heads": 2},
}


def tiny_ts(path: Path, n: int = 24) -> Path:
    """Two classes of noisy sine / square waves, 32 steps."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 4 * np.pi, 32)
    lines = ["@problemName tiny", "@univariate true", "@equalLength true", "@classLabel true sine square", "@data"]
    for i in range(n):
        label = "sine" if i % 2 else "square"
        wave = np.sin(t + rng.uniform(0, 6)) if label == "sine" else np.sign(np.sin(t + rng.uniform(0, 6)))
        lines.append(",".join(f"{v:.4f}" for v in wave + 0.1 * rng.normal(size=32)) + f":{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_examples_cover_both_series_methods():
    assert {yaml.safe_load(p.read_text())["method"]["name"] for p in CONFIGS} == {"ts2vec", "masked_series"}
    for path in CONFIGS:
        assert load_config(path).data.modality == "series"


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_example_config_pretrains_embeds_and_evaluates(config: Path, run_cli, tmp_path: Path):
    raw = yaml.safe_load(config.read_text())
    raw["data"] = {"modality": "series", "path": str(tiny_ts(tmp_path / "tiny.ts"))}
    raw["model"] |= TINY_MODEL[raw["model"]["name"]]
    raw["train"] |= {"epochs": 2, "batch_size": 8}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    result = run_cli("pretrain", path, "--out", out, "--quiet")
    assert result.code == 0, result.err
    assert run_cli("embed", out).code == 0
    import anndata

    adata = anndata.read_h5ad(out / "embeddings.h5ad")
    assert adata.n_obs == 24 and adata.obs["label"].tolist()[:2] == ["square", "sine"]
    assert np.isfinite(adata.obsm["X_biolatent"]).all() and adata.obsm["X_biolatent"].std(axis=0).max() > 0
    result = run_cli("evaluate", out, "--label", "label", "--fractions", "0.5,1.0", "--seeds", "2",
                     "--supervised-steps", "2")
    assert result.code == 0, result.err
    table = pd.read_csv(out / "evaluate" / "label" / "efficiency.tsv", sep="\t")
    assert {"ssl", "random_init", "pca", "supervised"} <= set(table["representation"])
    assert table["mean"].between(0, 1).all()
