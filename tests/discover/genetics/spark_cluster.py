"""A Spark standalone cluster on this machine for the tests: one master and N workers on 127.0.0.1, started with
the ``spark-class`` of the Hail environment's pyspark (the same Spark and the same file system as the driver, so
Hail's jar reaches the executors by its absolute path), each a process group of its own, stopped even on failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SparkCluster:
    """A running cluster: ``url`` (spark://...) for ``hl.init(master=...)`` and the master's JSON web UI."""

    url: str
    webui: str
    log_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    start_seconds: float = 0.0

    def state(self) -> dict:
        """The master's ``/json/`` page: workers (with their web UI addresses), active and completed apps."""
        with urllib.request.urlopen(f"{self.webui}/json/", timeout=5) as response:
            return json.load(response)

    def worker_state(self, worker: dict) -> dict:
        """One worker's ``/json/`` page: its running and finished executors (with their application ids)."""
        with urllib.request.urlopen(f"{worker['webuiaddress']}/json/", timeout=5) as response:
            return json.load(response)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.log_dir.glob("*.log")))


def spark_home(hail_python: str) -> Path | None:
    """The pyspark folder of the Hail environment (``bin/spark-class`` inside), or None."""
    proc = subprocess.run([hail_python, "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
                          capture_output=True, text=True, timeout=120, check=False)
    home = Path(proc.stdout.strip()) if proc.returncode == 0 else None
    return home if home is not None and (home / "bin" / "spark-class").is_file() else None


def spark_submit_command(home: Path, hail_python: str, master: str, script: Path, args: list[str],
                         driver_memory: str = "2g") -> tuple[list[str], dict[str, str]]:
    """(command, environment) of the README's ``spark-submit`` of a ``hail_scripts`` script: Hail's jar on the
    driver and executor class paths, Kryo with Hail's registrator, ``spark_session.py`` shipped beside it."""
    proc = subprocess.run([hail_python, "-c", "import hail, os; print(os.path.dirname(hail.__file__))"],
                          capture_output=True, text=True, timeout=120, check=True)
    jar = Path(proc.stdout.strip()) / "backend" / "hail-all-spark.jar"
    command = [str(home / "bin" / "spark-submit"), "--master", master, "--driver-memory", driver_memory,
               "--jars", str(jar), "--conf", f"spark.driver.extraClassPath={jar}",
               "--conf", "spark.executor.extraClassPath=./hail-all-spark.jar",
               "--conf", "spark.serializer=org.apache.spark.serializer.KryoSerializer",
               "--conf", "spark.kryo.registrator=is.hail.kryo.HailKryoRegistrator",
               "--py-files", str(script.with_name("spark_session.py")), str(script), *args]
    env = {**os.environ, "PYSPARK_PYTHON": hail_python, "PYSPARK_DRIVER_PYTHON": hail_python}
    env.pop("BIOLATENT_HAIL_MASTER", None)
    return command, env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(home: Path, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("w") as handle:
        return subprocess.Popen(["nice", "-n", "10", str(home / "bin" / "spark-class"), *args], stdout=handle,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each process group (the JVM and any executor it launched), then SIGKILL what is left."""
    for proc in reversed(processes):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in reversed(processes):
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # executors the worker launched live in its group too
        proc.wait(timeout=10)


@contextmanager
def standalone_cluster(home: Path, work_dir: Path, *, workers: int = 2, cores: int = 1, memory: str = "1g",
                       timeout: float = 120.0) -> Iterator[SparkCluster]:
    """Start a master and ``workers`` workers (``cores`` and ``memory`` each), wait until every worker is ALIVE
    on the master, yield the cluster, stop every process group on exit (also when the start fails)."""
    started = time.monotonic()
    work_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DAEMON_MEMORY": "256m",
           "SPARK_LOG_DIR": str(work_dir), "SPARK_NO_DAEMONIZE": "1"}
    env.pop("SPARK_CONF_DIR", None)
    port, webui_port = _free_port(), _free_port()
    cluster = SparkCluster(url=f"spark://127.0.0.1:{port}", webui=f"http://127.0.0.1:{webui_port}", log_dir=work_dir)
    try:
        cluster.processes.append(_start(home, ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                               "--port", str(port), "--webui-port", str(webui_port)],
                                        work_dir / "master.log", env))
        for i in range(workers):
            folder = work_dir / f"worker{i}"
            folder.mkdir(exist_ok=True)
            cluster.processes.append(_start(home, [
                "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--webui-port", str(_free_port()),
                "--cores", str(cores), "--memory", memory, "--work-dir", str(folder), cluster.url],
                work_dir / f"worker{i}.log", env))
        deadline = time.monotonic() + timeout
        while True:
            dead = [p.args for p in cluster.processes if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a Spark process exited during start: {dead}\n{cluster.logs()}")
            try:
                state = cluster.state()
            except OSError:  # the master's web UI is not up yet
                state = {}
            alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
            if state.get("status") == "ALIVE" and len(alive) == workers:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(alive)} of {workers} Spark workers registered within {timeout:.0f} s\n"
                                   f"{cluster.logs()}")
            time.sleep(0.5)
        cluster.start_seconds = time.monotonic() - started
        yield cluster
    finally:
        _stop(cluster.processes)
