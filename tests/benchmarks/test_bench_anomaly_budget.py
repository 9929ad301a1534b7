"""``benchmarks/anomaly_budget.py``: its defaults, validation cohorts only (the test cohorts are never simulated),
the step count, and the comparison with the mean-brain baseline against an independent computation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]



def test_defaults_and_bad_arguments(bench_script):
    budget = bench_script("anomaly_budget")
    args = budget.parse_args([])
    assert (args.detector, args.cohort_seeds, args.epochs_grid, args.modes) == ("cevae", "0,1", "10,30",
                                                                                 "3d,slicewise")
    assert (args.healthy, args.validation, args.size, args.brain_erosion) == (60, 40, 64, 2)
    assert not args.register and budget.parse_args(["--register"]).register  # the stored run: no registration
    for bad in (["--modes", "2d"], ["--epochs-grid", "0,10"], ["--detector", "cevea"]):
        with pytest.raises(SystemExit):
            budget.parse_args(bad)


def test_the_summary_subtracts_the_mean_brain_of_the_same_cohort(bench_script):
    budget = bench_script("anomaly_budget")
    rows = [{"detector": "cevae", "mode": "3d", "epochs": 10, "steps": 230, "cohort_seed": 0, "voxel_auroc": 0.7},
            {"detector": "cevae", "mode": "3d", "epochs": 10, "steps": 230, "cohort_seed": 1, "voxel_auroc": 0.9},
            {"detector": budget.MEAN_BRAIN, "mode": "n/a", "epochs": 0, "steps": 0, "cohort_seed": 0,
             "voxel_auroc": 0.8},
            {"detector": budget.MEAN_BRAIN, "mode": "n/a", "epochs": 0, "steps": 0, "cohort_seed": 1,
             "voxel_auroc": 0.6}]
    compared = budget.summary(rows)
    assert [(r["cohort_seed"], round(r["difference"], 9)) for r in compared] == [(0, -0.1), (1, 0.3)]


@pytest.mark.slow
def test_quick_run_reads_validation_cohorts_only(monkeypatch, tmp_path, bench_script):
    from sklearn.metrics import roc_auc_score

    from biolatent.anomaly.volumes import brain_region, brain_slices, write_brain_set
    from biolatent.data.simulate.brain import ellipsoid_template
    from biolatent.workflows.anomaly_config import load_anomaly_config
    from biolatent.workflows.anomaly_tasks import healthy_split, read_volume_set

    budget, volumes = bench_script("anomaly_budget"), bench_script("anomaly_volumes")
    template = ellipsoid_template()  # no registry download
    written: list[Path] = []

    def write(folder: Path, n: int, **options: Any) -> Path:
        written.append(Path(folder))
        return write_brain_set(folder, n, template=template, **options)

    monkeypatch.setattr(volumes, "write_brain_set", write)
    payload = budget.main(["--quick", "--cohort-seeds", "1", "--out-dir", str(tmp_path)])
    assert sorted(p.name for p in written) == ["healthy", "validation"]  # no test cohort exists to be read
    rows = {(r["detector"], r["mode"], r["epochs"]): r for r in payload["rows"]}
    assert set(rows) == {("cevae", "3d", 1), ("cevae", "3d", 2), ("cevae", "slicewise", 1),
                         ("cevae", "slicewise", 2), ("voxel intensity", "n/a", 0),
                         (budget.MEAN_BRAIN, "n/a", 0)}
    # the same cohorts again, independently: the mean-brain baseline's voxel AUROC and the step counts
    root = tmp_path / "again"
    write_brain_set(root / "healthy", 6, size=32, seed=10, template=template)
    write_brain_set(root / "validation", 6, size=32, seed=13, lesions=True, exact_fraction=True,
                    template=template)
    _, healthy, _, _ = read_volume_set(root / "healthy", 32, normalise="none")
    _, validation, labels, masks = read_volume_set(root / "validation", 32, normalise="none")
    assert labels.sum() == 3  # exactly half of the validation brains are lesioned
    config = load_anomaly_config({"data": volumes.cohort_data(root, 32, False), "method": {"name": "ae"},
                                  "validation": bench_script("_anomaly_runs").VALIDATION})
    fit_idx, _ = healthy_split(6, None, None, config, str(root / "healthy"), "volumes", min_fit=1)
    inside = brain_region(validation, 2)
    region = inside | masks
    expected = roc_auc_score(masks[region], (np.abs(validation - healthy[fit_idx].mean(axis=0)) * inside)[region])
    assert rows[budget.MEAN_BRAIN, "n/a", 0]["voxel_auroc"] == pytest.approx(expected, abs=1e-6)
    n_slices = len(brain_slices(healthy[fit_idx]))
    assert rows["cevae", "3d", 2]["steps"] == 2 * math.ceil(len(fit_idx) / 2)  # 2 volumes a step in 3D
    assert rows["cevae", "slicewise", 1]["steps"] == math.ceil(n_slices / 16)  # 16 slices a step
    for row in payload["summary"]:
        assert row["difference"] == pytest.approx(row["voxel_auroc"] - expected, abs=1e-6)
    assert all(0.0 <= r["voxel_auroc"] <= 1.0 and np.isfinite(r["sample_auroc"]) for r in payload["rows"])
