"""Tiny seeded health records: a long table, a births table, a metadata table with a landmark and a label."""

from pathlib import Path

import numpy as np
import pandas as pd

CODES = ["dx:htn", "dx:t2d", "rx:metformin", "rx:statin", "lab:hba1c", "lab:ldl", "dx:copd", "rx:inhaler"]


def write_records(folder: Path, n: int = 40, seed: int = 0) -> dict[str, Path]:
    """records.tsv (patient, time: date, code, value), births.tsv (patient, birth), meta.tsv (id, landmark, label).

    Label 1 patients get diabetes codes more often; every patient also has one event a year after the landmark
    (``future:*`` codes), which the encoder must never see."""
    rng = np.random.default_rng(seed)
    rows, births, meta = [], [], []
    for i in range(n):
        patient = f"p{i:03d}"
        label = int(i % 2)
        birth = pd.Timestamp("1950-01-01") + pd.Timedelta(days=int(rng.integers(0, 7000)))
        landmark = pd.Timestamp("2015-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        for _ in range(int(rng.integers(2, 6))):
            day = landmark - pd.Timedelta(days=int(rng.integers(0, 2000)))
            p = np.full(len(CODES), 1.0)
            p[1:3] += 3.0 * label
            for code in rng.choice(CODES, size=int(rng.integers(1, 4)), p=p / p.sum()):
                value = float(rng.normal(50, 10)) if code.startswith("lab") else np.nan
                rows.append((patient, day.date().isoformat(), code, value))
        rows.append((patient, (landmark + pd.Timedelta(days=365)).date().isoformat(), f"future:{label}", np.nan))
        births.append((patient, birth.date().isoformat()))
        meta.append((patient, landmark.date().isoformat(), label))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"records": folder / "records.tsv", "births": folder / "births.tsv", "meta": folder / "meta.tsv"}
    pd.DataFrame(rows, columns=["patient", "time", "code", "value"]).to_csv(paths["records"], sep="\t", index=False)
    pd.DataFrame(births, columns=["patient", "birth"]).to_csv(paths["births"], sep="\t", index=False)
    pd.DataFrame(meta, columns=["id", "landmark", "label"]).to_csv(paths["meta"], sep="\t", index=False)
    return paths


def write_omop(folder: Path, records: Path, births: Path) -> Path:
    """The same patients as an OMOP CDM folder (upper-case PERSON.csv, lower-case event tables)."""
    events = pd.read_csv(records, sep="\t")
    born = pd.read_csv(births, sep="\t")
    folder.mkdir(parents=True, exist_ok=True)
    person_ids = {p: i + 1 for i, p in enumerate(born["patient"])}
    dates = pd.to_datetime(born["birth"])
    pd.DataFrame({"person_id": born["patient"].map(person_ids), "year_of_birth": dates.dt.year,
                  "month_of_birth": dates.dt.month, "day_of_birth": dates.dt.day,
                  "gender_concept_id": 8507}).to_csv(folder / "PERSON.csv", index=False)
    concept = {c: 1000 + i for i, c in enumerate(sorted(events["code"].unique()))}
    dx = events[~events["code"].str.startswith("lab")]
    pd.DataFrame({"condition_occurrence_id": range(len(dx)), "person_id": dx["patient"].map(person_ids),
                  "condition_concept_id": dx["code"].map(concept),
                  "condition_start_date": dx["time"]}).to_csv(folder / "condition_occurrence.csv", index=False)
    lab = events[events["code"].str.startswith("lab")]
    pd.DataFrame({"measurement_id": range(len(lab)), "person_id": lab["patient"].map(person_ids),
                  "measurement_concept_id": lab["code"].map(concept), "measurement_date": lab["time"],
                  "value_as_number": lab["value"]}).to_csv(folder / "Measurement.csv", index=False)
    return folder
