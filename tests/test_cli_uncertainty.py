"""Issue 15 parts 1-2 through the CLI: intervals over pre-training seed x test split x labelled subset, and the
inductive protocol (test ids out of pre-training, PCA and scaling)."""

import json
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

from biolatent.evaluate.efficiency import SUMMARY_COLUMNS, pca_features


def _one_line_error(result, fragment: str) -> None:
    assert result.code == 1, result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.err, result.err
    assert fragment in errors[0], errors[0]


@pytest.mark.slow  # a real training run; see issue 16 part 8 (fast set under 3 minutes)
def test_seeds_and_test_splits_give_intervals_of_nonzero_width_at_every_fraction(run_cli, tiny_config, tmp_path):
    run = tmp_path / "run"
    result = run_cli("pretrain", tiny_config("counts", "vae", epochs=1), "--out", run, "--quiet", "--seeds", "3")
    assert result.code == 0, result.err
    assert json.loads((run / "metrics.json").read_text())["pretrain"]["seeds"] == [0, 1, 2]
    for seed in (1, 2):  # extra seeds: complete run directories of their own, the run itself unchanged
        assert (run / "seeds" / str(seed) / "model.safetensors").is_file()
        assert "seed: " + str(seed) in (run / "seeds" / str(seed) / "config.yaml").read_text()
    assert not (run / "seeds" / "0").exists()

    result = run_cli("embed", run)
    assert result.code == 0, result.err
    embeddings = [anndata.read_h5ad(p).obsm["X_biolatent"] for p in
                  (run / "embeddings.h5ad", run / "seeds/1/embeddings.h5ad", run / "seeds/2/embeddings.h5ad")]
    assert not np.allclose(embeddings[0], embeddings[1])  # each seed embeds with its own weights

    result = run_cli("evaluate", run, "--label", "cell_type", "--fractions", "0.25,1.0", "--seeds", "2",
                     "--test-splits", "3", "--supervised-steps", "5")
    assert result.code == 0, result.err
    folder = run / "evaluate" / "cell_type"
    table = pd.read_csv(folder / "efficiency.tsv", sep="\t")
    assert list(table.columns) == SUMMARY_COLUMNS and (table.protocol == "transductive").all()
    pretrained = table[table.representation.isin(["ssl", "random_init"])]
    baselines = table[table.representation.isin(["pca", "supervised"])]
    subsets = pretrained.fraction.map({0.25: 2, 1.0: 1})  # at 100% the 2 subset seeds repeat one fit: one value
    assert (pretrained.n_seeds == 3 * 3 * subsets).all()
    assert (baselines.n_seeds == 3 * baselines.fraction.map({0.25: 2, 1.0: 1})).all()
    assert set(pretrained[pretrained.fraction < 1].sources) == {"pretrain_seed+test_split+label_subset"}
    assert set(pretrained[pretrained.fraction == 1].sources) == {"pretrain_seed+test_split"}
    assert set(baselines[baselines.fraction < 1].sources) == {"test_split+label_subset"}
    balanced = table[table.metric == "balanced_accuracy"]
    assert set(balanced.fraction) == {0.25, 1.0}
    varied = balanced[balanced["mean"] < 1.0]  # a perfect score on every split and subset has no spread to show
    assert {"ssl", "random_init", "supervised"} <= set(varied[varied.fraction == 1.0].representation)
    assert (varied.ci_high > varied.ci_low).all(), varied  # non-zero width at every fraction, 100% included

    per_seed = pd.read_csv(folder / "efficiency_per_seed.tsv", sep="\t")
    assert {"pretrain_seed", "test_split"} <= set(per_seed.columns)
    assert set(per_seed.test_split) == {0, 1, 2}
    assert set(per_seed[per_seed.representation == "ssl"].pretrain_seed) == {0, 1, 2}
    assert per_seed[per_seed.representation == "pca"].pretrain_seed.isna().all()
    settings = json.loads((folder / "evaluate.json").read_text())
    assert settings["protocol"] == "transductive" and settings["test_splits"] == 3
    assert settings["pretrain_seeds"] == [0, 1, 2]

    assert run_cli("report", run).code == 0
    assert "transductive" in (run / "report.html").read_text()


def _rows(x) -> set[bytes]:
    return {np.asarray(row, dtype=np.float32).tobytes() for row in np.asarray(x)}


@pytest.mark.slow  # a real training run; see issue 16 part 8 (fast set under 3 minutes)
def test_inductive_keeps_test_ids_out_of_pretraining_pca_and_scaling(run_cli, tiny_config, tmp_path, monkeypatch,
                                                                     counts_h5ad):
    import importlib

    import biolatent.build
    import biolatent.evaluate.efficiency

    fit_module = importlib.import_module("biolatent.train.fit")  # biolatent.train.fit is also the function

    data = anndata.read_h5ad(counts_h5ad)
    matrix = np.asarray(data.X.toarray() if hasattr(data.X, "toarray") else data.X, dtype=np.float32)
    row_of = dict(zip(data.obs_names.astype(str), matrix, strict=True))
    seen: dict[str, list] = {"fit": [], "scaled": [], "pca": []}
    real_fit, real_stats, real_pca = (fit_module.fit, biolatent.build.fit_input_statistics,
                                      biolatent.evaluate.efficiency.pca_features)

    def spy_fit(method, x, *args, **kwargs):
        seen["fit"].append(_rows(x))
        return real_fit(method, x, *args, **kwargs)

    def spy_stats(module, x):
        seen["scaled"].append(_rows(x))
        return real_stats(module, x)

    def spy_pca(raw, *args, **kwargs):
        seen["pca"].append(kwargs.get("fit_rows"))
        return real_pca(raw, *args, **kwargs)

    monkeypatch.setattr(fit_module, "fit", spy_fit)
    monkeypatch.setattr(biolatent.build, "fit_input_statistics", spy_stats)
    monkeypatch.setattr(biolatent.evaluate.efficiency, "pca_features", spy_pca)

    run = tmp_path / "run"
    result = run_cli("pretrain", tiny_config("counts", "vae", epochs=1), "--out", run, "--quiet", "--seeds", "2",
                     "--holdout-splits", "2", "--test-fraction", "0.25", "--holdout-label", "cell_type")
    assert result.code == 0, result.err
    holdout = json.loads((run / "holdout.json").read_text())
    splits = [set(ids) for ids in holdout["splits"]]
    assert len(splits) == 2 and splits[0] != splits[1] and holdout["test_fraction"] == 0.25
    excluded = set().union(*splits)
    test_rows = [_rows([row_of[i] for i in split]) for split in splits]
    assert len(seen["fit"]) == 2  # both pre-training seeds, neither saw a test sample of any split
    for rows in seen["fit"]:
        assert len(rows) == data.n_obs - len(excluded) and not rows & (test_rows[0] | test_rows[1])
    assert json.loads((run / "metrics.json").read_text())["pretrain"]["holdout"]["n_excluded"] == len(excluded)

    seen["scaled"].clear()
    result = run_cli("evaluate", run, "--label", "cell_type", "--fractions", "0.5,1.0", "--seeds", "2",
                     "--test-splits", "2", "--supervised-steps", "3")  # inductive: the default for this run
    assert result.code == 0, result.err
    ids = data.obs_names.astype(str).to_numpy()
    assert [rows is not None for rows in seen["pca"]] == [True, True]  # PCA fitted once per split, on train rows
    for split, fit_rows in zip(splits, seen["pca"], strict=True):
        assert not set(ids[fit_rows]) & split and set(ids[fit_rows]) | split == set(ids)
    assert seen["scaled"]  # every scaler: random init (pre-training's samples) and supervised (a split's train)
    for rows in seen["scaled"]:
        assert not rows & test_rows[0] or not rows & test_rows[1]
        assert len(rows) < data.n_obs
    table = pd.read_csv(run / "evaluate" / "cell_type" / "efficiency.tsv", sep="\t")
    assert (table.protocol == "inductive").all()
    assert json.loads((run / "metrics.json").read_text())["evaluate"]["cell_type"]["protocol"] == "inductive"
    assert run_cli("report", run).code == 0
    assert "inductive" in (run / "report.html").read_text()


def test_pca_fitted_on_training_rows_ignores_the_test_rows():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(40, 8))
    train = np.arange(30)
    changed = raw.copy()
    changed[30:] = rng.normal(scale=100.0, size=(10, 8))  # the test rows change; the fit must not
    a = pca_features(raw, n_components=3, fit_rows=train)
    b = pca_features(changed, n_components=3, fit_rows=train)
    np.testing.assert_allclose(a[:30], b[:30], rtol=1e-5, atol=1e-5)
    assert not np.allclose(pca_features(raw, n_components=3)[:30], pca_features(changed, n_components=3)[:30])


@pytest.fixture
def rare_config(tmp_path, counts_h5ad, tiny_config) -> Path:
    """The tiny counts config on data with a class of two samples (``rare``)."""
    import yaml

    data = anndata.read_h5ad(counts_h5ad)
    data.obs["rare"] = ["b" if i < 2 else "a" for i in range(data.n_obs)]
    path = tmp_path / "rare.h5ad"
    data.write_h5ad(path)
    config = yaml.safe_load(tiny_config("counts", "vae", epochs=1).read_text())
    config["data"]["path"] = str(path)
    out = tmp_path / "rare.yaml"
    out.write_text(yaml.safe_dump(config))
    return out


def test_bad_input_one_line_errors_write_nothing(run_cli, tiny_config, rare_config, tmp_path):
    out = tmp_path / "zero"
    _one_line_error(run_cli("pretrain", tiny_config("counts", "vae"), "--out", out, "--seeds", "0"),
                    "--seeds must be at least 1")
    assert not out.exists()

    run = tmp_path / "run"
    assert run_cli("pretrain", rare_config, "--out", run, "--quiet").code == 0
    before = sorted(p.name for p in run.iterdir())
    _one_line_error(run_cli("evaluate", run, "--label", "cell_type", "--protocol", "inductive"),
                    "pre-trained on all samples")
    _one_line_error(run_cli("evaluate", run, "--label", "rare", "--test-splits", "3"),
                    "more than the smallest class allows")
    _one_line_error(run_cli("evaluate", run, "--label", "rare", "--protocol", "sideways"), "--protocol must be one of")
    _one_line_error(run_cli("evaluate", run, "--label", "rare", "--test-splits", "0"), "--test-splits must be")
    _one_line_error(run_cli("pretrain", rare_config, "--out", run, "--resume", "--holdout-splits", "1"),
                    "holdout splits differ")
    assert sorted(p.name for p in run.iterdir()) == before  # no embeddings, no evaluate folder, metrics untouched

    _one_line_error(run_cli("pretrain", rare_config, "--out", tmp_path / "r2", "--holdout-splits", "3",
                            "--holdout-label", "rare"), "more than the smallest class allows")
    assert not (tmp_path / "r2").exists()
