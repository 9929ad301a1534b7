"""``benchmarks/results_doc.py``: the committed docs/results.md equals what the stored outputs give, regenerating
replaces only the marked blocks (outside text byte for byte), a stale block fails ``--check``, and a missing
stored output is a one-line error that leaves the doc untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "results_doc.py"

STORED_MD = """# Stored run (CPU)

Intro line.

| a | b |
|---|---|
| 1 | 2 |

## Detail

| c |
|---|
| 3 |
"""
STORED_JSON = {"rows": [{"design": "polygenic", "h2_true": 0.2, "greml_mean": 0.19579, "greml_sd": 0.0314,
                         "greml_mean_se": 0.0369, "ci_coverage": 0.95, "he_mean": 0.196, "power_variant": 0.008,
                         "power_locus": 0.0313, "lead_fdr": 0.037}]}

# prose with trailing spaces, a tab and no final newline: kept byte for byte
PROSE_TOP = "# Results\n\nA note  with trailing spaces  \n\tand a tab.\n\n"
PROSE_MID = "\nVerdict between blocks: holds.\n\n"
PROSE_END = "\nClosing note, no final newline."


def _doc(whole: str, table: str, rows: str) -> str:
    return (PROSE_TOP
            + "<!-- generated from results/run.md: do not edit -->\n" + whole + "<!-- end generated -->\n"
            + PROSE_MID
            + "<!-- generated from results/run.md, table 2: do not edit -->\n" + table + "<!-- end generated -->\n"
            + PROSE_MID
            + "<!-- generated from results/sim.json, table simulation_truth: do not edit -->\n" + rows
            + "<!-- end generated -->\n" + PROSE_END)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, check=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.md").write_text(STORED_MD, encoding="utf-8")
    (tmp_path / "results" / "sim.json").write_text(json.dumps(STORED_JSON), encoding="utf-8")
    (tmp_path / "doc.md").write_text(_doc("stale\n", "| old |\n", "typed by hand\n"), encoding="utf-8")
    return tmp_path


def test_committed_doc_is_up_to_date() -> None:
    result = _run("--check")
    assert result.returncode == 0, result.stderr
    doc = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    # the sections the issue names are generated, not typed
    for source in ("genotype_image_chain-cpu.md", "spatial_expression-cpu.md"):
        assert f"<!-- generated from benchmarks/results/{source}: do not edit -->" in doc


def test_regenerate_replaces_blocks_and_keeps_outside_text(workspace: Path) -> None:
    doc = workspace / "doc.md"
    result = _run("--doc", str(doc), "--root", str(workspace))
    assert result.returncode == 0, result.stderr
    whole = ("\n## Stored run (CPU)\n\nIntro line.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n### Detail\n\n| c |\n"
             "|---|\n| 3 |\n\n")
    rows = ("\n| design | true h2 | mean GREML | SD | mean SE | 95% CI coverage | mean HE | power (variant) "
            "| power (locus) | lead FDR |\n|---|---|---|---|---|---|---|---|---|---|\n"
            "| polygenic | 0.2 | 0.196 | 0.031 | 0.037 | 0.95 | 0.196 | 0.008 | 0.031 | 0.037 |\n\n")
    assert doc.read_bytes() == _doc(whole, "\n| c |\n|---|\n| 3 |\n\n", rows).encode()
    assert _run("--check", "--doc", str(doc), "--root", str(workspace)).returncode == 0
    # a second run changes nothing
    before = doc.read_bytes()
    assert _run("--doc", str(doc), "--root", str(workspace)).returncode == 0
    assert doc.read_bytes() == before


def test_stale_block_fails_check_and_names_it(workspace: Path) -> None:
    doc = workspace / "doc.md"
    assert _run("--doc", str(doc), "--root", str(workspace)).returncode == 0
    (workspace / "results" / "run.md").write_text(STORED_MD.replace("| 3 |", "| 4 |"), encoding="utf-8")
    before = doc.read_bytes()
    result = _run("--check", "--doc", str(doc), "--root", str(workspace))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "results/run.md'" in lines[0], result.stderr  # the first stale block: the whole file
    assert doc.read_bytes() == before  # --check writes nothing


def test_missing_stored_output_is_one_line_and_doc_untouched(workspace: Path) -> None:
    doc = workspace / "doc.md"
    (workspace / "results" / "sim.json").unlink()
    before = doc.read_bytes()
    result = _run("--doc", str(doc), "--root", str(workspace))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sim.json" in lines[0] and "Traceback" not in result.stderr
    assert doc.read_bytes() == before
    assert sorted(p.name for p in workspace.iterdir()) == ["doc.md", "results"]  # no temporary file left


@pytest.mark.parametrize("bad", ["<!-- generated from results/run.md: do not edit -->\nno end\n",
                                 "text\n<!-- end generated -->\n",
                                 "<!-- generated from results/run.md, table 9: do not edit -->\n"
                                 "<!-- end generated -->\n",
                                 "<!-- generated from results/run.md, table nope: do not edit -->\n"
                                 "<!-- end generated -->\n"])
def test_bad_markers_are_one_line_errors(tmp_path: Path, workspace: Path, bad: str) -> None:
    doc = workspace / "doc.md"
    doc.write_text(bad, encoding="utf-8")
    result = _run("--doc", str(doc), "--root", str(workspace))
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert doc.read_text(encoding="utf-8") == bad
