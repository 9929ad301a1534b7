"""``run_h2``: id matching, output files, and one-line errors (genotype reader replaced by a stub)."""

from __future__ import annotations

import importlib
import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.grm import genetic_relationship_matrix
from biolatent.discover.genetics.heritability import greml
from biolatent.discover.genetics.simulate import simulate_genotypes, simulate_traits
from biolatent.errors import DataError
from biolatent.workflows.h2 import run_h2

GENOTYPES = simulate_genotypes(120, sequence_length=500_000, seed=11)


@pytest.fixture
def stub_reader(monkeypatch):
    name = "biolatent.io.genotypes"
    try:
        module = importlib.import_module(name)
    except ImportError:
        module = types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(module, "read_genotypes", lambda path: GENOTYPES, raising=False)


def _write(tmp_path, phen: pd.DataFrame, name: str = "phen.tsv"):
    path = tmp_path / name
    phen.rename_axis("id").to_csv(path, sep="\t")
    return path


def test_run_h2_writes_run_directory(tmp_path, stub_reader):
    phen, _ = simulate_traits(GENOTYPES, [0.5, 0.2], n_causal=20, n_traits=2, seed=1)
    phen = phen.iloc[::-1].iloc[10:]  # other order, 10 samples without phenotypes
    phen.loc["not_genotyped"] = [1.0, 2.0]
    cov = pd.DataFrame({"age": np.arange(len(phen), dtype=float)}, index=phen.index)
    lines: list[str] = []
    path = run_h2("geno", _write(tmp_path, phen), _write(tmp_path, cov, "cov.tsv"), tmp_path / "run",
                  method="greml", say=lines.append)
    table = pd.read_csv(path, sep="\t")
    assert list(table.columns) == ["trait", "h2", "se", "method", "n", "ci_low", "ci_high"]
    assert table["trait"].tolist() == ["trait_1", "trait_2"] and table["n"].tolist() == [110, 110]
    # the same numbers as a direct call on the matched samples (genotype order)
    keep = [i for i, s in enumerate(GENOTYPES.samples) if s in phen.index]
    k, _ = genetic_relationship_matrix(GENOTYPES.subset(sample_index=np.array(keep)))
    ids = [GENOTYPES.samples[i] for i in keep]
    direct = greml(phen.loc[ids, "trait_1"].to_numpy(), k, cov.loc[ids].to_numpy())
    assert table["h2"].iloc[0] == pytest.approx(direct["h2"], abs=1e-6)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())["h2"]
    assert metrics["n_samples"] == 110 and set(metrics["traits"]) == {"trait_1", "trait_2"}
    assert json.loads((run / "provenance.json").read_text())["command"] == "h2"
    assert "method: greml" in (run / "config.yaml").read_text()
    assert any("trait_1" in line for line in lines)


def test_run_h2_errors(tmp_path, stub_reader):
    phen, _ = simulate_traits(GENOTYPES, 0.5, n_causal=10, seed=2)
    with pytest.raises(DataError, match="no sample id in common"):
        run_h2("geno", _write(tmp_path, phen.set_axis([f"x{i}" for i in range(120)])), None, tmp_path / "a")
    with pytest.raises(DataError, match="'flat'"):
        run_h2("geno", _write(tmp_path, phen.assign(flat=3.0)), None, tmp_path / "b")
    with pytest.raises(DataError, match="unknown heritability method"):
        run_h2("geno", _write(tmp_path, phen), None, tmp_path / "c", method="ldsc")
    assert not (tmp_path / "a").exists()


def test_run_h2_low_rank_path_equals_full_greml(tmp_path, monkeypatch):
    """Fewer variants (60) than samples (120): run_h2 takes GREML's low-rank path; same h2 and SE as eigh(K)."""
    few = GENOTYPES.subset(variant_index=np.arange(0, 540, 9))
    name = "biolatent.io.genotypes"
    try:
        module = importlib.import_module(name)
    except ImportError:
        module = types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(module, "read_genotypes", lambda path: few, raising=False)
    import biolatent.discover.genetics.grm as grm_module

    def no_grm(*args, **kwargs):
        raise AssertionError("the n x n GRM was formed")

    monkeypatch.setattr(grm_module, "genetic_relationship_matrix", no_grm)
    phen, _ = simulate_traits(few, 0.5, n_causal=10, seed=3)
    table = pd.read_csv(run_h2("geno", _write(tmp_path, phen), None, tmp_path / "run", say=lambda _: None),
                        sep="\t")
    monkeypatch.undo()
    k, used = genetic_relationship_matrix(few)
    assert used < 120
    direct = greml(phen.loc[list(few.samples), "trait_1"].to_numpy(), k)
    assert direct["path"] == "full"
    assert table["h2"].iloc[0] == pytest.approx(direct["h2"], abs=1e-6)
    assert table["se"].iloc[0] == pytest.approx(direct["se"], rel=1e-5)


def test_discover_heritability_low_rank_equals_full():
    """``discover``'s h2 step with fewer variants than samples: the low-rank GREML equals h2_table on K alone."""
    from biolatent.discover.genetics.heritability import h2_table
    from biolatent.workflows.discover import DiscoverSettings, _heritability

    few = GENOTYPES.subset(variant_index=np.arange(0, 540, 9))
    phen, _ = simulate_traits(few, [0.5, 0.3], n_causal=10, n_traits=2, seed=4)
    table, rg, used = _heritability(phen, few, None, DiscoverSettings(), lambda _: None)
    k, _ = genetic_relationship_matrix(few)
    full = h2_table(phen, k, [str(s) for s in few.samples], None, "greml")
    assert used < 120 and len(rg) == 1
    np.testing.assert_allclose(table["h2"], full["h2"], atol=1e-6)
    np.testing.assert_allclose(table["se"], full["se"], rtol=1e-5)
