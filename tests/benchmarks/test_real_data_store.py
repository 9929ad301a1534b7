"""``benchmarks/real_data_results.store_run`` on a fake run directory (no training): the run's section, its
efficiency rows and its provenance land under the results folder, and the section is a block source for
``results_doc.py``; the doc itself is never written by the script."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from biolatent.embed import EMBEDDING_KEY
from biolatent.evaluate.efficiency import label_dir

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import real_data_results  # noqa: E402
import results_doc  # noqa: E402


def _fake_run(run_dir: Path) -> None:
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({
        "pretrain": {"n_samples": 40, "epochs": 2, "samples_per_second": 123.4, "final_loss": 0.5},
        "evaluate": {"cell_type": {"headline": {"fraction": 0.1, "ssl_linear": 0.61, "supervised_finetune": 0.5}}},
    }))
    adata = ad.AnnData(np.zeros((40, 3), dtype=np.float32))
    adata.obsm[EMBEDDING_KEY] = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    adata.write_h5ad(run_dir / "embeddings.h5ad")
    rows = [{"representation": rep, "probe": probe, "fraction": f, "metric": "balanced_accuracy",
             "mean": 0.5 + f / 4, "ci_low": 0.4, "ci_high": 0.7, "n_seeds": 3}
            for rep, probe in [("ssl", "linear"), ("pca", "knn"), ("supervised", "finetune")] for f in (0.1, 1.0)]
    label_dir(run_dir, "cell_type").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(label_dir(run_dir, "cell_type") / "efficiency.tsv", sep="\t", index=False)


def test_store_run_writes_section_rows_and_provenance(tmp_path: Path) -> None:
    run_dir, results = tmp_path / "run", tmp_path / "results"
    _fake_run(run_dir)
    args = argparse.Namespace(seeds=3, supervised_steps=300, quick=False, out=tmp_path, only=None,
                              results_dir=results)
    real_data_results.store_run(results, "real_data-fake", "fake", "configs/fake.yaml", "cell_type", [],
                                run_dir, 1.5, args)
    section = (results / "real_data-fake.md").read_text()
    assert section.startswith("## fake (`configs/fake.yaml`)\n")
    assert "| ssl | linear | 0.525 [0.400, 0.700] | 0.750 [0.400, 0.700] |" in section
    payload = json.loads((results / "real_data-fake.json").read_text())
    assert payload["git_sha"] and payload["arguments"]["seeds"] == 3 and payload["label"] == "cell_type"
    rows = pd.read_csv(results / "real_data-fake.tsv", sep="\t")
    assert len(rows) == 6 and set(rows.git_sha) == {payload["git_sha"]}
    # the stored section fills a doc block
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- generated from results/real_data-fake.md: do not edit -->\n<!-- end generated -->\n")
    assert results_doc.main(["--doc", str(doc), "--root", str(tmp_path)]) == 0
    assert "| ssl | linear |" in doc.read_text()
