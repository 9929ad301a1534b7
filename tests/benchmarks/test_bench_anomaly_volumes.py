"""``benchmarks/anomaly_volumes.py``: its defaults (the issue's done-when run), the modes, the trivial baselines
against an independent computation, and the device tag of its output stem."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]



def test_defaults_modes_and_device_tag(bench_script):
    import torch

    volumes = bench_script("anomaly_volumes")
    args = volumes.parse_args([])
    assert (args.healthy, args.test, args.epochs, args.size, args.modes) == (60, 60, 10, 64, "3d,slicewise")
    assert (args.validation, args.cohort_seed, args.tuned) == (40, 0, "ae,vae,cevae,supervised")
    assert args.register and not volumes.parse_args(["--no-register"]).register
    with pytest.raises(SystemExit):
        volumes.parse_args(["--tuned", "cevea"])  # no such model
    quick = volumes.parse_args(["--quick"])
    assert (quick.healthy, quick.test, quick.epochs, quick.size) == (6, 6, 1, 32)
    with pytest.raises(SystemExit):
        volumes.parse_args(["--modes", "3d,2d"])
    assert bench_script("_report").device_tag() == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.slow
def test_quick_run_has_a_row_per_detector_and_mode_and_the_baselines(monkeypatch, tmp_path, bench_script):
    from sklearn.metrics import roc_auc_score

    from biolatent.anomaly.volumes import brain_region, write_brain_set
    from biolatent.data.simulate.brain import ellipsoid_template
    from biolatent.workflows.anomaly_tasks import read_volume_set

    volumes = bench_script("anomaly_volumes")
    template = ellipsoid_template()  # no registry download
    monkeypatch.setattr(volumes, "write_brain_set", partial(write_brain_set, template=template))
    payload = volumes.main(["--quick", "--detectors", "ae", "--out-dir", str(tmp_path)])
    stored = json.loads((tmp_path / f"anomaly_volumes-{bench_script('_report').device_tag()}-quick.json").read_text())
    assert stored["arguments"]["modes"] == "3d,slicewise" and stored["arguments"]["register"] is True
    rows = {(row["detector"], row["mode"]): row for row in stored["rows"]}
    assert set(rows) == {("ae", "3d"), ("ae", "slicewise"), ("supervised (reference)", "3d"),
                         ("supervised (reference)", "slicewise"), ("voxel intensity", "n/a"),
                         ("distance to mean healthy volume", "n/a")}
    assert len(payload["rows"]) == len(rows)
    # the voxel-intensity baseline's voxel AUROC, recomputed from the test brains inside the same region, in the
    # atlas space the benchmark registers every brain to by default (the set's template.nii.gz)
    root = tmp_path / "again"
    write_brain_set(root, 6, size=32, lesions=True, seed=1, template=template, exact_fraction=True)
    _, test, labels, masks = read_volume_set(root, 32, normalise="none", template=str(root / "template.nii.gz"))
    assert labels.sum() == 3  # exactly half of the test brains are lesioned
    region = brain_region(test, 2) | masks
    expected = roc_auc_score(masks[region], (test * brain_region(test, 2))[region])
    assert rows["voxel intensity", "n/a"]["voxel_auroc"] == pytest.approx(expected, abs=1e-9)
    for row in stored["rows"]:
        assert 0.0 <= row["voxel_auroc"] <= 1.0 and np.isfinite(row["sample_auroc"])


def test_the_validation_cohort_chooses_the_grid_point_and_the_test_cohort_does_not(bench_script):
    volumes = bench_script("anomaly_volumes")
    args = volumes.parse_args(["--detectors", "ae,ddpm", "--tuned", "ae,supervised", "--modes", "3d",
                               "--lr-grid", "1e-3,1e-2", "--batch-grid-3d", "2,8"])
    tasks = volumes.tasks_of(args)
    assert ("detector", "ddpm", "3d", None, None) in tasks and tasks[-1] == ("baselines",)
    assert sorted(t[3:] for t in tasks if t[:2] == ("detector", "ae")) == [(2, 1e-3), (2, 1e-2), (8, 1e-3), (8, 1e-2)]
    assert len([t for t in tasks if t[0] == "supervised"]) == 4

    def row(cohort: str, batch: int | None, lr: float | None, auroc: float, name: str = "ae") -> tuple[dict, None]:
        return {"detector": name, "mode": "3d", "cohort": cohort, "batch_size": batch, "lr": lr,
                "voxel_auroc": auroc}, None

    # the test cohort prefers (8, 1e-2); the validation cohort prefers (2, 1e-3): the kept test row is (2, 1e-3)
    results = [row("validation", 2, 1e-3, 0.8), row("test", 2, 1e-3, 0.6),
               row("validation", 8, 1e-2, 0.7), row("test", 8, 1e-2, 0.9),
               row("test", None, None, 0.5, "ddpm")]
    kept, selection = volumes.chosen_rows(results)
    kept_rows = [(r["detector"], r["batch_size"], r["voxel_auroc"]) for r, _ in kept]
    assert kept_rows == [("ae", 2, 0.6), ("ddpm", None, 0.5)]
    assert [s["chosen"] for s in selection] == [True, False]
    assert all(s["cohort"] == "validation" for s in selection)
