"""Health records that share one latent health state with the heart phantom: the paired image + records cohort.

Each simulated person has a latent health state at the landmark date (the day of the cine): age, sex,
hypertension, type 2 diabetes, and a rare disease (``RARE_DISEASE``, cardiac amyloidosis, prevalence a few
percent). The state acts on both modalities:

* the heart (``data.simulate.heart``): hypertension thickens the wall (+0.5 SD), the rare disease thickens it
  more (+1 SD) and lowers the ejection fraction (-0.5 SD); heart failure follows a low ejection fraction or a
  large cavity. Wall thickening from hypertension and from the rare disease look alike, so the disease is only
  weakly visible in the images alone;
* the records (``simulate_records``): visits over the ``years`` before the landmark, their number rising with
  age and disease; at each visit diagnosis codes (ICD-10), drug codes (ATC) and measurements (LOINC codes with
  a value) drawn with rates that depend on the state. The rare disease raises the rates of codes that are
  common on their own (carpal tunnel syndrome, polyneuropathy, proteinuria, atrial fibrillation) and
  NT-proBNP, so it is only weakly visible in the records alone.

The design follows the practice of records simulators such as Synthea (Walonoski et al. 2018, JAMIA 25:230):
state-dependent event rates, real coding systems; the rates here are illustrative, not epidemiological
estimates. Every event is dated before the landmark, so an encoder that sees the records up to the landmark
sees them all.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.rundir import atomic_path

RARE_DISEASE = "amyloidosis"
LANDMARK = date(2025, 1, 1)
RECORD_COLUMNS = ("patient", "time", "code", "value")
NT_PROBNP = "LOINC:33762-6"

# (code, base rate per visit, multiplier for each state that raises it)
DIAGNOSES: dict[str, tuple[float, dict[str, float]]] = {
    "ICD10:Z00.0": (0.30, {}),  # general examination
    "ICD10:J06.9": (0.08, {}),  # upper respiratory infection
    "ICD10:M54.5": (0.05, {}),  # low back pain
    "ICD10:K21.9": (0.04, {}),  # reflux
    "ICD10:I10": (0.01, {"hypertension": 60.0}),
    "ICD10:E11.9": (0.005, {"diabetes": 120.0}),
    "ICD10:E78.5": (0.06, {"diabetes": 2.0, "hypertension": 1.5}),  # hyperlipidaemia
    "ICD10:I50.9": (0.005, {"heart_failure": 80.0}),
    "ICD10:I48.91": (0.015, {"heart_failure": 3.0, RARE_DISEASE: 1.5}),  # atrial fibrillation
    "ICD10:G56.00": (0.015, {RARE_DISEASE: 2.0}),  # carpal tunnel syndrome
    "ICD10:G62.9": (0.01, {"diabetes": 2.0, RARE_DISEASE: 2.0}),  # polyneuropathy
    "ICD10:R80.9": (0.015, {"diabetes": 2.0, RARE_DISEASE: 1.5}),  # proteinuria
}
DRUGS: dict[str, tuple[float, dict[str, float]]] = {
    "ATC:C09AA05": (0.005, {"hypertension": 100.0}),  # ramipril
    "ATC:C08CA01": (0.005, {"hypertension": 50.0}),  # amlodipine
    "ATC:A10BA02": (0.003, {"diabetes": 200.0}),  # metformin
    "ATC:C03CA01": (0.005, {"heart_failure": 100.0}),  # furosemide
    "ATC:C10AA05": (0.05, {"diabetes": 4.0, "hypertension": 3.0}),  # atorvastatin
}
MEASUREMENT_RATE = 0.5  # each measurement at a visit


def _clip_probability(p: np.ndarray) -> np.ndarray:
    return np.clip(p, 0.0, 0.95)


def draw_health(ids: list[str], rng: np.random.Generator, *, prevalence: float = 0.03) -> pd.DataFrame:
    """The latent state of each person (index = ids): age, sex, hypertension, diabetes, the rare disease."""
    if not 0.0 < prevalence < 0.5:
        raise DataError(f"rare-disease prevalence must lie in (0, 0.5), got {prevalence}")
    n = len(ids)
    age = rng.uniform(40.0, 80.0, n)
    hypertension = rng.random(n) < 0.15 + 0.006 * (age - 40.0)
    diabetes = rng.random(n) < 0.08 + 0.003 * (age - 40.0)
    rare = rng.random(n) < prevalence
    return pd.DataFrame({"age": age, "sex": rng.choice(["F", "M"], n), "hypertension": hypertension.astype(int),
                         "diabetes": diabetes.astype(int), RARE_DISEASE: rare.astype(int)},
                        index=pd.Index(ids, name="id"))


def heart_scores_from_health(health: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Standard scores of the heart parameters (one column each, e.g. genetically driven or standard-normal
    draws; ``data.simulate.heart.parameters_from_scores`` maps them) shifted by the hypertension and disease
    effects."""
    shifted = scores.copy()
    shifted["wall_thickness"] += 0.5 * health["hypertension"].to_numpy() + 1.0 * health[RARE_DISEASE].to_numpy()
    shifted["ejection_fraction"] -= 0.5 * health[RARE_DISEASE].to_numpy()
    return shifted


def heart_failure(parameters: pd.DataFrame, health: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Heart failure (0/1): likely with a low ejection fraction, a large cavity or the rare disease."""
    logit = (-3.2 - 25.0 * (parameters["ejection_fraction"].to_numpy() - 0.60)
             + 0.02 * (parameters["cavity_volume"].to_numpy() - 150.0) + 1.0 * health[RARE_DISEASE].to_numpy())
    return (rng.random(len(health)) < 1.0 / (1.0 + np.exp(-logit))).astype(int)


def _measurements(state: pd.Series, wall: float, ef: float, rng: np.random.Generator) -> dict[str, float]:
    """Values at one visit: systolic pressure, HbA1c, creatinine and NT-proBNP from the state and the heart."""
    return {
        "LOINC:8480-6": float(125 + 18 * state["hypertension"] + 2.0 * (wall - 9.0) + rng.normal(0, 10)),
        "LOINC:4548-4": float(5.5 + 1.6 * state["diabetes"] + rng.normal(0, 0.4)),
        "LOINC:2160-0": float(0.9 + 0.2 * state["diabetes"] + 0.03 * state[RARE_DISEASE] + rng.normal(0, 0.12)),
        NT_PROBNP: float(np.exp(4.5 + 6.0 * (0.60 - ef) + 0.6 * state["heart_failure"]
                                + 0.1 * state[RARE_DISEASE] + rng.normal(0, 0.5))),
    }


def simulate_records(health: pd.DataFrame, parameters: pd.DataFrame, rng: np.random.Generator, *,
                     years: float = 5.0, landmark: date = LANDMARK) -> pd.DataFrame:
    """Events (``RECORD_COLUMNS``; time = ISO date) of every person over the ``years`` before ``landmark``.

    ``health`` needs the columns of ``draw_health`` plus ``heart_failure``; ``parameters`` the heart's.
    """
    rows: list[tuple[str, str, str, float]] = []
    codes = {**DIAGNOSES, **DRUGS}
    names = list(codes)
    base = np.array([codes[c][0] for c in names])
    span = round(years * 365.25)
    for person, state in health.iterrows():
        ill = state["hypertension"] + state["diabetes"] + state["heart_failure"]
        n_visits = max(1, rng.poisson(years * (1.0 + 0.03 * (state["age"] - 40.0) + 0.8 * ill)))
        days = np.sort(rng.choice(span, size=min(n_visits, span), replace=False))
        rates = base * np.array([np.prod([factor for key, factor in codes[c][1].items() if state[key]] or [1.0])
                                 for c in names])
        rates = _clip_probability(rates)
        wall, ef = parameters.loc[person, "wall_thickness"], parameters.loc[person, "ejection_fraction"]
        for day in days:
            when = (landmark - timedelta(days=int(span - day))).isoformat()
            drawn = [names[j] for j in np.flatnonzero(rng.random(len(names)) < rates)]
            rows += [(str(person), when, code, np.nan) for code in drawn]
            for code, value in _measurements(state, wall, ef, rng).items():
                if rng.random() < MEASUREMENT_RATE:
                    rows.append((str(person), when, code, round(value, 3)))
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))


def records_outcomes(health: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Per person the meta.tsv columns of the records cohort: ``birth_date``, ``landmark_date``, the state
    and ``last_nt_probnp`` (the last NT-proBNP before the landmark: a records quantity the heart shows)."""
    birth = [(LANDMARK - timedelta(days=round(a * 365.25))).isoformat() for a in health["age"]]
    probnp = records[records.code == NT_PROBNP].groupby("patient")["value"].last()
    out = health.copy()
    out.insert(0, "landmark_date", LANDMARK.isoformat())
    out.insert(0, "birth_date", birth)
    out["age"] = out["age"].round(2)
    out["last_nt_probnp"] = probnp.reindex(health.index.astype(str)).to_numpy()
    return out


def write_records(path: str | Path, records: pd.DataFrame) -> Path:
    """``records.tsv`` (patient, time, code, value) written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        records.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return path
