"""benchmarks/dna_genome_pretraining.py: its genome run is the example config, and its paired differences are the
plain differences of the draws both representations share."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import dna_genome_pretraining as bench  # noqa: E402


def test_the_example_config_is_the_published_genome_run(monkeypatch):
    monkeypatch.setattr(bench, "dataset_folder", lambda name: Path("/data") / name)
    genome = bench.run_config("genome", bench.parse_args([]), bench.parse_args([]).genome_epochs)
    example = yaml.safe_load((ROOT / "configs" / "grch37_chr20_nt.yaml").read_text())
    assert genome["data"].pop("exclude_regions") == "/data/promoters-chr20/task_regions.bed"
    assert example == genome


def test_paired_differences_pair_the_same_draws():
    rng = np.random.default_rng(0)
    rows = []
    for split in range(2):
        for seed in range(3):
            for rep, probe in (("genome", "linear"), ("random_init", "linear"), ("supervised", "finetune")):
                rows.append({"representation": rep, "probe": probe, "fraction": 0.1, "metric": "auroc",
                             "test_split": split, "seed": seed, "pretrain_seed": -1 if rep == "supervised" else 0,
                             "value": rng.uniform(0.5, 1.0)})
    per_seed = pd.DataFrame(rows)
    for other in ("random_init", "supervised"):
        result = bench.paired(per_seed, "genome", other, "linear", 0.1)
        a = per_seed[per_seed.representation == "genome"].value.to_numpy()
        b = per_seed[per_seed.representation == other].value.to_numpy()
        diff = a - b  # rows are in the same (split, seed) order
        half = stats.t.ppf(0.975, diff.size - 1) * diff.std(ddof=1) / np.sqrt(diff.size)
        assert result["n"] == 6
        assert result["mean"] == pytest.approx(diff.mean())
        assert (result["ci_low"], result["ci_high"]) == pytest.approx((diff.mean() - half, diff.mean() + half))
