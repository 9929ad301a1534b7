"""Issue 12 from the command line: the example configs in configs/spatial pre-train on a tiny simulated tissue,
``evaluate --expression`` writes every output with every representation, the report shows the maps, and bad
requests are one-line errors that write nothing."""

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "train.epochs=1", "--set", "train.batch_size=32", "--set", "data.image_size=16", "--quiet"]


@pytest.fixture(scope="module")
def tissue(tmp_path_factory) -> Path:
    from biolatent.data.simulate.spatial import write_spatial_dataset

    folder = tmp_path_factory.mktemp("spatial") / "tissue"
    write_spatial_dataset(folder, n_spots=150, n_genes=40, seed=0)
    return folder


@pytest.mark.parametrize("config", ["clip", pytest.param("mae", marks=pytest.mark.slow)])
def test_example_configs_pretrain_on_tiny_tissue(run_cli, tissue, tmp_path, config):
    extra = ["--set", "model.patch_size=4"] if config == "mae" else []
    result = run_cli("pretrain", ROOT / "configs" / "spatial" / f"{config}.yaml", "--out", tmp_path / "run",
                     "--set", f"data.path={tissue}", *TINY, *extra)
    assert result.code == 0, result.err
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.slow  # a real training run; see issue 16 part 8 (fast set under 3 minutes)
def test_evaluate_expression_end_to_end(run_cli, tissue, tmp_path):
    run = tmp_path / "run"
    assert run_cli("pretrain", ROOT / "configs" / "spatial" / "clip.yaml", "--out", run, "--set",
                   f"data.path={tissue}", *TINY).code == 0
    result = run_cli("evaluate", run, "--expression", "--genes", "12", "--fractions", "0.2,1.0", "--seeds", "2",
                     "--supervised-steps", "3")
    assert result.code == 0, result.err
    folder = run / "evaluate" / "expression"
    assert result.out.strip().endswith(str(folder / "efficiency.tsv"))
    assert "spatial split:" in result.err and "about" in result.err  # progress with an ETA
    efficiency = pd.read_csv(folder / "efficiency.tsv", sep="\t")
    assert set(efficiency["metric"]) == {"mean_gene_pearson_r"}
    pairs = set(zip(efficiency.representation, efficiency.probe, strict=True))
    assert pairs == {("ssl", "linear"), ("ssl", "knn"), ("random_init", "linear"), ("random_init", "knn"),
                     ("pca", "linear"), ("pca", "knn"), ("retrieval", "knn"), ("supervised", "finetune")}
    below = efficiency[efficiency.fraction < 1]  # at 100% one seed and one split leave one value: no interval
    assert below["ci_low"].ge(-1).all() and below["ci_high"].le(1).all()
    whole = efficiency[efficiency.fraction == 1]
    assert whole["ci_low"].isna().all() and (whole.n_seeds == 1).all()
    genes = pd.read_csv(folder / "expression_prediction.tsv", sep="\t")
    assert list(genes.columns) == ["representation", "probe", "fraction", "gene", "pearson_r", "n_seeds"]
    assert genes.gene.nunique() == 12 and len(genes) == 8 * 2 * 12
    for name in ("efficiency.png", "expression_maps.png", "efficiency_per_seed.tsv", "evaluate.json"):
        assert (folder / name).is_file(), name
    from biolatent.rundir import read_json

    entry = read_json(run / "metrics.json")["evaluate"]["expression"]
    split = entry["split"]
    assert split["n_test"] + split["n_train"] + split["n_buffer"] == 150 and split["n_buffer"] > 0
    assert entry["headline"]["metric"] == "mean_gene_pearson_r" and entry["headline"]["fraction"] == 0.2
    assert len(entry["supervised"]["runs"]) == 4
    report = run_cli("report", run)
    assert report.code == 0, report.err
    html = (run / "report.html").read_text()
    assert "Label efficiency: expression" in html and "held-out tissue regions" in html
    assert "Measured vs predicted expression" in html


def test_expression_needs_a_spatial_run_and_one_target(run_cli, counts_h5ad, tmp_path):
    run = tmp_path / "counts-run"
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{modality: counts, path: {counts_h5ad}}}\nmethod: {{name: vae}}\n"
                      "model: {name: mlp, hidden_dims: [16], out_dim: 4}\ntrain: {epochs: 1, batch_size: 32}\n")
    assert run_cli("pretrain", config, "--out", run, "--quiet").code == 0
    before = sorted(p.name for p in run.iterdir())
    result = run_cli("evaluate", run, "--expression")
    assert result.code != 0 and "needs a spatial run" in result.err and "Traceback" not in result.err
    both = run_cli("evaluate", run, "--expression", "--label", "cell_type")
    assert both.code != 0 and "either --label COLUMN or --expression" in both.err
    neither = run_cli("evaluate", run)
    assert neither.code != 0 and "either --label COLUMN or --expression" in neither.err
    assert sorted(p.name for p in run.iterdir()) == before


def test_bad_spatial_input_writes_nothing(run_cli, tissue, tmp_path):
    import shutil

    from PIL import Image

    broken = tmp_path / "broken"
    shutil.copytree(tissue, broken)
    Image.new("LA", (50, 50), color=(200, 255)).save(broken / "spatial" / "tissue_hires_image.png")
    result = run_cli("pretrain", ROOT / "configs" / "spatial" / "clip.yaml", "--out", tmp_path / "run", "--set",
                     f"data.path={broken}", *TINY)
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert result.code != 0 and len(errors) == 1 and "2 channels" in errors[0] and "Traceback" not in result.err
    assert not (tmp_path / "run").exists()
