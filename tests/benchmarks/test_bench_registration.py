"""Smoke test of ``benchmarks/registration.py --quick``: both learned models, identity and demons, intra- and
inter-modal, in the result table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_reports_every_method_and_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "registration.py"), "--quick", "--work", str(tmp_path / "work"),
         "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "out" / "registration-cpu-quick.json").read_text())
    methods = {(row["setting"].split()[0], row["method"]) for row in payload["rows"]}
    assert {("intra-modal", "voxelmorph"), ("intra-modal", "micdir"), ("intra-modal", "identity"),
            ("intra-modal", "demons"), ("inter-modal", "voxelmorph (local MI)"), ("inter-modal", "identity")} <= methods
    for row in payload["rows"]:
        assert 0 <= row["dice"] <= 1 and row["dice_ci_low"] <= row["dice"] <= row["dice_ci_high"]
        assert row["seconds_per_pair"] > 0
    assert "| setting |" in (tmp_path / "out" / "registration-cpu-quick.md").read_text()
