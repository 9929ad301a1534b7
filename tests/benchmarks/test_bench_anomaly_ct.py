"""Smoke test of ``benchmarks/anomaly_ct.py --quick``: the diffusion detector and the supervised detector are both
scored on the same test chests, with the same epochs, bootstrap intervals around their AUROC, and the paper's
numbers beside them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_compares_diffusion_and_supervised_detectors(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "anomaly_ct.py"), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "anomaly_ct-cpu-quick.json").read_text())
    rows = {row["detector"]: row for row in payload["rows"]}
    assert set(rows) == {"ddpm", "supervised"}
    assert rows["ddpm"]["epochs"] == rows["supervised"]["epochs"] == payload["arguments"]["epochs"]  # same budget
    assert (rows["ddpm"]["paper_auroc"], rows["supervised"]["paper_auroc"]) == (0.93, 0.94)
    for row in rows.values():
        assert 0.0 <= row["auroc_ci_low"] <= row["auroc_ci_high"] <= 1.0 and 0.0 <= row["sample_auroc"] <= 1.0
    test = payload["test"]
    assert 0 < test["with_nodules"] < test["n"] == payload["arguments"]["test"] == len(payload["scores"]["id"])
    difference = payload["difference"]
    assert -1.0 <= difference["ci_low"] <= difference["ci_high"] <= 1.0
    assert abs(difference["auroc"] - (rows["ddpm"]["sample_auroc"] - rows["supervised"]["sample_auroc"])) < 1e-12
    markdown = (tmp_path / "anomaly_ct-cpu-quick.md").read_text()
    assert "| detector | sample_auroc |" in markdown and "Paired difference ddpm - supervised" in markdown
