"""The Hail engine on a Spark standalone cluster (a master and two workers of one core on this machine), not
only in local mode: the same agreement with OLS and with the numpy engine, and the proof that the job ran on
both workers (the master lists the finished application, each worker a finished executor of it)."""

from __future__ import annotations

import time

import pytest
from hail_checks import assert_engines_agree, assert_equals_ols, write_toy_plink
from spark_cluster import SparkCluster, spark_home, standalone_cluster

from biolatent.discover.genetics.hail_engine import find_hail_python, hail_available, hail_gwas

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = hail_available()
    if reason:
        pytest.skip(reason)
    home = spark_home(find_hail_python() or "")
    if home is None:
        pytest.skip("the Hail environment's pyspark has no bin/spark-class to start a standalone cluster")
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


def test_hail_engine_on_two_workers_equals_ols(cluster, tmp_path):
    toy = write_toy_plink(tmp_path)
    started = time.monotonic()
    table = hail_gwas(toy.prefix, toy.phenotypes, toy.covariates, master=cluster.url, timeout=600)
    print(f"hail GWAS on the cluster: {time.monotonic() - started:.1f} s")
    assert_equals_ols(table, toy)
    spark = table.attrs["report"]["spark"]
    assert spark["master"] == cluster.url and spark["executors"] >= 1  # at start; both are checked below
    _ran_on_both_workers(cluster, spark["application_id"])


def test_engines_agree_on_the_cluster(cluster, tmp_path):
    info = assert_engines_agree(tmp_path, spark_master=cluster.url)
    assert info["spark"]["master"] == cluster.url
    _ran_on_both_workers(cluster, info["spark"]["application_id"])
