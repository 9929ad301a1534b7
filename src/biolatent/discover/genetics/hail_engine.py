"""The Hail (Spark) engine for GWAS: the same linear regression as the numpy engine, for cohorts beyond one
machine. Hail pins old versions of rich and typer, so it lives in an environment of its own
(``make hail-env`` builds ``.venv-hail``); biolatent talks to it through a subprocess and plain files.

Hail's ``linear_regression_rows`` mean-imputes missing genotype calls, where plink2 and the numpy engine drop
those samples for that variant: the engines agree exactly on variants without missing calls.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from biolatent.errors import BiolatentError

_SCRIPT = Path(__file__).with_name("hail_scripts") / "linear_regression.py"
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


def hail_gwas(
    bed_prefix: str | Path, phenotypes: pd.DataFrame, covariates: pd.DataFrame | None = None, *,
    timeout: int = 3600,
) -> pd.DataFrame:
    """Linear regression of every trait on every variant of a PLINK file set, run by Hail.

    ``phenotypes`` / ``covariates``: index = sample ids (PLINK IID), one column per trait / covariate.
    Returns the plink2-style table of the numpy engine (one row per variant and trait).
    """
    reason = hail_available()
    if reason:
        raise BiolatentError(f"the hail engine is not available: {reason}")
    with tempfile.TemporaryDirectory(prefix="biolatent-hail-") as tmp:
        tmp_dir = Path(tmp)
        pheno_path, covar_path = tmp_dir / "pheno.tsv", tmp_dir / "covar.tsv"
        _write_table(phenotypes, pheno_path)
        command = [find_hail_python() or "", str(_SCRIPT), "--bfile", str(bed_prefix), "--pheno", str(pheno_path),
                   "--out", str(tmp_dir / "gwas.tsv")]
        if covariates is not None and covariates.shape[1] > 0:
            _write_table(covariates, covar_path)
            command += ["--covar", str(covar_path)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise BiolatentError(f"the hail engine failed: {last}")
        table = pd.read_csv(tmp_dir / "gwas.tsv", sep="\t", dtype={"#CHROM": str, "ID": str})
    return table[GWAS_COLUMNS]


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    out.index = out.index.astype(str)
    out.index.name = "id"
    out.reset_index().to_csv(path, sep="\t", index=False, na_rep="NA")
