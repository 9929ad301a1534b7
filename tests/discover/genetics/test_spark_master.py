"""--spark-master of the hail engine: a malformed or unreachable master is one line within seconds, before
anything is written (no Hail, no Java needed: the check runs before the engine starts)."""

from __future__ import annotations

import socket
import time

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.hail_engine import check_master
from biolatent.errors import BiolatentError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.fixture
def gwas_inputs(tmp_path):
    from bed_reader import to_bed

    rng = np.random.default_rng(0)
    n, m = 20, 5
    ids = [f"s{i}" for i in range(n)]
    to_bed(str(tmp_path / "g.bed"), rng.integers(0, 3, size=(n, m)).astype(np.float32), properties={
        "iid": ids, "fid": ids, "sid": [f"rs{j}" for j in range(m)], "chromosome": ["1"] * m,
        "bp_position": np.arange(1, m + 1) * 100, "allele_1": ["A"] * m, "allele_2": ["G"] * m})
    pheno = tmp_path / "pheno.tsv"
    pd.DataFrame({"id": ids, "y": rng.normal(size=n)}).to_csv(pheno, sep="\t", index=False)
    return tmp_path / "g", pheno


def test_check_master_accepts_the_usual_urls_and_refuses_others(monkeypatch):
    monkeypatch.delenv("BIOLATENT_HAIL_MASTER", raising=False)
    for master in (None, "local", "local[2]", "local[*]", "yarn", "k8s://https://host:443"):
        assert check_master(master) == master
    for bad in ("spark//host:7077", "local[two]", "spark://host", "http://127.0.0.1:8080"):
        with pytest.raises(BiolatentError, match="--spark-master"):
            check_master(bad)


def test_unreachable_master_is_one_line_and_writes_nothing(run_cli, gwas_inputs, tmp_path):
    prefix, pheno = gwas_inputs
    out = tmp_path / "out"
    master = f"spark://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    result = run_cli("gwas", "--genotypes", prefix, "--phenotypes", pheno, "--out", out, "--engine", "hail",
                     "--spark-master", master, "--no-plots")
    result.expect_error(f"Spark master {master} is not reachable", "--spark-master")
    assert time.monotonic() - started < 15
    assert not out.exists()


def test_spark_master_needs_the_hail_engine(run_cli, gwas_inputs, tmp_path):
    prefix, pheno = gwas_inputs
    result = run_cli("gwas", "--genotypes", prefix, "--phenotypes", pheno, "--out", tmp_path / "out",
                     "--spark-master", "local[2]")
    result.expect_error("--spark-master applies to --engine hail only")
    assert not (tmp_path / "out").exists()


def test_an_unreachable_master_from_the_environment_is_refused_too(run_cli, gwas_inputs, tmp_path, monkeypatch):
    prefix, pheno = gwas_inputs
    master = f"spark://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("BIOLATENT_HAIL_MASTER", master)
    result = run_cli("gwas", "--genotypes", prefix, "--phenotypes", pheno, "--out", tmp_path / "out", "--engine",
                     "hail", "--no-plots")
    result.expect_error(f"Spark master {master} is not reachable", "$BIOLATENT_HAIL_MASTER")
    assert not (tmp_path / "out").exists()
