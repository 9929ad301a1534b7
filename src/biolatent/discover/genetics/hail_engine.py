"""The Hail (Spark) engine for GWAS: the same linear regression as the numpy engine, for cohorts beyond one
machine. Hail pins old versions of rich and typer, so it lives in an environment of its own
(``make hail-env`` builds ``.venv-hail``); biolatent talks to it through a subprocess and plain files.

Spark: ``master`` (``--spark-master``), else ``$BIOLATENT_HAIL_MASTER``, else ``local[2]``; a ``spark://`` master
is checked for a listening socket before Hail starts (``check_master``), so an unreachable cluster is one line
within seconds, not a hang. Tested against a two-worker standalone cluster on this machine
(``tests/discover/genetics/test_hail_cluster.py``).

Hail's ``linear_regression_rows`` mean-imputes missing genotype calls, where plink2 and the numpy engine drop
those samples for that variant: the engines agree exactly on variants without missing calls.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.discover.genetics.qc import QCConfig
from biolatent.errors import BiolatentError, DataError

_SCRIPT = Path(__file__).with_name("hail_scripts") / "linear_regression.py"
_MASTER = re.compile(r"^(local(\[(\d+|\*)(,\d+)?\])?|spark://[^/\s]+|yarn|k8s://\S+|mesos://\S+)$")
GWAS_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "A1", "TRAIT", "OBS_CT", "BETA", "SE", "T_STAT", "P"]


def find_hail_python() -> str | None:
    """``$BIOLATENT_HAIL_PYTHON``, else ``.venv-hail`` of this checkout, else this Python if it has hail."""
    explicit = os.environ.get("BIOLATENT_HAIL_PYTHON")
    if explicit:
        return explicit
    checkout = Path(__file__).resolve().parents[4] / ".venv-hail" / "bin" / "python"
    if checkout.is_file():
        return str(checkout)
    try:
        import hail  # noqa: F401

        return sys.executable
    except ImportError:
        return None


def hail_available() -> str | None:
    """The reason the Hail engine cannot run here, or None when it can."""
    if find_hail_python() is None:
        return "no Python with hail found: run `make hail-env` or set BIOLATENT_HAIL_PYTHON"
    if shutil.which("java") is None:
        return "Hail needs Java (8, 11 or 17) on PATH"
    return None


def check_master(master: str | None, timeout: float = 5.0) -> str | None:
    """Refuse a malformed Spark master URL, or a ``spark://`` master none of whose host:port pairs accepts a
    connection within ``timeout`` seconds (``BiolatentError``). ``master`` None: ``$BIOLATENT_HAIL_MASTER`` is
    checked when set. Returns the master checked (None: local mode)."""
    if master is None:
        master = os.environ.get("BIOLATENT_HAIL_MASTER") or None
        if master is None:
            return None
    if not _MASTER.match(master):
        raise BiolatentError(f"--spark-master: {master!r} is not a Spark master URL (local[N], spark://HOST:PORT, "
                             f"yarn, k8s://...)")
    if not master.startswith("spark://"):
        return master
    problems = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise BiolatentError(f"--spark-master: {master!r} needs HOST:PORT after spark://")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return master
        except OSError as exc:
            problems.append(f"{address}: {exc.strerror or exc}")
    raise BiolatentError(f"Spark master {master} is not reachable ({'; '.join(problems)}): start the cluster or "
                         f"check --spark-master (or $BIOLATENT_HAIL_MASTER)")


def hail_gwas(
    bed_prefix: str | Path, phenotypes: pd.DataFrame, covariates: pd.DataFrame | None = None, *,
    qc: QCConfig | None = None, n_pcs: int = 0, master: str | None = None, timeout: int = 3600,
) -> pd.DataFrame:
    """Linear regression of every trait on every variant of a PLINK file set, run by Hail.

    ``phenotypes`` / ``covariates``: index = sample ids (PLINK IID), one column per trait / covariate. ``qc``:
    the thresholds of ``run_qc``, applied by Hail first; ``n_pcs``: that many ``hl.hwe_normalized_pca`` scores
    join the covariates; ``master``: the Spark master (None: ``$BIOLATENT_HAIL_MASTER`` or ``local[2]``).
    Returns the table of the numpy engine (``GWAS_COLUMNS`` of ``gwas``, LOG10_P from T_STAT);
    ``attrs["report"]`` holds Hail's QC counts, the samples used, the PC scores and ``spark`` (master,
    application id, executors).
    """
    from biolatent.discover.genetics.gwas import GWAS_COLUMNS as NUMPY_COLUMNS
    from biolatent.discover.genetics.gwas import t_log10_p

    reason = hail_available()
    if reason:
        raise BiolatentError(f"the hail engine is not available: {reason}")
    if n_pcs < 0:
        raise BiolatentError(f"the number of genetic PCs must be >= 0, got {n_pcs}")
    check_master(master)
    with tempfile.TemporaryDirectory(prefix="biolatent-hail-") as tmp:
        tmp_dir = Path(tmp)
        pheno_path, covar_path, report_path = tmp_dir / "pheno.tsv", tmp_dir / "covar.tsv", tmp_dir / "report.json"
        write_hail_table(phenotypes, pheno_path)
        command = [find_hail_python() or "", str(_SCRIPT), "--bfile", str(bed_prefix), "--pheno", str(pheno_path),
                   "--out", str(tmp_dir / "gwas.tsv"), "--report", str(report_path), "--pcs", str(n_pcs)]
        if master is not None:
            command += ["--master", master]
        n_covariates = 0
        if covariates is not None and covariates.shape[1] > 0:
            write_hail_table(covariates, covar_path)
            command += ["--covar", str(covar_path)]
            n_covariates = covariates.shape[1]
        if qc is not None:
            command += ["--qc", f"{qc.max_variant_missing!r},{qc.min_sample_call_rate!r},{qc.min_maf!r},"
                                f"{qc.min_hwe_p!r}"]
        run_hail_script(command, timeout)
        table = pd.read_csv(tmp_dir / "gwas.tsv", sep="\t", dtype={"#CHROM": str, "ID": str, "TRAIT": str})
        report = json.loads(report_path.read_text())
    order = {str(t): i for i, t in enumerate(phenotypes.columns)}
    table = table.iloc[np.argsort(table["TRAIT"].astype(str).map(order).to_numpy(), kind="stable")]
    table = table[GWAS_COLUMNS].reset_index(drop=True)
    df = table["OBS_CT"].to_numpy(float) - (n_covariates + n_pcs + 2)
    table["LOG10_P"] = t_log10_p(table["T_STAT"].to_numpy(float), df)
    table = table[NUMPY_COLUMNS]
    table.attrs["report"] = report
    return table


def run_hail_script(command: list[str], timeout: float) -> None:
    """Run a script of ``hail_scripts`` in the Hail environment; its last error line as one ``BiolatentError``."""
    import signal

    # a session of its own: a timeout stops the script and the Spark JVM it launched together
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BiolatentError(f"the hail engine did not finish within {timeout:.0f} s") from None
    except BaseException:  # Ctrl-C: no Spark JVM left behind
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    if proc.returncode != 0:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b", line)]
        last = (errors or lines or ["no output"])[-1]
        if last.startswith("DataError: "):  # the scripts' own checks of the data: the message as it is
            raise DataError(last.removeprefix("DataError: "))
        raise BiolatentError(f"the hail engine failed: {last}")


def write_hail_table(frame: pd.DataFrame, path: Path) -> None:
    """``id`` + the frame's columns as TSV for ``hl.import_table`` (``NA`` = missing)."""
    out = frame.copy()
    out.index = out.index.astype(str)
    out.index.name = "id"
    out.reset_index().to_csv(path, sep="\t", index=False, na_rep="NA")
