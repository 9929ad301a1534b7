"""Smoke test of ``benchmarks/spatial_expression.py --quick --only sim``: the simulated tissue is pre-trained with
configs/spatial/clip.yaml and evaluated; the tables hold every representation and both kinds of gene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_on_the_simulator(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "spatial_expression.py"), "--quick", "--only", "sim",
         "--work", str(tmp_path / "work"), "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT / "benchmarks", timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "out" / "spatial_expression-cpu-quick.json").read_text())
    rows = payload["sim"]["efficiency"]
    assert {(r["representation"], r["probe"]) for r in rows} == {
        ("ssl", "linear"), ("ssl", "knn"), ("retrieval", "knn"), ("random_init", "linear"), ("random_init", "knn"),
        ("pca", "linear"), ("pca", "knn"), ("supervised", "finetune")}
    assert all({"10%", "100%"} <= set(r) for r in rows)
    for row in payload["sim"]["truth"]:
        assert "morphology genes: mean r (n)" in row and "independent genes: mean r (n)" in row
    assert payload["sim"]["tiles_per_s"] > 0
    assert "| representation |" in (tmp_path / "out" / "spatial_expression-cpu-quick.md").read_text()
