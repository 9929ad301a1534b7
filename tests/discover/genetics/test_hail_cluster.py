"""The Hail engine on a Spark standalone cluster (a master and two workers of one core on this machine), not
only in local mode: the README's ``spark-submit`` of the GWAS script agrees with OLS, biolatent's engine with
``--spark-master`` agrees with the numpy engine, and each job ran on both workers (the master lists the finished
application, each worker a finished executor of it)."""

from __future__ import annotations

import json
import subprocess
import time

import pandas as pd
import pytest
from hail_checks import assert_engines_agree, assert_equals_ols, write_toy_plink
from spark_cluster import SparkCluster, spark_home, spark_submit_command, standalone_cluster

from biolatent.discover.genetics.hail_engine import GWAS_COLUMNS, find_hail_python, hail_available

pytestmark = pytest.mark.slow


def _spark_home():
    """The Hail environment's pyspark folder; skips (with the reason) where Hail, Java or spark-class is missing."""
    reason = hail_available()
    if reason:
        pytest.skip(reason)
    home = spark_home(find_hail_python() or "")
    if home is None:
        pytest.skip("the Hail environment's pyspark has no bin/spark-class to start a standalone cluster")
    return home


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = _spark_home()
    with standalone_cluster(home, tmp_path_factory.mktemp("spark"), workers=2, cores=1, memory="1g") as running:
        print(f"standalone cluster {running.url}: 2 workers registered in {running.start_seconds:.1f} s")
        yield running


def _ran_on_both_workers(cluster: SparkCluster, application_id: str) -> None:
    """The master lists the application as finished; every worker ran (and finished) an executor of it."""
    deadline = time.monotonic() + 30  # the master marks an application finished after its driver stops
    while True:
        state = cluster.state()
        finished = {app["id"]: app for app in state["completedapps"]}
        if application_id in finished or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert application_id in finished, state
    assert finished[application_id]["state"] == "FINISHED"
    workers = state["workers"]
    assert len(workers) == 2
    for worker in workers:
        executors = cluster.worker_state(worker)["finishedexecutors"]
        assert any(e["appid"] == application_id for e in executors), (worker["id"], executors)


def test_spark_submit_of_the_gwas_script_on_two_workers_equals_ols(cluster, tmp_path):
    from biolatent.discover.genetics.hail_engine import _SCRIPT, write_hail_table

    toy = write_toy_plink(tmp_path)
    write_hail_table(toy.phenotypes, tmp_path / "pheno.tsv")
    write_hail_table(toy.covariates, tmp_path / "covar.tsv")
    hail_python = find_hail_python() or ""
    command, env = spark_submit_command(spark_home(hail_python), hail_python, cluster.url, _SCRIPT, [
        "--bfile", str(toy.prefix), "--pheno", str(tmp_path / "pheno.tsv"), "--covar", str(tmp_path / "covar.tsv"),
        "--out", str(tmp_path / "gwas.tsv"), "--report", str(tmp_path / "report.json")])
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    print(f"spark-submit of the GWAS script on the cluster: {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "gwas.tsv", sep="\t", dtype={"#CHROM": str, "ID": str, "TRAIT": str})
    assert_equals_ols(table, toy, columns=GWAS_COLUMNS)
    spark = json.loads((tmp_path / "report.json").read_text())["spark"]
    assert spark["master"] == cluster.url and spark["executors"] == 2  # the master of spark-submit, kept
    _ran_on_both_workers(cluster, spark["application_id"])


def test_engines_agree_on_the_cluster(cluster, tmp_path):
    info = assert_engines_agree(tmp_path, spark_master=cluster.url)
    assert info["spark"]["master"] == cluster.url and info["spark"]["executors"] == 2
    _ran_on_both_workers(cluster, info["spark"]["application_id"])


def test_a_master_without_free_workers_is_one_line_not_a_hang(tmp_path, monkeypatch):
    """Spark waits for ever for resources; the engine gives up after $BIOLATENT_HAIL_EXECUTOR_WAIT seconds."""
    from biolatent.discover.genetics.hail_engine import hail_gwas
    from biolatent.errors import BiolatentError

    home = _spark_home()
    toy = write_toy_plink(tmp_path)
    monkeypatch.setenv("BIOLATENT_HAIL_EXECUTOR_WAIT", "3")
    with standalone_cluster(home, tmp_path / "spark", workers=0) as empty:
        started = time.monotonic()
        with pytest.raises(BiolatentError, match=f"no executor joined {empty.url} within 3 s"):
            hail_gwas(toy.prefix, toy.phenotypes, toy.covariates, master=empty.url, timeout=300)
        assert time.monotonic() - started < 120
