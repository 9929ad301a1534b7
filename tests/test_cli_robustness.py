"""Issue 15 part 4 through the CLI: `biolatent robustness RUN --label` (cross_site, site_leakage, label_noise) on a
volume cohort with a site column and an expression matrix with a batch column, `robustness ablate`, and the bad
inputs (one-line errors, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from biolatent.evaluate.robustness import ROBUSTNESS_COLUMNS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_VOLUME = ["data.image_size=16", "data.group_column=", "train.epochs=1", "train.batch_size=4",
               "train.warmup_epochs=0", "model.widths=[4, 8]", "model.blocks=[1, 1]"]
CHECKS = {"cross_site", "site_leakage", "label_noise"}


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _check_table(path: Path, sites: set[str]) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", dtype={"setting": str})
    assert list(table.columns) == ROBUSTNESS_COLUMNS
    assert set(table["check"]) == CHECKS
    cross = table[table["check"] == "cross_site"]
    assert set(cross["setting"]) == sites
    assert set(cross["representation"]) == {"ssl", "random_init", "pca", "supervised"}
    leak = table[table["check"] == "site_leakage"]
    assert set(leak["representation"]) == {"ssl", "random_init", "pca"} and set(leak["setting"]) == {"all"}
    noise = table[table["check"] == "label_noise"]
    assert set(noise["setting"]) == {"0", "0.2", "0.4"}
    assert set(noise["representation"]) == {"ssl", "random_init", "pca", "supervised"}
    plain = table[~table["metric"].str.endswith("_drop")]
    assert set(plain["metric"]) == {"balanced_accuracy", "auroc"}
    scored = plain["mean"].dropna()
    assert len(scored) and scored.between(0, 1).all()
    drops = noise[noise["metric"].str.endswith("_drop") & (noise["setting"] == "0")]
    assert len(drops) and (drops["mean"] == 0).all()  # paired: no noise, no drop
    return table


@pytest.mark.slow  # ~35 s on 2 cores, most of it the report's UMAP
def test_expression_matrix_with_a_batch_column(run_cli, tiny_config, tmp_path):
    run = tmp_path / "run"
    assert run_cli("pretrain", tiny_config("counts", "simclr", epochs=1), "--out", run, "--quiet",
                   "--seeds", "2").code == 0
    result = run_cli("robustness", run, "--label", "cell_type", "--site-column", "batch", "--noise", "0.2,0.4",
                     "--seeds", "2", "--supervised-steps", "3")
    assert result.code == 0, result.err
    assert result.out.strip() == str(run / "robustness.tsv")
    _check_table(run / "robustness.tsv", {"batch0", "batch1"})
    per_seed = pd.read_csv(run / "robustness_per_seed.tsv", sep="\t")
    assert set(per_seed["seed"]) == {0, 1}
    assert set(per_seed[per_seed.representation == "ssl"].pretrain_seed) == {0, 1}  # every pre-training seed
    assert per_seed[per_seed.representation.isin(["pca", "supervised"])].pretrain_seed.isna().all()
    settings = json.loads((run / "robustness.json").read_text())
    assert settings["site_column"] == "batch" and settings["noise"] == [0.0, 0.2, 0.4]
    assert json.loads((run / "metrics.json").read_text())["robustness"]["label"] == "cell_type"

    assert run_cli("report", run).code == 0
    html = (run / "report.html").read_text()
    for key in ("robustness-cross-site", "robustness-site-leakage", "robustness-label-noise"):
        assert key in html, key


@pytest.fixture(scope="module")
def volume_cohort(tmp_path_factory) -> Path:
    from biolatent.anomaly.volumes import write_brain_set
    from biolatent.data.simulate.brain import ellipsoid_template

    root = tmp_path_factory.mktemp("robust") / "brain"
    write_brain_set(root, 12, size=32, lesions=True, lesion_fraction=0.4, sites=2, seed=0,
                    template=ellipsoid_template())
    return root


@pytest.mark.slow  # a real training run; see issue 16 part 8 (fast set under 3 minutes)
def test_volume_cohort_with_a_site_column(run_cli, volume_cohort, tmp_path):
    run = tmp_path / "run"
    result = run_cli("pretrain", CONFIGS / "volume" / "brain_simclr.yaml", "--out", run, "--quiet",
                     *_sets([f"data.path={volume_cohort}", *TINY_VOLUME]))
    assert result.code == 0, result.err
    meta = pd.read_csv(volume_cohort / "meta.tsv", sep="\t")
    result = run_cli("robustness", run, "--label", "is_anomaly", "--noise", "0.2,0.4", "--seeds", "2",
                     "--supervised-steps", "2")  # the site column is found by its name
    assert result.code == 0, result.err
    _check_table(run / "robustness.tsv", set(meta["site"].astype(str)))


def test_bad_input_is_a_one_line_error_and_writes_nothing(run_cli, tiny_config, tmp_path, counts_h5ad):
    import anndata
    import yaml

    data = anndata.read_h5ad(counts_h5ad)
    data.obs["one_site"] = "s1"
    path = tmp_path / "counts.h5ad"
    data.write_h5ad(path)
    config = yaml.safe_load(tiny_config("counts", "simclr", epochs=1).read_text())
    config["data"]["path"] = str(path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert run_cli("pretrain", tmp_path / "c.yaml", "--out", run, "--quiet").code == 0
    before = sorted(p.name for p in run.iterdir())

    base = ["robustness", run, "--label", "cell_type"]
    run_cli(*base, "--site-column", "one_site").expect_error("single site", "one_site")
    run_cli(*base, "--noise", "1.0").expect_error("--noise", "[0, 1)")
    run_cli(*base, "--noise", "-0.1").expect_error("--noise", "[0, 1)")
    run_cli(*base, "--noise", "a,b").expect_error("--noise must be numbers")
    run_cli(*base, "--site-column", "nowhere").expect_error("--site-column", "not found")
    run_cli(*base, "--fraction", "0").expect_error("--fraction")
    run_cli("robustness", run, "--label", "library_size", "--noise", "0.2").expect_error("regression target")
    assert sorted(p.name for p in run.iterdir()) == before  # no robustness.tsv, no embeddings, metrics untouched
    assert not (run / "robustness.tsv").exists()


def test_ablate_pretrains_one_variant_per_view_family(run_cli, tiny_config, tmp_path):
    out = tmp_path / "ablation"
    config = tiny_config("counts", "simclr", epochs=1)
    result = run_cli("robustness", "ablate", config, "--label", "cell_type", "--out", out, "--families",
                     "gene_dropout,thinning", "--seeds", "2")
    assert result.code == 0, result.err
    table = pd.read_csv(out / "robustness.tsv", sep="\t")
    assert list(table.columns) == ROBUSTNESS_COLUMNS
    assert set(table["check"]) == {"augmentation_ablation"} and set(table["representation"]) == {"ssl"}
    assert set(table["setting"]) == {"all_views", "no_gene_dropout", "no_thinning"}
    settings = json.loads((out / "robustness.json").read_text())
    assert settings["variants"]["no_gene_dropout"] == {"gene_dropout": 0.0}
    for variant in ("all_views", "no_gene_dropout", "no_thinning"):  # same seed, same budget; only the views differ
        saved = yaml_load(out / variant / "config.yaml")
        assert saved["train"] == settings["train"]
    assert yaml_load(out / "no_thinning" / "config.yaml")["views"]["keep_range"] == [1.0, 1.0]

    run_cli("robustness", "ablate", config, "--label", "cell_type", "--out", tmp_path / "x", "--families",
            "crop").expect_error("unknown view family crop", "gene_dropout")
    run_cli("robustness", "ablate", tiny_config("counts", "vae"), "--label", "cell_type", "--out",
            tmp_path / "x").expect_error("uses no augmentation views")
    assert not (tmp_path / "x").exists()


def yaml_load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())
