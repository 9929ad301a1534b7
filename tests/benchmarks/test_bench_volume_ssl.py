"""Smoke test of ``benchmarks/volume_ssl.py --quick``: every 3D example config is pre-trained and probed, and the
result table holds every representation x subject parameter x fraction."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_probes_every_config_and_parameter(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "volume_ssl.py"), "--quick", "--work", str(tmp_path / "work"),
         "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "out" / "volume_ssl-cpu-quick.json").read_text())
    configs = {p.stem for folder in ("volume", "cine") for p in (ROOT / "configs" / folder).glob("*.yaml")
               if "genotypes" not in p.read_text()}  # contig needs a genotyped cohort: genotype_image_chain.py
    assert {row["config"] for row in payload["pretraining"]} == configs
    for row in payload["pretraining"]:
        assert row["samples_per_s"] > 0 and 0 <= row["loader_wait_fraction"] < 1
    rows = payload["rows"]
    brain = {r["representation"] for r in rows if r["cohort"] == "brain"}
    assert {"simclr", "moco", "byol", "dino", "mae", "micle", "random_init_resnet", "random_init_vit", "pca",
            "supervised"} <= brain
    heart = {(r["label"], r["metric"], r["fraction"]) for r in rows if r["cohort"] == "heart"}
    for label in ("ejection_fraction", "wall_thickness", "cavity_volume", "twist"):
        assert {(label, "pearson_r", 0.1), (label, "pearson_r", 1.0), (label, "r2", 1.0)} <= heart
    assert ("site", "balanced_accuracy", 1.0) in heart
    assert all(math.isfinite(r["mean"]) or r["metric"] == "pearson_r" for r in rows)
    assert "| representation |" in (tmp_path / "out" / "volume_ssl-cpu-quick.md").read_text()
