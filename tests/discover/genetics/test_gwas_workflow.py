"""run_gwas: the run directory it writes (genotype reader replaced by a stub), and its one-line errors."""

from __future__ import annotations

import importlib
import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.gwas import linear_gwas
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes
from biolatent.workflows.gwas import run_gwas

RNG = np.random.default_rng(0)
N, M = 300, 60
DOSAGES = RNG.binomial(2, RNG.uniform(0.1, 0.5, M), (N, M)).astype(np.float32)
GENOTYPES = Genotypes(DOSAGES, [f"s{i}" for i in range(N)], pd.DataFrame({
    "chrom": np.repeat(["1", "2"], M // 2), "pos": np.tile(np.arange(1, M // 2 + 1) * 10_000, 2),
    "id": [f"rs{j}" for j in range(M)], "ref": "C", "alt": "T"}))


@pytest.fixture
def stub_reader(monkeypatch):
    name = "biolatent.io.genotypes"
    try:
        module = importlib.import_module(name)
    except ImportError:
        module = types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(module, "read_genotypes", lambda path, **_: GENOTYPES, raising=False)


def _write(tmp_path, frame: pd.DataFrame, name: str):
    path = tmp_path / name
    frame.rename_axis("id").to_csv(path, sep="\t")
    return path


def test_run_gwas_writes_run_directory(tmp_path, stub_reader):
    rng = np.random.default_rng(1)
    phen = pd.DataFrame({"hit": 1.0 * DOSAGES[:, 10] + rng.normal(size=N), "null trait": rng.normal(size=N)},
                        index=GENOTYPES.samples)
    cov = pd.DataFrame({"pc1": rng.normal(size=N)}, index=GENOTYPES.samples)
    lines: list[str] = []
    out = tmp_path / "run"
    path = run_gwas("geno", _write(tmp_path, phen, "phen.tsv"), _write(tmp_path, cov, "cov.tsv"), out,
                    say=lines.append)
    assert path == out / "gwas.tsv"
    table = pd.read_csv(path, sep="\t", dtype={"#CHROM": str})
    expected = linear_gwas(GENOTYPES, phen, cov)
    np.testing.assert_allclose(table.BETA, expected.BETA, rtol=1e-9)
    assert list(table.columns) == ["#CHROM", "POS", "ID", "REF", "ALT", "A1", "TRAIT", "OBS_CT", "BETA", "SE",
                                   "T_STAT", "P"]
    np.testing.assert_allclose(table.P, expected.P, rtol=1e-9)
    leads = pd.read_csv(out / "lead_variants.tsv", sep="\t")
    assert list(leads.ID) == ["rs10"] and list(leads.TRAIT) == ["hit"]
    metrics = json.loads((out / "metrics.json").read_text())["gwas"]
    assert metrics["n_samples"] == N and metrics["n_variants"] == M
    assert metrics["traits"]["hit"]["n_hits"] == int((expected[expected.TRAIT == "hit"].P < 5e-8).sum()) >= 1
    assert 0.5 < metrics["traits"]["null trait"]["lambda_gc"] < 2.0
    for name in ("manhattan_hit.png", "qq_hit.png", "manhattan_null_trait.png", "qq_null_trait.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert (out / "config.yaml").is_file()
    assert json.loads((out / "provenance.json").read_text())["command"] == "gwas"
    assert any("300 samples" in line for line in lines)


def test_run_gwas_id_mismatch_is_one_line_error(tmp_path, stub_reader):
    phen = pd.DataFrame({"y": np.arange(5.0)}, index=[f"other{i}" for i in range(5)])
    with pytest.raises(DataError, match="no sample ids in common") as info:
        run_gwas("geno", _write(tmp_path, phen, "phen.tsv"), None, tmp_path / "run")
    assert "\n" not in str(info.value)


def test_p_below_the_smallest_double_is_written_from_its_log():
    from biolatent.workflows.gwas import p_text

    text = p_text(np.array([0.5, 0.0, np.nan, 0.0]), np.array([-np.log10(0.5), 412.0 - np.log10(3.1), np.nan, 500.0]))
    assert list(text) == ["0.5", "3.1e-412", "NA", "1e-500"]


def test_run_gwas_with_qc_and_genetic_pcs_equals_the_steps_by_hand(tmp_path, stub_reader):
    from biolatent.discover.genetics.pcs import genetic_pcs
    from biolatent.discover.genetics.qc import QCConfig, run_qc

    rng = np.random.default_rng(2)
    phen = pd.DataFrame({"y": rng.normal(size=N)}, index=GENOTYPES.samples).iloc[:250]
    qc = QCConfig(min_maf=0.2)
    out = tmp_path / "run"
    path = run_gwas("geno", _write(tmp_path, phen, "phen.tsv"), None, out, qc=qc, n_pcs=3, say=lambda _: None)
    kept, report = run_qc(GENOTYPES, qc)
    assert report["variants_removed"]["maf"] > 0
    pcs = genetic_pcs(kept.subset(sample_index=np.arange(250)), 3)
    expected = linear_gwas(kept, phen, pcs)
    table = pd.read_csv(path, sep="\t")
    assert list(table.ID) == list(expected.ID) and len(table) == kept.n_variants
    np.testing.assert_allclose(table.BETA, expected.BETA, rtol=1e-9)
    np.testing.assert_allclose(table.P, expected.P, rtol=1e-8)
    metrics = json.loads((out / "metrics.json").read_text())["gwas"]
    assert metrics["qc_report"]["n_variants_after"] == kept.n_variants
    assert metrics["genetic_pcs"]["pc_names"] == ["PC1", "PC2", "PC3"] and metrics["n_samples"] == 250


@pytest.mark.parametrize("slice_rows", [2**19, 2])
def test_gwas_table_patches_only_the_underflowed_p_values(tmp_path, monkeypatch, slice_rows):
    """write_gwas_table: P below the smallest double from its log, the other P exact (shortest round trip);
    the same file whether written in one slice or several."""
    from biolatent.workflows import gwas as workflow

    monkeypatch.setattr(workflow, "WRITE_ROWS", slice_rows)
    p = np.array([0.123456789012345, 0.0, np.nan, 3e-300, 0.0])
    log10_p = np.array([-np.log10(p[0]), 412.0 - np.log10(3.1), np.nan, -np.log10(3e-300), 500.0])
    table = pd.DataFrame({"#CHROM": ["1"] * 5, "POS": [1, 2, 3, 4, 5], "ID": list("abcde"), "REF": ["A"] * 5,
                          "ALT": ["G"] * 5, "A1": ["G"] * 5, "TRAIT": pd.Categorical(["y"] * 5), "OBS_CT": [9] * 5,
                          "BETA": [0.1, 2.0, np.nan, 1.5, 3.0], "SE": [0.2, 0.01, np.nan, 0.01, 0.01],
                          "T_STAT": [0.5, 200.0, np.nan, 150.0, 300.0], "P": p, "LOG10_P": log10_p})
    workflow.write_gwas_table(table, tmp_path / "gwas.tsv")
    lines = (tmp_path / "gwas.tsv").read_text().splitlines()
    assert lines[0].split("\t") == workflow.GWAS_FILE_COLUMNS and len(lines) == 6
    assert [line.split("\t")[-1] for line in lines[1:]] == ["0.123456789012345", "3.1e-412", "NA", "3e-300",
                                                            "1e-500"]
    assert [line.split("\t")[2] for line in lines[1:]] == list("abcde")
