"""OMOP CDM (v5.x) folder of CSV files -> long events table + birth days (``biolatent.data.records``).

PERSON is required (person_id, year_of_birth[, month_of_birth, day_of_birth | birth_datetime]); the event
tables VISIT_OCCURRENCE, CONDITION_OCCURRENCE, DRUG_EXPOSURE, MEASUREMENT, PROCEDURE_OCCURRENCE are read when
present (file names case-insensitive, ``.csv`` or ``.csv.gz``). Codes are ``<domain>:<concept_id>``; concept 0
(unmapped) is skipped. Times are days since 1970-01-01.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError

# table -> (code prefix, concept column, date column, value column or None)
EVENT_TABLES: dict[str, tuple[str, str, str, str | None]] = {
    "visit_occurrence": ("visit", "visit_concept_id", "visit_start_date", None),
    "condition_occurrence": ("condition", "condition_concept_id", "condition_start_date", None),
    "drug_exposure": ("drug", "drug_concept_id", "drug_exposure_start_date", None),
    "measurement": ("measurement", "measurement_concept_id", "measurement_date", "value_as_number"),
    "procedure_occurrence": ("procedure", "procedure_concept_id", "procedure_date", None),
}
_EPOCH = pd.Timestamp("1970-01-01")


def omop_files(folder: Path) -> dict[str, Path]:
    """Lower-case table name -> file for every ``*.csv`` / ``*.csv.gz`` of the folder."""
    files = {}
    for path in sorted(folder.iterdir()):
        name = path.name.lower()
        for suffix in (".csv", ".csv.gz"):
            if name.endswith(suffix):
                files[name[: -len(suffix)]] = path
    return files


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"cannot read OMOP table {path}: {str(exc).splitlines()[0]}") from None
    table.columns = [str(c).lower() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"OMOP table {path} has no column {missing[0]!r} (columns: {', '.join(table.columns)})")
    return table


def _days(values: pd.Series, where: str) -> pd.Series:
    dates = pd.to_datetime(values, errors="coerce")
    bad = dates.isna() & values.notna()
    if bad.any():
        raise DataError(f"{where}: {values[bad].iloc[0]!r} is not a date")
    return (dates - _EPOCH).dt.total_seconds() / 86400.0


def read_person(path: Path) -> pd.Series:
    """PERSON -> birth day (days since 1970-01-01) by person id (str); month/day default to 1 July / 1."""
    table = _read(path, ["person_id", "year_of_birth"])
    if table["person_id"].duplicated().any():
        raise DataError(f"{path}: duplicate person_id {table['person_id'][table['person_id'].duplicated()].iloc[0]!r}")
    year = pd.to_numeric(table["year_of_birth"], errors="coerce")
    month = pd.to_numeric(table.get("month_of_birth"), errors="coerce") if "month_of_birth" in table else None
    day = pd.to_numeric(table.get("day_of_birth"), errors="coerce") if "day_of_birth" in table else None
    month = (month if month is not None else pd.Series(np.nan, index=table.index)).fillna(7)
    day = (day if day is not None else pd.Series(np.nan, index=table.index)).fillna(1)
    if year.isna().any():
        raise DataError(f"{path}: person {table['person_id'][year.isna()].iloc[0]!r} has no year_of_birth")
    dates = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day}), errors="coerce")
    if "birth_datetime" in table:
        exact = pd.to_datetime(table["birth_datetime"], errors="coerce")
        dates = exact.dt.tz_localize(None).fillna(dates) if exact.dt.tz is not None else exact.fillna(dates)
    return pd.Series(((dates - _EPOCH).dt.total_seconds() / 86400.0).to_numpy(), index=table["person_id"].to_numpy())


def read_omop(folder: Path) -> tuple[pd.DataFrame, pd.Series]:
    """-> (events: patient, time, code, value; birth days by person id). DataError without PERSON."""
    files = omop_files(folder)
    if "person" not in files:
        raise DataError(f"OMOP folder {folder} has no PERSON table (person.csv; found: "
                        f"{', '.join(sorted(files)) or 'no csv files'})")
    births = read_person(files["person"])
    parts = []
    for table_name, (prefix, concept, date, value) in EVENT_TABLES.items():
        if table_name not in files:
            continue
        table = _read(files[table_name], ["person_id", concept, date])
        table = table[table[concept].notna() & (table[concept] != "0")]
        values = pd.to_numeric(table[value], errors="coerce") if value and value in table else np.nan
        parts.append(pd.DataFrame({
            "patient": table["person_id"].astype(str).to_numpy(),
            "time": _days(table[date], f"{files[table_name]} column {date!r}").to_numpy(),
            "code": (prefix + ":" + table[concept].astype(str)).to_numpy(),
            "value": values.to_numpy() if isinstance(values, pd.Series) else values,
        }))
    events = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {"patient": [], "time": [], "code": [], "value": []})
    unknown = sorted(set(events["patient"]) - set(births.index))
    if unknown:
        raise DataError(f"OMOP folder {folder}: {len(unknown)} persons with events are not in PERSON "
                        f"(e.g. {unknown[0]!r})")
    return events, births
