"""Metadata tables (tsv or csv) indexed by a string id column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from biolatent.errors import DataError
from biolatent.rundir import atomic_path

_TAB_SUFFIXES = {".tsv", ".tab", ".txt"}


def _separator(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in {".gz", ".bz2", ".xz", ".zip"}:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last == ".csv":
        return ","
    if last in _TAB_SUFFIXES:
        return "\t"
    try:  # unknown extension: sniff the header line (a tab wins over a comma)
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return "\t"
    return "," if "," in first and "\t" not in first else "\t"


def read_table(path: str | Path, id_column: str = "id") -> pd.DataFrame:
    """Read a tsv/csv table into a DataFrame indexed by ``id_column`` (as str, unique, non-empty)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"table not found: {path}")
    sep = _separator(path)
    try:
        header = pd.read_csv(path, sep=sep, nrows=0)
    except pd.errors.EmptyDataError:
        raise DataError(f"table {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataError(f"cannot read table {path}: {str(exc).splitlines()[0]}") from None
    columns = [str(c) for c in header.columns]
    if id_column not in columns:
        raise DataError(f"table {path} has no id column {id_column!r} (columns: {', '.join(columns)})")
    try:
        table = pd.read_csv(path, sep=sep, dtype={id_column: str}, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataError(f"cannot read table {path}: {str(exc).splitlines()[0]}") from None
    if table.empty:
        raise DataError(f"table {path} has no rows")
    ids = table[id_column]
    missing = ids.isna() | (ids.str.strip() == "")
    if missing.any():
        row = int(missing.to_numpy().nonzero()[0][0]) + 2  # 1-based, after the header line
        raise DataError(f"table {path}, line {row}: empty value in id column {id_column!r}")
    duplicated = ids[ids.duplicated()]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        lines = [int(i) + 2 for i in (ids == first).to_numpy().nonzero()[0][:2]]
        raise DataError(f"table {path}: duplicate id {first!r} in column {id_column!r} "
                        f"(lines {lines[0]} and {lines[1]})")
    table[id_column] = ids.str.strip()
    return table.set_index(id_column)


def write_table(path: str | Path, table: pd.DataFrame) -> Path:
    """Write ``table`` atomically as tsv, its index as the first column (named ``id`` if unnamed)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=True, index_label=table.index.name or "id")
    return path
