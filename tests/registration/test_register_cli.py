"""`biolatent register fit -> apply -> evaluate` on tiny synthetic brains, and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from biolatent.io.nifti import read_nifti, write_nifti

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "registration"
TINY = ["--set", "data.image_size=16", "--set", "method.widths=[4, 8, 8]", "--set", "method.ncc_window=5",
        "--set", "train.epochs=2", "--set", "train.batch_size=2"]


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> Path:
    from biolatent.anomaly.volumes import write_brain_set
    from biolatent.data.simulate.brain import ellipsoid_template

    root = tmp_path_factory.mktemp("reg")
    template = ellipsoid_template()
    write_brain_set(root / "train", 4, size=32, seed=0, template=template)
    write_brain_set(root / "test", 3, size=32, seed=1, template=template)
    return root


def _config(tmp_path: Path, cohorts: Path, name: str, **data) -> Path:
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    config["data"].update({"path": str(cohorts / "train"), **data})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("name", ["voxelmorph", "micdir"])
def test_fit_apply_evaluate(run_cli, tmp_path, cohorts, name):
    run = tmp_path / "run"
    result = run_cli("register", "fit", _config(tmp_path, cohorts, name), "--out", run, "--quiet", *TINY)
    assert result.code == 0, result.err
    assert (run / "model.safetensors").is_file() and (run / "history.tsv").is_file()
    assert json.loads((run / "metrics.json").read_text())["register"]["pairs_per_second"] > 0

    test = cohorts / "test"
    meta = pd.read_csv(test / "meta.tsv", sep="\t")
    out = tmp_path / "applied"
    result = run_cli("register", "apply", run, "--moving", test / meta.path[0], "--fixed", test / meta.path[1],
                     "--labels", test / meta.labels[0], "--fixed-labels", test / meta.labels[1], "--out", out)
    assert result.code == 0, result.err
    fixed = read_nifti(test / meta.path[1], ndim=3)
    for stem in ("warped", "warped_labels", "jacobian"):
        volume = read_nifti(out / f"{stem}.nii.gz", ndim=3)
        assert volume.data.shape == fixed.data.shape and np.allclose(volume.affine, fixed.affine)
    assert read_nifti(out / "displacement.nii.gz", ndim=4).data.shape == (*fixed.data.shape, 3)
    assert set(np.unique(read_nifti(out / "warped_labels.nii.gz").data)) <= {0, 1, 2, 3}
    summary = json.loads((out / "registration.json").read_text())
    assert set(summary["dice"]) == {"1", "2", "3"} and 0 < summary["dice_mean"] <= 1
    assert 0 <= summary["folding_fraction"] < 0.01 and summary["seconds"] > 0

    result = run_cli("register", "evaluate", run, "--data", test, "--max-pairs", "1", "--no-classical")
    assert result.code == 0, result.err
    table = pd.read_csv(run / "registration_metrics.tsv", sep="\t", keep_default_na=False)
    assert set(table.method) == {name, "identity"}
    result = run_cli("register", "evaluate", run, "--data", test, "--max-pairs", "2")
    assert result.code == 0, result.err
    table = pd.read_csv(run / "registration_metrics.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns) == ["pair", "method", "label", "dice", "hd95", "folding_fraction", "seconds"]
    methods = set(table.method)
    assert {name, "identity"} <= methods
    assert table.pair.nunique() == 2 and set(table.label) == {"1", "2", "3", "mean"}
    assert (run / "registration_pairs.png").stat().st_size > 1000
    identity = table[(table.method == "identity") & (table.label == "mean")]
    assert (identity.folding_fraction == 0).all()
    assert run_cli("report", run).code == 0
    html = (run / "report.html").read_text()
    assert "Deformable registration" in html and "registration-pairs" in html
    assert "embeddings.h5ad not found" not in html
    if "demons" in methods:
        demons = table[(table.method == "demons") & (table.label == "mean")]
        assert (demons.dice.astype(float) > identity.dice.astype(float).to_numpy() - 0.05).all()


def test_atlas_training(run_cli, tmp_path, cohorts):
    meta = pd.read_csv(cohorts / "train" / "meta.tsv", sep="\t")
    config = _config(tmp_path, cohorts, "voxelmorph", atlas=str(cohorts / "train" / meta.path[0]),
                     atlas_labels=str(cohorts / "train" / meta.labels[0]))
    result = run_cli("register", "fit", config, "--out", tmp_path / "run", "--quiet", *TINY,
                     "--set", "method.dice_weight=0.5")
    assert result.code == 0, result.err
    history = pd.read_csv(tmp_path / "run" / "history.tsv", sep="\t")
    assert "dice_loss" in history.columns


def test_bad_config_is_one_line(run_cli, tmp_path, cohorts):
    config = _config(tmp_path, cohorts, "voxelmorph")
    run_cli("register", "fit", config, "--out", tmp_path / "r", *TINY, "--set", "method.smoothnes=1").expect_error(
        "method.smoothnes", "valid keys")
    run_cli("register", "fit", config, "--out", tmp_path / "r", *TINY, "--set", "method.name=affine").expect_error(
        "unknown registration method")
    run_cli("register", "fit", config, "--out", tmp_path / "r", *TINY, "--set", "data.image_size=18").expect_error(
        "multiple of 4")
    run_cli("register", "fit", config, "--out", tmp_path / "r", *TINY, "--set", "data.spacing=2").expect_error(
        "data.spacing")
    run_cli("register", "fit", config, "--out", tmp_path / "r", *TINY, "--set", "data.group_column=site").expect_error(
        "does not use data.group_column")
    run_cli("register", "fit", config, "--out", tmp_path / "r", *TINY, "--set", "method.spatial_dims=2").expect_error(
        "spatial_dims")
    run_cli("register", "fit", config, "--out", tmp_path / "r", *TINY, "--set", "train.batch_size=1").expect_error(
        "train.batch_size", "greater than or equal to 2")
    atlas = _config(tmp_path, cohorts, "voxelmorph", atlas=str(next((cohorts / "train").glob("*-0001.nii.gz"))))
    run_cli("register", "fit", atlas, "--out", tmp_path / "r", *TINY, "--set", "method.dice_weight=1").expect_error(
        "dice_weight", "atlas_labels")
    assert not (tmp_path / "r").exists()


def test_bad_input_is_one_line_and_writes_nothing(run_cli, tmp_path, cohorts):
    train = cohorts / "train"
    meta = pd.read_csv(train / "meta.tsv", sep="\t")
    # a cohort of one volume
    one = tmp_path / "one"
    one.mkdir()
    (one / "meta.tsv").write_text(f"id\tpath\tlabels\nb1\t{train / meta.path[0]}\t{train / meta.labels[0]}\n")
    config = _config(tmp_path, cohorts, "voxelmorph", path=str(one))
    run_cli("register", "fit", config, "--out", tmp_path / "r", *TINY).expect_error("at least two volumes")
    assert not (tmp_path / "r").exists()

    run = tmp_path / "run"
    assert run_cli("register", "fit", _config(tmp_path, cohorts, "voxelmorph"), "--out", run, "--quiet",
                   *TINY).code == 0
    fixed = read_nifti(train / meta.path[1], ndim=3)
    flat = tmp_path / "four_d.nii.gz"
    write_nifti(flat, np.repeat(fixed.data[..., None], 2, axis=3), (2.0,) * 3)  # 4D
    nan = tmp_path / "nan.nii.gz"
    broken = fixed.data.copy()
    broken[3, 3, 3] = np.nan
    write_nifti(nan, broken, affine=fixed.affine)
    small_labels = tmp_path / "small_labels.nii.gz"
    write_nifti(small_labels, np.zeros((8, 8, 8), np.float32), (1.0,) * 3)
    cases = [
        (["--moving", flat, "--fixed", train / meta.path[1]], "dimensionality"),
        (["--moving", nan, "--fixed", train / meta.path[1]], "NaN"),
        (["--moving", train / meta.path[0], "--fixed", train / meta.path[1], "--labels", small_labels], "shape"),
    ]
    for args, fragment in cases:
        out = tmp_path / "out"
        run_cli("register", "apply", run, *args, "--out", out).expect_error(fragment)
        assert not out.exists()
    one_eval = run_cli("register", "evaluate", run, "--data", one)
    one_eval.expect_error("at least two volumes")
    assert not (run / "registration_metrics.tsv").exists()

    # cohorts: a label map whose shape differs from its volume (evaluate), non-finite voxels (fit)
    bad_labels = tmp_path / "bad_labels"
    bad_labels.mkdir()
    (bad_labels / "meta.tsv").write_text(f"id\tpath\tlabels\nb1\t{train / meta.path[0]}\t{small_labels}\n"
                                         f"b2\t{train / meta.path[1]}\t{train / meta.labels[1]}\n")
    run_cli("register", "evaluate", run, "--data", bad_labels).expect_error("shape")
    assert not (run / "registration_metrics.tsv").exists()
    non_finite = tmp_path / "non_finite"
    non_finite.mkdir()
    (non_finite / "meta.tsv").write_text(f"id\tpath\tlabels\nb1\t{nan}\t{train / meta.labels[1]}\n"
                                         f"b2\t{train / meta.path[1]}\t{train / meta.labels[1]}\n")
    config = _config(tmp_path, cohorts, "voxelmorph", path=str(non_finite))
    run_cli("register", "fit", config, "--out", tmp_path / "r2", *TINY).expect_error("NaN")
    assert not (tmp_path / "r2").exists()


def test_evaluate_into_another_folder_on_the_fixed_maps_labels(tmp_path, cohorts):
    """``evaluate_registration(out_dir=..., fixed_labels_only=True)``: another cohort's evaluation beside the run's
    own (the benchmark's many-label setting), Dice over the labels of the fixed map."""
    from biolatent.workflows.register import evaluate_registration, fit_registration

    run = fit_registration(_config(tmp_path, cohorts, "voxelmorph", image_size=16), tmp_path / "run",
                           ["method.widths=[4, 8, 8]", "method.ncc_window=5", "train.epochs=1",
                            "train.batch_size=2"], progress=False, say=lambda _: None)
    out = tmp_path / "elsewhere"
    path = evaluate_registration(run, cohorts / "test", max_pairs=1, classical=False, fixed_labels_only=True,
                                 out_dir=out, say=lambda _: None)
    assert path == out / "registration_metrics.tsv" and (out / "registration_pairs.png").is_file()
    assert not (run / "registration_metrics.tsv").exists()
    table = pd.read_csv(path, sep="\t", keep_default_na=False)
    assert set(table.method) == {"voxelmorph", "identity"} and set(table.label) == {"1", "2", "3", "mean"}
