"""report.html from a synthetic run directory: sections, inlined figures, skipped columns, missing steps."""

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.umap_plot import plottable_columns
from biolatent.errors import DataError
from biolatent.evaluate.efficiency import run_label_efficiency, summarise, write_efficiency
from biolatent.report import build_report


def _figures(html: str) -> dict[str, bytes]:
    found = re.findall(r'<figure data-figure="([^"]+)">\s*<img alt="[^"]*" src="data:image/png;base64,([^"]+)"',
                       html)
    return {key: base64.b64decode(data) for key, data in found}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    import anndata

    run = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    n = 60
    cell_type = rng.choice(["T", "B", "NK"], n)
    centres = {"T": 0.0, "B": 4.0, "NK": 8.0}
    emb = np.stack([rng.normal(centres[c], 1.0, 8) for c in cell_type]).astype(np.float32)
    obs = pd.DataFrame({
        "cell_type": pd.Categorical(cell_type),
        "score": rng.normal(size=n),
        "sample_id": [f"cell-{i:03d}" for i in range(n)],
        "plate": ["p1"] * n,
    }, index=[f"c{i}" for i in range(n)])
    adata = anndata.AnnData(obs=obs)
    adata.obsm["X_biolatent"] = emb
    adata.write_h5ad(run / "embeddings.h5ad")
    (run / "config.yaml").write_text("method:\n  name: vae\ntrain:\n  epochs: 5  # <b>not bold</b>\n")
    (run / "provenance.json").write_text(json.dumps({"version": "0.1.0", "libraries": {"numpy": "2"}}))
    (run / "metrics.json").write_text(json.dumps({"pretrain": {"final_loss": 1.25}, "evaluate": {"label": "x"}}))
    pd.DataFrame({"epoch": range(5), "loss": np.linspace(3, 1, 5), "elbo": np.linspace(-3, -1, 5),
                  "time_s": np.arange(5.0)}).to_csv(run / "history.tsv", sep="\t", index=False)
    codes = pd.Categorical(cell_type).codes.astype(np.int64)
    per_seed = run_label_efficiency({"ssl": emb, "random_init": rng.normal(size=(n, 8))}, codes, 3,
                                    [0.1, 0.5, 1.0], [0, 1], probes=("linear",))
    (run / "evaluate" / "cell_type").mkdir(parents=True)
    write_efficiency(summarise(per_seed), run / "evaluate" / "cell_type" / "efficiency.tsv")
    (run / "evaluate" / "cell_type" / "evaluate.json").write_text(json.dumps(
        {"label": "cell_type", "classes": ["B", "NK", "T"], "labelled_per_fraction": {"0.1": 14, "1": 144}}))
    path = build_report(run)
    return run, path, path.read_text(encoding="utf-8")


def test_report_has_every_section_and_is_self_contained(full_run):
    run, path, html = full_run
    assert path == run / "report.html"
    for key in ("config", "provenance", "metrics", "training", "embeddings", "efficiency-cell_type"):
        assert f'<section id="{key}" data-status="ok">' in html
    assert "Label efficiency: cell_type" in html and "0.1 = 14" not in html and "10% = 14" in html
    assert "Not run" not in html
    assert 'src="http' not in html and "href=\"http" not in html and "<link" not in html
    assert "<script" not in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html  # config shown, escaped
    assert "libraries.numpy" in html and "final_loss" in html and "1.25" in html


def test_report_inlines_one_png_per_expected_figure(full_run):
    figures = _figures(full_run[2])
    assert set(figures) == {"training-curves", "spectrum", "umap-cell_type", "umap-score", "efficiency"}
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") for data in figures.values())
    assert "UMAP coloured by sample_id" not in full_run[2]


def test_report_headline_table(full_run):
    html = full_run[2]
    assert "Balanced accuracy at 10% of the training labels" in html
    assert re.search(r"<td>ssl</td><td>linear</td><td>[0-9.]+</td>", html)
    assert re.search(r"<td>random_init</td><td>linear</td>", html)
    assert "effective rank" in html


def test_plottable_columns_skip_ids_and_constants():
    obs = pd.DataFrame({
        "group": ["a", "b"] * 10, "flag": [True, False] * 10, "score": np.linspace(0, 1, 20),
        "id": [f"s{i}" for i in range(20)], "index_number": range(20), "const": 1.0,
        "dose": [1, 2, 3, 4] * 5,
    })
    assert plottable_columns(obs) == [("group", "categorical"), ("flag", "categorical"),
                                      ("score", "numeric"), ("dose", "categorical")]  # dose: coded classes


def test_report_with_only_config_names_missing_steps(tmp_path):
    (tmp_path / "config.yaml").write_text("method:\n  name: simclr\n")
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert '<section id="config" data-status="ok">' in html and "simclr" in html
    for key in ("provenance", "metrics", "training", "embeddings", "efficiency"):
        assert f'<section id="{key}" data-status="missing">' in html
    assert "biolatent pretrain" in html and "biolatent embed" in html and "biolatent evaluate" in html
    assert "data:image/png;base64," not in html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "report.html"]  # no temp files


def test_corrupt_piece_is_reported_not_fatal(tmp_path):
    (tmp_path / "metrics.json").write_text("{not json")
    (tmp_path / "evaluate" / "age").mkdir(parents=True)
    (tmp_path / "evaluate" / "age" / "efficiency.tsv").write_text("a\tb\n1\t2\n")
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert '<section id="metrics" data-status="error">' in html and "not valid JSON" in html
    assert '<section id="efficiency-age" data-status="error">' in html


def test_missing_run_dir_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="run directory not found"):
        build_report(tmp_path / "nope")


@pytest.mark.parametrize("collapsed", [True, False])
def test_collapsed_pretraining_shows_a_warning_box(tmp_path, collapsed: bool) -> None:
    flags = ["effective rank 1.01 < 1.5", "mean pairwise cosine 1.0000 > 0.99"] if collapsed else []
    collapse = {"effective_rank": 1.01 if collapsed else 7.3, "collapsed": collapsed, "flags": flags}
    (tmp_path / "metrics.json").write_text(json.dumps({"pretrain": {"final_loss": 4.03, "collapse": collapse}}))
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert ('id="collapse-warning"' in html) is collapsed
    if collapsed:
        box = html[html.index('id="collapse-warning"'):html.index("</div>", html.index('id="collapse-warning"'))]
        assert "effective rank 1.01 &lt; 1.5; mean pairwise cosine 1.0000 &gt; 0.99" in box
        assert html.index('id="collapse-warning"') < html.index('<section id="config"')  # above every section


def test_paired_runs_get_a_pairing_section_and_others_do_not(tmp_path, full_run):
    _, _, html = full_run
    assert 'id="pairing"' not in html
    pairing = {"n_images": 12, "n_paired": 10, "n_dropped": 2, "parts": {
        "genotypes": {"source": "cohort/geno", "n_features": 9, "n_constant_dropped": 1, "n_matched": 11,
                      "n_images_without": 1, "examples_images_without": ["s00"]},
        "pgs": {"source": "pgs.tsv", "n_features": 2, "n_constant_dropped": 0, "n_matched": 11,
                "n_images_without": 1, "examples_images_without": ["s11"]}}}
    (tmp_path / "metrics.json").write_text(json.dumps({"pretrain": {
        "final_loss": 2.0, "final_accuracy_genotypes": 0.625, "pairing": pairing}}))
    html = build_report(tmp_path).read_text(encoding="utf-8")
    section = html[html.index('<section id="pairing" data-status="ok">'):]
    section = section[:section.index("</section>")]
    assert "paired 10 of 12 images with genotypes (9 features), pgs (2 features)" in section
    assert "1 without genotypes (e.g. s00)" in section and "cohort/geno" in section and "0.625" in section
