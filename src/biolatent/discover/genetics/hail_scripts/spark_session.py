"""Start Hail on the Spark master the caller chose (imported by the scripts beside it; standard library + hail).

Master: the ``master`` argument, else ``$BIOLATENT_HAIL_MASTER``, else the master that ``spark-submit`` (or
``hailctl dataproc submit``) set when the script runs under one (``$PYSPARK_GATEWAY_PORT``), else ``local[2]``.
On a cluster master (``spark://``, ``yarn``, ``k8s://``) the script waits at most
``$BIOLATENT_HAIL_EXECUTOR_WAIT`` seconds (default 120) for a first executor and stops with one line otherwise:
Spark itself would wait for free workers for ever. Hail puts its own jar on ``spark.jars`` and the executors'
class path (``hail.backend.spark_backend``), which is all a standalone cluster started from the same
installation needs; other Spark settings come from ``$SPARK_CONF_DIR/spark-defaults.conf`` as for any Spark job.
"""

import os
import sys
import time

DEFAULT_MASTER = "local[2]"


def choose_master(master):
    """The master to ask for, or None to keep the one of ``spark-submit``."""
    if master:
        return master
    if os.environ.get("BIOLATENT_HAIL_MASTER"):
        return os.environ["BIOLATENT_HAIL_MASTER"]
    return None if os.environ.get("PYSPARK_GATEWAY_PORT") else DEFAULT_MASTER


def _executors(sc):
    """Executors registered with the driver (the driver itself not counted)."""
    return max(0, sc._jsc.sc().getExecutorMemoryStatus().size() - 1)


def executor_count(hl):
    """Executors of this application now (0 in local mode): the report's count once the job has run."""
    return _executors(hl.spark_context())


def init_hail(hl, master=None):
    """``hl.init`` on the chosen master; returns {"master", "application_id", "executors"} for the report
    (executors: those registered when the first one arrived; ``executor_count`` after the job)."""
    conf = {"spark.driver.memory": os.environ.get("BIOLATENT_HAIL_MEMORY", "8g")}
    tmp_dir = os.environ.get("BIOLATENT_HAIL_TMP_DIR")
    hl.init(master=choose_master(master), quiet=True, log="/dev/null", idempotent=True, spark_conf=conf,
            **({"tmp_dir": tmp_dir} if tmp_dir else {}))
    sc = hl.spark_context()
    executors = 0
    if not sc.master.startswith("local"):
        wait = float(os.environ.get("BIOLATENT_HAIL_EXECUTOR_WAIT", "120"))
        deadline = time.monotonic() + wait
        while (executors := _executors(sc)) == 0:
            if time.monotonic() > deadline:
                hl.stop()
                sys.exit(f"SparkError: no executor joined {sc.master} within {wait:.0f} s: no worker with free "
                         f"cores and memory (spark.executor.memory) for this application")
            time.sleep(0.5)
    return {"master": sc.master, "application_id": sc.applicationId, "executors": executors}
