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


@pytest.mark.slow
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


@pytest.mark.slow
def test_gwas_end_to_end_quick(tmp_path):
    """The gwas command and plink2 --glm as processes, with and without missing calls: both cases, three tools,
    biolatent's stage seconds, and agreement at plink2's printed precision."""
    if shutil.which("plink2") is None:
        pytest.skip("plink2 is not on PATH")
    _run("gwas_end_to_end.py", tmp_path)
    payload = json.loads((tmp_path / "gwas_end_to_end-cpu-quick.json").read_text())
    assert [(r["people"], r["missing calls"], r["tool"].split(" (")[0]) for r in payload["rows"]] == [
        (1000, m, t) for m in ("0", "0.01") for t in ("plink2 --glm", "biolatent gwas", "biolatent gwas --no-plots")
    ] + [(4000, "0", t) for t in ("plink2 --glm", "biolatent gwas")]
    details = payload["details"]
    assert list(details) == ["missing 0", "missing 0.01", "4,000 people"]
    for name, case in details.items():
        variants = 5000 if name.startswith("missing") else 1000 * 5000 // 4000  # the same number of genotypes
        assert case["agreement"]["n_compared"] == 8 * variants and case["agreement"]["max_rel_diff_beta"] < 1e-5
        assert case["stages"]["biolatent gwas"]["plots"] > 0.0
    assert details["missing 0"]["stages"]["biolatent gwas --no-plots"]["plots"] == 0.0


@pytest.mark.slow
def test_gwas_vs_plink2_quick(tmp_path):
    if shutil.which("plink2") is None:
        pytest.skip("plink2 is not on PATH")
    _run("gwas_vs_plink2.py", tmp_path, "--no-hail")
    payload = json.loads((tmp_path / "gwas_vs_plink2-cpu-quick.json").read_text())
    assert payload["agreement"]["max_rel_diff_beta"] < 1e-4 and payload["agreement"]["n_na_plink2"] == 0
    assert [row["tool"].split()[0] for row in payload["rows"]] == ["biolatent", "plink2"]


@pytest.mark.slow
def test_genotype_image_chain_quick(tmp_path):
    """genotype -> heart cines -> SimCLR / ContIG / random-init / supervised -> h2 and GWAS of every arm, per
    replicate cohort, and the table of paired differences against the review's claim."""
    _run("genotype_image_chain.py", tmp_path, "--work-dir", str(tmp_path / "work"))
    payload = json.loads((tmp_path / "genotype_image_chain-cpu-quick.json").read_text())
    rows = payload["per_replicate"]
    assert {(r["arm"], r["replicate"]) for r in rows} == {(a, k) for a in ("truth", "simclr", "contig", "random_init",
                                                                           "supervised") for k in (0, 1)}
    assert {r["parameter"] for r in rows} == {"cavity_volume", "wall_thickness", "ejection_fraction", "twist"}
    for row in rows:
        assert 0.0 <= row["h2"] <= 1.0 and -1.0 <= row["r_truth"] <= 1.0 and row["n_held_out"] == 48
        assert 0 <= row["leads_at_causal"] <= row["n_leads"]
    pairing = json.loads((tmp_path / "work" / "quick" / "rep0" / "contig" / "metrics.json").read_text())
    assert pairing["pretrain"]["pairing"]["n_paired"] == 60  # every cine paired with its person's genotypes
    assert "Paired differences over the replicates" in (tmp_path / "genotype_image_chain-cpu-quick.md").read_text()
    clusters = payload["clusters"]  # every label-free arm's clusters against the five polygenic scores
    assert {(r["arm"], r["score"], r["replicate"]) for r in clusters} == {
        (a, s, k) for a in ("truth", "simclr", "contig", "random_init") for k in (0, 1)
        for s in ("pgs_cavity_volume", "pgs_wall_thickness", "pgs_ejection_fraction", "pgs_twist", "pgs_null")}
    assert all(0.0 <= r["p"] <= r["q"] <= 1.0 and r["n_clusters"] >= 2 for r in clusters)
