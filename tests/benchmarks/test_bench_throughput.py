"""Smoke test of ``benchmarks/throughput.py --quick``: it runs, and its table has the promised shape."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "throughput.py"
COLUMNS = [
    "method", "modality", "encoder", "batch_size", "params_M", "samples_per_s", "step_ms",
    "gflop_per_step", "achieved_tflops", "peak_tflops", "mfu", "views_ms", "pipeline_share",
]
POSITIVE = ["batch_size", "params_M", "samples_per_s", "step_ms", "gflop_per_step", "achieved_tflops",
            "peak_tflops", "mfu"]
NON_NEGATIVE = ["views_ms", "pipeline_share"]
CASES = {("vae", "counts"), ("simclr", "counts"), ("mlm", "dna"), ("simclr", "dna"),
         ("simclr", "image2d"), ("mae", "image2d")}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("throughput")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--device", "cpu", "--out-dir", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


@pytest.mark.slow
def test_writes_json_and_markdown_with_all_columns(quick_run: tuple[Path, str]) -> None:
    out, stdout = quick_run
    payload = json.loads((out / "throughput-cpu.json").read_text())
    assert payload["columns"] == COLUMNS
    rows = payload["rows"]
    assert {(r["method"], r["modality"]) for r in rows} == CASES
    for row in rows:
        assert set(COLUMNS) <= set(row)
    header = "| " + " | ".join(COLUMNS) + " |"
    assert header in (out / "throughput-cpu.md").read_text()
    assert header in stdout  # the table is printed too
    assert payload["meta"]["device"] == "cpu" and payload["meta"]["quick"] is True


@pytest.mark.slow
def test_numbers_are_finite_and_positive(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    rows = json.loads((out / "throughput-cpu.json").read_text())["rows"]
    for row in rows:
        for key in POSITIVE:
            assert math.isfinite(row[key]) and row[key] > 0, (row["method"], row["modality"], key, row[key])
        for key in NON_NEGATIVE:
            assert math.isfinite(row[key]) and row[key] >= 0, (row["method"], row["modality"], key, row[key])
        assert row["samples_per_s"] == pytest.approx(row["batch_size"] / (row["step_ms"] / 1e3))
        assert row["mfu"] == pytest.approx(row["achieved_tflops"] / row["peak_tflops"])
    simclr = [r for r in rows if r["method"] == "simclr"]
    assert all(r["views_per_step"] == 2 and r["views_ms"] > 0 for r in simclr)  # two views per step
    assert all(r["views_ms"] == 0 for r in rows if r["method"] != "simclr")
