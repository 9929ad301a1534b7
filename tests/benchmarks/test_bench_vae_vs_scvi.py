"""Smoke test of ``benchmarks/vae_vs_scvi.py --quick`` (needs scvi-tools, the ``bench`` extra)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from biolatent.datasets import RegistryUnreachable, fetch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "vae_vs_scvi.py"
COLUMNS = ["tool", "epochs", "s_per_epoch", "s_per_epoch_min", "s_per_epoch_incl_startup", "train_s", "elbo_per_cell",
           "elbo_sd", "knn_bal_acc", "knn_sd", "params", "params_used"]

pytestmark = pytest.mark.slow


def test_quick_run_table(tmp_path: Path) -> None:
    pytest.importorskip("scvi")
    try:
        fetch("pbmc68k", progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"package registry unreachable: {exc}")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "vae_vs_scvi-cpu.json").read_text())
    assert payload["columns"] == COLUMNS
    assert "| " + " | ".join(COLUMNS) + " |" in (tmp_path / "vae_vs_scvi-cpu.md").read_text()
    tools = {row["tool"]: row for row in payload["rows"]}
    assert {"biolatent", "scvi-tools"} <= set(tools)
    for name in ("biolatent", "scvi-tools"):
        row = tools[name]
        assert row["epochs"] == 2
        for key in ("s_per_epoch", "s_per_epoch_min", "s_per_epoch_incl_startup", "train_s", "params", "params_used"):
            assert math.isfinite(row[key]) and row[key] > 0, (name, key)
        # an ELBO of NB counts is a finite log-probability: negative
        assert math.isfinite(row["elbo_per_cell"]) and row["elbo_per_cell"] < 0
        assert 0 < row["knn_bal_acc"] <= 1
    summary = payload["summary"]
    assert summary["time_per_epoch_ratio_biolatent_over_scvi"] > 0
    assert math.isfinite(summary["elbo_diff_per_cell_biolatent_minus_scvi"])
