"""Anomaly detection on a table (issue 11, items 6 and 7): non-numeric columns refused, explicit drop_columns,
``--label`` on a custom column, and the warning when the healthy validation set is too small for the target FPR."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

N_FEATURES = 60
SHIFTED = 10  # the planted disease shifts the first 10 features by +2 SD


def _eyes(n_healthy: int, n_diseased: int, seed: int) -> pd.DataFrame:
    """Seeded eyes: id, a text class column 'diagnosis', a True/False column 'diseased', 60 numeric features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_healthy + n_diseased, N_FEATURES))
    x[n_healthy:, :SHIFTED] += 2.0
    table = pd.DataFrame(x, columns=[f"f{j:02d}" for j in range(N_FEATURES)])
    diseased = np.r_[np.zeros(n_healthy, bool), np.ones(n_diseased, bool)]
    table.insert(0, "diseased", diseased)
    table.insert(0, "diagnosis", np.where(diseased, "glaucoma", "healthy"))
    table.insert(0, "id", [f"eye{seed}_{i}" for i in range(len(table))])
    return table


def _write(tmp_path, name: str, table: pd.DataFrame, columns: list[str] | None = None):
    path = tmp_path / name
    (table if columns is None else table[columns]).to_csv(path, sep="\t", index=False)
    return path


def _config(tmp_path, healthy, fraction: float = 0.25, **data) -> str:
    path = tmp_path / f"eyes_{fraction:.3f}.yaml"
    path.write_text(yaml.safe_dump({"data": {"modality": "features", "path": str(healthy), **data},
                                    "method": {"name": "mahalanobis"},
                                    "validation": {"fraction": fraction, "target_fpr": 0.05},
                                    "train": {"seed": 0}}))
    return str(path)


@pytest.fixture
def healthy(tmp_path):
    """The report's file: 60 healthy eyes x 62 columns (id, the text column 'diagnosis', 60 features)."""
    table = _eyes(60, 0, seed=1)
    path = _write(tmp_path, "healthy.tsv", table, ["id", "diagnosis", *table.columns[3:]])
    assert pd.read_csv(path, sep="\t").shape == (60, 62)
    return path


def test_a_text_column_is_refused_by_name_and_nothing_is_written(run_cli, tmp_path, healthy):
    run = tmp_path / "run"
    run_cli("anomaly", "fit", _config(tmp_path, healthy), "--out", run).expect_error(
        "non-numeric column(s) 'diagnosis'", "'healthy'", "data.drop_columns")
    assert not run.exists()
    cohort = _write(tmp_path, "cohort.tsv", _eyes(40, 20, seed=2).drop(columns="diseased"))  # every eye, one file
    run_cli("anomaly", "fit", _config(tmp_path, cohort), "--out", run).expect_error("'diagnosis'", "'glaucoma'")
    run_cli("anomaly", "fit", _config(tmp_path, healthy, drop_columns=["diagnosis", "site"]), "--out", run
            ).expect_error("drop_columns names column(s) 'site'")
    gappy = pd.read_csv(healthy, sep="\t")
    gappy.loc[[3, 7], "f05"], gappy.loc[7, "f09"] = np.nan, np.inf
    gappy = _write(tmp_path, "gappy.tsv", gappy)
    run_cli("anomaly", "fit", _config(tmp_path, gappy, drop_columns=["diagnosis"]), "--out", run).expect_error(
        "3 missing or infinite value(s)", "'f05', 'f09'", "row id 'eye1_3'")
    assert not run.exists()


def test_b_explicit_drop_then_evaluate_with_a_custom_label(run_cli, tmp_path, healthy):
    run = tmp_path / "run"
    fitted = run_cli("anomaly", "fit", _config(tmp_path, healthy, drop_columns=["diagnosis"]), "--out", run)
    assert fitted.code == 0, fitted.err
    state = json.loads((run / "anomaly.json").read_text())
    assert state["feature_columns"] == [f"f{j:02d}" for j in range(N_FEATURES)]
    # the test table has its columns in another order, a text column and a True/False label: features go by name
    test_table = _eyes(20, 20, seed=3)
    test = _write(tmp_path, "test.tsv", test_table[["id", "diseased", *test_table.columns[3:][::-1], "diagnosis"]])
    run_cli("anomaly", "evaluate", run, "--data", test).expect_error("no label column 'is_anomaly'", "'diseased'")
    run_cli("anomaly", "evaluate", run, "--data", test, "--label", "diagnosis").expect_error(
        "label column 'diagnosis' must hold 0/1 or True/False", "'healthy'")
    result = run_cli("anomaly", "evaluate", run, "--data", test, "--label", "diseased")
    assert result.code == 0, result.err
    metrics = pd.read_csv(run / "anomaly_metrics.tsv", sep="\t")
    values = dict(zip(metrics.metric, metrics.value, strict=True))
    assert values["auroc"] > 0.9, values  # 10 of 60 features shifted by 2 SD
    scored = run_cli("anomaly", "score", run, "--data", test, "--label", "diseased", "--out", tmp_path / "scored")
    assert scored.code == 0, scored.err
    scores = pd.read_csv(tmp_path / "scored" / "scores.tsv", sep="\t")
    assert scores["label"].tolist() == [0] * 20 + [1] * 20
    missing = _write(tmp_path, "missing.tsv", test_table.drop(columns=["f07", "f42"]))
    run_cli("anomaly", "score", run, "--data", missing, "--out", tmp_path / "s2").expect_error(
        "lacks 2 feature column(s)", "'f07', 'f42'")


def test_c_small_validation_warning_is_printed_and_recorded(run_cli, tmp_path, healthy):
    run = tmp_path / "run"
    fitted = run_cli("anomaly", "fit", _config(tmp_path, healthy, drop_columns=["diagnosis"]), "--out", run)
    assert fitted.code == 0, fitted.err
    expected = ("15 healthy validation samples cannot resolve a 5% false-positive rate (finest step 6.7%); "
                "the threshold gives 0.0% on validation")
    assert f"warning: {expected}" in fitted.err
    section = json.loads((run / "metrics.json").read_text())["anomaly_fit"]
    assert section["validation_n"] == 15 and section["validation_fpr"] == 0.0
    assert len(section["warnings"]) == 1 and section["warnings"][0].startswith(expected)
    test = _write(tmp_path, "test.tsv", _eyes(10, 10, seed=9).drop(columns="diagnosis"))
    assert run_cli("anomaly", "evaluate", run, "--data", test, "--label", "diseased").code == 0
    assert run_cli("report", run).code == 0
    assert f"Warning: {expected}" in (run / "report.html").read_text()
    # 20 validation samples resolve 5% exactly (1 of 20): no warning, one healthy sample above the threshold
    fitted = run_cli("anomaly", "fit", _config(tmp_path, healthy, 1 / 3, drop_columns=["diagnosis"]),
                     "--out", tmp_path / "run20")
    assert fitted.code == 0 and "warning" not in fitted.err, fitted.err
    section = json.loads((tmp_path / "run20" / "metrics.json").read_text())["anomaly_fit"]
    assert section["validation_n"] == 20 and section["validation_fpr"] == 0.05 and section["warnings"] == []


def test_example_table_config_fits_and_evaluates(run_cli, tmp_path):
    """configs/anomaly/eyes_table_mahalanobis.yaml (the README's example) on tables of its shape."""
    from pathlib import Path

    source = Path(__file__).parents[2] / "configs" / "anomaly" / "eyes_table_mahalanobis.yaml"
    config = yaml.safe_load(source.read_text())
    healthy, test = _eyes(80, 0, seed=4), _eyes(30, 30, seed=5)
    _write(tmp_path, Path(config["data"]["path"]).name, healthy.drop(columns="diseased"))
    (tmp_path / "eyes.yaml").write_text(yaml.safe_dump({**config, "data": {
        **config["data"], "path": Path(config["data"]["path"]).name}}))
    test = _write(tmp_path, "test.tsv", test.rename(columns={"diseased": "glaucoma"}))
    assert run_cli("anomaly", "fit", tmp_path / "eyes.yaml", "--out", tmp_path / "run").code == 0
    result = run_cli("anomaly", "evaluate", tmp_path / "run", "--data", test, "--label", "glaucoma")
    assert result.code == 0, result.err
    metrics = pd.read_csv(tmp_path / "run" / "anomaly_metrics.tsv", sep="\t")
    assert dict(zip(metrics.metric, metrics.value, strict=True))["auroc"] > 0.9
