"""Smoke tests of the discovery benchmarks (``--quick``): they run and write the tables they promise."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, out: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--out-dir", str(out),
                             *args], capture_output=True, text=True, cwd=ROOT / "benchmarks", timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_simulation_truth_quick(tmp_path):
    _run("simulation_truth.py", tmp_path)
    payload = json.loads((tmp_path / "simulation_truth-cpu-quick.json").read_text())
    rows = payload["rows"]
    assert {(r["design"], r["h2_true"]) for r in rows} == {(d, h) for d in ("polygenic", "oligogenic")
                                                           for h in (0.2, 0.5)}
    for row in rows:
        assert row["replicates"] == 3 and 0.0 <= row["ci_coverage"] <= 1.0
        assert 0.0 <= row["power_variant"] <= row["power_locus"] <= 1.0
    assert (tmp_path / "simulation_truth-cpu-quick.md").read_text().startswith("# Truth by simulation")


def test_gwas_vs_plink2_quick(tmp_path):
    if shutil.which("plink2") is None:
        pytest.skip("plink2 is not on PATH")
    _run("gwas_vs_plink2.py", tmp_path, "--no-hail")
    payload = json.loads((tmp_path / "gwas_vs_plink2-cpu-quick.json").read_text())
    assert payload["agreement"]["max_rel_diff_beta"] < 1e-4 and payload["agreement"]["n_na_plink2"] == 0
    assert [row["tool"].split()[0] for row in payload["rows"]] == ["biolatent", "plink2"]


@pytest.mark.slow
def test_genotype_image_chain_quick(tmp_path):
    """genotype -> heart phantom -> SimCLR -> discover runs, and the latents carry the cavity size."""
    _run("genotype_image_chain.py", tmp_path, "--work-dir", str(tmp_path / "work"))
    payload = json.loads((tmp_path / "genotype_image_chain-cpu-quick.json").read_text())
    rows = {row["parameter"]: row for row in payload["parameters"]}
    assert set(rows) == {"cavity_volume", "wall_thickness", "ejection_fraction", "twist"}
    assert rows["cavity_volume"]["ridge_r2_ssl"] > 0.5
    assert len(payload["latent_traits"]) == 8
    assert (tmp_path / "work" / "discover" / "report.html").is_file()
