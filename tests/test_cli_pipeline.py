"""The commands end to end on tiny data, and their one-line errors on bad input."""

import json
from pathlib import Path

import pandas as pd
import pytest

EFFICIENCY_COLUMNS = ["representation", "probe", "fraction", "metric", "mean", "ci_low", "ci_high", "n_seeds",
                      "sources", "protocol"]


@pytest.mark.parametrize(
    ("modality", "method", "label"),
    [("counts", "vae", "cell_type"),  # the fast set keeps this modality end to end; the others are slow trainings
     pytest.param("dna", "mlm", "label", marks=pytest.mark.slow),
     pytest.param("image2d", "simclr", "label", marks=pytest.mark.slow)],
)
def test_pretrain_embed_evaluate_report(run_cli, tiny_config, tmp_path, modality, method, label):
    import scanpy as sc

    run = tmp_path / "run"
    result = run_cli("pretrain", tiny_config(modality, method), "--out", run, "--quiet")
    assert result.code == 0, result.err
    for name in ("config.yaml", "provenance.json", "metrics.json", "history.tsv", "model.safetensors"):
        assert (run / name).is_file(), name

    assert run_cli("embed", run).code == 0
    adata = sc.read_h5ad(run / "embeddings.h5ad")  # readable by scanpy as is
    assert label in adata.obs.columns and adata.obsm["X_biolatent"].shape[0] == adata.n_obs
    assert json.loads(adata.uns["biolatent"]["provenance"])["command"] == "embed"

    result = run_cli("evaluate", run, "--label", label, "--fractions", "0.25,1.0", "--seeds", "2",
                     "--supervised-steps", "5")
    assert result.code == 0, result.err
    table = pd.read_csv(run / "evaluate" / label / "efficiency.tsv", sep="\t")
    assert list(table.columns) == EFFICIENCY_COLUMNS
    assert set(table.representation) == {"ssl", "random_init", "pca", "supervised"}
    assert set(table.metric) == {"accuracy", "balanced_accuracy", "auroc", "f1"}
    assert (table.n_seeds == (table.fraction < 1).map({True: 2, False: 1})).all()  # 100%: one fit, 2 seeds
    assert table["mean"].between(0, 1).all()
    assert (run / "evaluate" / label / "efficiency.png").is_file()

    assert run_cli("report", run).code == 0
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html and "efficiency" in html.lower()


def test_probe_on_an_embeddings_file(run_cli, tiny_config, tmp_path):
    run = tmp_path / "run"
    assert run_cli("pretrain", tiny_config("counts", "simclr"), "--out", run, "--quiet").code == 0
    assert run_cli("embed", run).code == 0
    out = tmp_path / "probe"
    result = run_cli("probe", run / "embeddings.h5ad", "--label", "cell_type", "--fractions", "0.5,1",
                     "--seeds", "2", "--out", out)
    assert result.code == 0, result.err
    table = pd.read_csv(out / "evaluate" / "cell_type" / "efficiency.tsv", sep="\t")
    assert set(table.representation) == {"ssl"} and set(table.probe) == {"linear", "knn"}
    assert {"config.yaml", "provenance.json", "metrics.json"} <= {p.name for p in out.iterdir()}


def _assert_one_line_error(result, pattern: str) -> None:
    import re

    assert result.code != 0
    lines = [line for line in result.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.err  # one error line, the last thing said
    assert "Traceback" not in result.err
    assert re.search(pattern, errors[0]), errors[0]


def test_bad_inputs_give_one_line_errors_and_write_nothing(run_cli, tiny_config, tmp_path, counts_h5ad):
    import yaml

    def write_config(path: Path, config: dict) -> Path:
        path.write_text(yaml.safe_dump(config))
        return path

    out = tmp_path / "run"
    _assert_one_line_error(run_cli("pretrain", tmp_path / "missing.yaml", "--out", out), "config file not found")
    _assert_one_line_error(
        run_cli("pretrain", tiny_config("counts", "vae"), "--set", "train.epoch=2", "--out", out),
        r"train\.epoch: unknown key")
    missing_data = write_config(tmp_path / "m.yaml", {"data": {"modality": "counts", "path": "nope.h5ad"},
                                                      "method": {"name": "vae"}})
    _assert_one_line_error(run_cli("pretrain", missing_data, "--out", out), "nope.h5ad")
    corrupt = tmp_path / "corrupt.h5ad"
    corrupt.write_bytes(counts_h5ad.read_bytes()[:500])
    truncated = write_config(tmp_path / "t.yaml", {"data": {"modality": "counts", "path": str(corrupt)},
                                                   "method": {"name": "vae"}})
    _assert_one_line_error(run_cli("pretrain", truncated, "--out", out), "corrupt.h5ad")
    assert not out.exists()


def test_evaluate_label_errors(run_cli, tiny_config, tmp_path):
    run = tmp_path / "run"
    assert run_cli("pretrain", tiny_config("counts", "vae", epochs=1), "--out", run, "--quiet").code == 0
    _assert_one_line_error(run_cli("evaluate", run, "--label", "nope"), "label column 'nope' not found")
    _assert_one_line_error(run_cli("evaluate", run, "--label", "cell_type", "--fractions", "0,2"),
                           "fractions must lie in")
    _assert_one_line_error(run_cli("report", tmp_path / "no-such-run"), "run directory not found")
    assert not (run / "evaluate").exists()


def test_cli_help_for_every_command(run_cli):
    for command in ("pretrain", "embed", "evaluate", "probe", "report", "demo", "data", "robustness"):
        result = run_cli(command, "--help")
        assert result.code == 0 and "Usage" in result.out, command


def test_console_script_reports_errors_without_traceback(tmp_path):
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("biolatent")
    proc = subprocess.run([str(exe), "pretrain", str(tmp_path / "none.yaml")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: config file not found") and "Traceback" not in proc.stderr


def test_probe_refuses_a_label_with_one_class_and_a_missing_file(run_cli, tmp_path):
    import anndata
    import numpy as np

    adata = anndata.AnnData(obs=pd.DataFrame({"site": ["a"] * 20}, index=[f"s{i}" for i in range(20)]))
    adata.obsm["X_biolatent"] = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    adata.write_h5ad(tmp_path / "emb.h5ad")
    out = tmp_path / "probe"
    _assert_one_line_error(run_cli("probe", tmp_path / "emb.h5ad", "--label", "site", "--out", out),
                           "label column 'site' has one class")
    assert not out.exists() or not any(out.rglob("efficiency.tsv"))
    _assert_one_line_error(run_cli("probe", tmp_path / "none.h5ad", "--label", "site"), "none.h5ad")


def test_embed_other_data_checks_the_features(run_cli, tiny_config, tmp_path, counts_h5ad):
    from biolatent.data.simulate import write_counts_dataset

    run = tmp_path / "run"
    assert run_cli("pretrain", tiny_config("counts", "vae", epochs=1), "--out", run, "--quiet").code == 0
    out = tmp_path / "other.h5ad"
    result = run_cli("embed", run, "--data", counts_h5ad, "--out", out)
    assert result.code == 0, result.err
    import anndata

    assert anndata.read_h5ad(out).obsm["X_biolatent"].shape[0] == anndata.read_h5ad(counts_h5ad).n_obs
    other = write_counts_dataset(tmp_path / "genes", n_cells=30, n_genes=25, n_types=2, seed=1)
    _assert_one_line_error(run_cli("embed", run, "--data", other, "--out", tmp_path / "x.h5ad"),
                           "trained on 40 features, this data has 25")
    assert not (tmp_path / "x.h5ad").exists()


@pytest.mark.slow
def test_a_second_label_keeps_the_first_and_the_report_shows_both(run_cli, tiny_config, tmp_path):
    run = tmp_path / "run"
    assert run_cli("pretrain", tiny_config("counts", "vae", epochs=1), "--out", run, "--quiet").code == 0
    args = ("--fractions", "0.25,1.0", "--seeds", "2", "--supervised-steps", "20")
    first = run_cli("evaluate", run, "--label", "cell_type", *args)
    assert first.code == 0, first.err
    assert "[1/4] fraction 0.25, seed 0" in first.err and "left" in first.err  # progress with an ETA
    assert first.out.strip() == str(run / "evaluate" / "cell_type" / "efficiency.tsv")
    before = (run / "evaluate" / "cell_type" / "efficiency.tsv").read_bytes()
    second = run_cli("evaluate", run, "--label", "batch", *args)
    assert second.code == 0, second.err
    assert (run / "evaluate" / "cell_type" / "efficiency.tsv").read_bytes() == before
    assert (run / "evaluate" / "batch" / "efficiency.png").is_file()
    evaluated = json.loads((run / "metrics.json").read_text())["evaluate"]
    assert set(evaluated) == {"cell_type", "batch"}
    assert evaluated["batch"]["classes"] == ["batch0", "batch1"]
    assert evaluated["cell_type"]["pca_components"] == 24  # 120 cells: five per component
    assert all(run["n_validation"] > 0 for run in evaluated["cell_type"]["supervised"]["runs"])
    assert run_cli("report", run).code == 0
    html = (run / "report.html").read_text()
    assert "Label efficiency: cell_type" in html and "Label efficiency: batch" in html


def test_probe_names_x_when_the_nans_are_in_x(run_cli, tmp_path):
    import anndata
    import numpy as np

    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    x[3, 1] = np.nan
    obs = pd.DataFrame({"site": ["a", "b"] * 10}, index=[f"s{i}" for i in range(20)])
    anndata.AnnData(X=x, obs=obs).write_h5ad(tmp_path / "emb.h5ad")
    result = run_cli("probe", tmp_path / "emb.h5ad", "--label", "site", "--out", tmp_path / "probe")
    result.expect_error("X (used as embeddings", "1 NaN or inf value(s)", "'s3'")
    assert not (tmp_path / "probe").exists()
