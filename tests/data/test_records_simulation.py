"""The heart + records cohort: one latent health state behind both modalities, a rare disease weakly visible in
each alone, every event dated between birth and the landmark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from biolatent.data.simulate.heart import PARAMETERS, Grid, parameters_from_scores, simulate_heart_cohort
from biolatent.data.simulate.records import (
    LANDMARK,
    RARE_DISEASE,
    RECORD_COLUMNS,
    draw_health,
    heart_failure,
    heart_scores_from_health,
    simulate_records,
)


@pytest.fixture(scope="module")
def population():
    rng = np.random.default_rng(0)
    health = draw_health([f"p{i}" for i in range(6000)], rng, prevalence=0.05)
    scores = pd.DataFrame(rng.standard_normal((len(health), len(PARAMETERS))), columns=list(PARAMETERS),
                          index=health.index)
    parameters = parameters_from_scores(heart_scores_from_health(health, scores))
    health["heart_failure"] = heart_failure(parameters, health, rng)
    return health, parameters, simulate_records(health, parameters, rng)


def _cross_validated_auroc(features: np.ndarray, y: np.ndarray) -> float:
    features = (features - features.mean(0)) / (features.std(0) + 1e-9)
    scores = cross_val_predict(LogisticRegression(max_iter=2000), features, y, cv=5, method="predict_proba")[:, 1]
    return roc_auc_score(y, scores)


def test_the_rare_disease_is_weakly_visible_in_each_modality_and_better_in_both(population):
    health, parameters, records = population
    counts = pd.crosstab(records.patient, records.code).reindex(health.index).fillna(0.0)
    values = records.dropna(subset=["value"]).groupby(["patient", "code"])["value"].last().unstack()
    values = values.reindex(health.index)
    values = values.fillna(values.mean())
    image = parameters[["cavity_volume", "wall_thickness", "ejection_fraction"]].to_numpy()
    record = np.hstack([np.log1p(counts.to_numpy()), np.log(values.to_numpy().clip(1e-3))])
    y = health[RARE_DISEASE].to_numpy()
    assert 0.03 < y.mean() < 0.07
    auc_image, auc_records = _cross_validated_auroc(image, y), _cross_validated_auroc(record, y)
    auc_both = _cross_validated_auroc(np.hstack([image, record]), y)
    assert 0.6 < auc_image < 0.9 and 0.6 < auc_records < 0.9  # weakly visible: above chance, far from perfect
    assert auc_both > max(auc_image, auc_records) + 0.02


def test_the_state_shifts_the_heart(population):
    health, parameters, _ = population
    ill = health[RARE_DISEASE] == 1
    hypertensive = (health.hypertension == 1) & ~ill
    healthy = (health.hypertension == 0) & ~ill
    wall = parameters.wall_thickness
    assert wall[ill].mean() - wall[healthy].mean() == pytest.approx(1.3 * (1.0 + 0.5 * hypertensive.mean()), abs=0.4)
    assert wall[hypertensive].mean() - wall[healthy].mean() == pytest.approx(0.65, abs=0.25)
    assert parameters.ejection_fraction[ill].mean() < parameters.ejection_fraction[~ill].mean() - 0.015


def test_cohort_with_records(tmp_path, run_cli):
    result = run_cli("data", "simulate", "heart", "--n", "12", "--records", "--prevalence", "0.2", "--seed", "3",
                     "--out", tmp_path / "cohort")
    assert result.code == 0, result.err
    meta = pd.read_csv(tmp_path / "cohort" / "meta.tsv", sep="\t")
    records = pd.read_csv(tmp_path / "cohort" / "records.tsv", sep="\t")
    assert tuple(records.columns) == RECORD_COLUMNS and set(records.patient) <= set(meta.id)
    assert {"birth_date", "landmark_date", "age", "sex", "hypertension", "diabetes", RARE_DISEASE, "heart_failure",
            "last_nt_probnp"} <= set(meta.columns)
    when = pd.to_datetime(records.time)
    birth = pd.to_datetime(records.patient.map(meta.set_index("id").birth_date))
    assert (when < pd.Timestamp(LANDMARK)).all() and (when > birth).all()
    probnp = records[records.code == "LOINC:33762-6"].groupby("patient").value.last()
    np.testing.assert_allclose(meta.set_index("id").last_nt_probnp.reindex(probnp.index), probnp, rtol=1e-5)


def test_records_leave_the_cines_of_a_cohort_without_records_unchanged(tmp_path):
    grid = Grid(shape=(12, 12, 6), spacing=(14.0, 14.0, 28.0), n_frames=3)
    plain = pd.read_csv(simulate_heart_cohort(5, tmp_path / "a", seed=1, grid=grid), sep="\t")
    again = pd.read_csv(simulate_heart_cohort(5, tmp_path / "b", seed=1, grid=grid), sep="\t")
    pd.testing.assert_frame_equal(plain, again)


def test_bad_prevalence_is_one_line_and_writes_nothing(tmp_path, run_cli):
    result = run_cli("data", "simulate", "heart", "--n", "5", "--records", "--prevalence", "0.7",
                     "--out", tmp_path / "cohort")
    result.expect_error("prevalence must lie in (0, 0.5)")
    assert not (tmp_path / "cohort").exists()
