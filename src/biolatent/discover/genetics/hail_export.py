"""Latent phenotypes as column fields of a Hail MatrixTable, for users whose analyses already live in Hail.

The MatrixTable comes from a PLINK file set (rows = its variants, entries = the calls, columns = its samples) or
is one the user already has (``.mt``); every column gets one struct field (``field``, default ``biolatent``)
with one float64 per trait, missing where the sample has no phenotype row. Runs in the Hail environment
(``hail_scripts/annotate_columns.py``) like the GWAS engine. The output is staged beside ``out`` and renamed
onto it only when Hail has written it whole, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from biolatent.discover.genetics.hail_engine import (
    check_master,
    find_hail_python,
    hail_available,
    run_hail_script,
    write_hail_table,
)
from biolatent.errors import DataError

_SCRIPT = Path(__file__).with_name("hail_scripts") / "annotate_columns.py"
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_export(out: Path, field: str, genotypes: str | None, matrix_table: Path | None,
                 master: str | None) -> None:
    """Every check of the export's arguments that needs no Hail (one ``DataError`` line each)."""
    if (genotypes is None) == (matrix_table is None):
        raise DataError("give --genotypes (a PLINK prefix) or --matrix-table (an existing .mt), one of them")
    if not _FIELD.match(field):
        raise DataError(f"--field must be a name of letters, digits and _ (not starting with a digit), got {field!r}")
    if out.exists():
        raise DataError(f"{out} already exists: choose another --out")
    if matrix_table is not None and not (matrix_table / "metadata.json.gz").is_file():
        raise DataError(f"--matrix-table: {matrix_table} is not a Hail MatrixTable (no metadata.json.gz)")
    check_master(master)


def export_matrix_table(
    phenotypes: pd.DataFrame, out: str | Path, *, genotypes: str | None = None, matrix_table: str | Path | None = None,
    field: str = "biolatent", source: str = "", master: str | None = None, timeout: int = 3600,
    say: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Write ``out`` (a new MatrixTable): the PLINK ``genotypes`` (prefix) or ``matrix_table`` with ``phenotypes``
    (index = sample ids, one numeric column per trait) as the column struct ``field``. Returns Hail's report:
    id matching (counts, examples of ids on one side only) and ``spark`` (master, application, executors)."""
    out = Path(out)
    mt_path = None if matrix_table is None else Path(matrix_table)
    check_export(out, field, genotypes, mt_path, master)
    reason = hail_available()
    if reason:
        raise DataError(f"the hail engine is not available: {reason}")
    if phenotypes.empty or phenotypes.shape[1] == 0:
        raise DataError("no phenotypes to export")
    bad = [str(c) for c in phenotypes.columns if not _FIELD.match(str(c))]
    if bad:
        raise DataError(f"trait names must be field names (letters, digits, _), got {', '.join(bad[:3])}")
    values = phenotypes.apply(pd.to_numeric, errors="coerce")
    text = [str(c) for c in phenotypes.columns if (values[c].isna() & phenotypes[c].notna()).any()]
    if text:
        raise DataError(f"phenotype column(s) {', '.join(text[:3])} hold text: only numeric traits are exported")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        pheno_path, report_path, written = staging / "pheno.tsv", staging / "report.json", staging / "out.mt"
        write_hail_table(values, pheno_path)
        command = [find_hail_python() or "", str(_SCRIPT), "--pheno", str(pheno_path), "--out", str(written),
                   "--field", field, "--source", source, "--report", str(report_path)]
        command += ["--bfile", str(genotypes)] if genotypes is not None else ["--mt", str(mt_path)]
        if master is not None:
            command += ["--master", master]
        run_hail_script(command, timeout)
        report = json.loads(report_path.read_text())
        written.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    m = report["matching"]
    say(f"{m['n_matched']} of {m['n_columns']} MatrixTable columns have phenotypes ({m['n_only_matrix_table']} "
        f"without, e.g. {m['examples']['only_matrix_table'][:2]}; {m['n_only_phenotypes']} phenotyped samples not "
        f"in the MatrixTable, e.g. {m['examples']['only_phenotypes'][:2]})")
    return report
