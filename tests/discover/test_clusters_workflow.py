"""End to end: embeddings.h5ad -> clusters, stability, associations, figures, run files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import adjusted_rand_score

from biolatent.discover import cluster_plots
from biolatent.embed import write_embeddings
from biolatent.errors import DataError
from biolatent.workflows.discover_clusters import run_clusters

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def embeddings_file(tmp_path):
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1, 2], 40)
    centres = rng.normal(scale=8.0, size=(3, 6))
    x = (centres[truth] + rng.normal(size=(120, 6))).astype(np.float32)
    obs = pd.DataFrame({
        "cell_type": np.array(["T", "B", "NK"])[truth],
        "batch": rng.choice(["b1", "b2"], 120),
        "age": rng.normal(40, 5, 120) + 10 * truth,
        "barcode": [f"AC{i:04d}" for i in range(120)],
    }, index=[f"cell{i}" for i in range(120)])
    path = write_embeddings(tmp_path / "embeddings.h5ad", x, obs, {"command": "embed"})
    return path, truth


def test_run_clusters_writes_every_output(embeddings_file, tmp_path):
    path, truth = embeddings_file
    out = tmp_path / "discover"
    messages: list[str] = []
    result = run_clusters(path, out, n_repeats=3, projection="pca", say=messages.append)
    assert result == out / "clusters.tsv"

    clusters = pd.read_csv(out / "clusters.tsv", sep="\t")
    assert list(clusters.columns) == ["id", "cluster"] and clusters["id"].tolist() == [f"cell{i}" for i in range(120)]
    assert adjusted_rand_score(truth, clusters["cluster"]) > 0.95

    associations = pd.read_csv(out / "associations.tsv", sep="\t").set_index("column")
    assert set(associations.index) == {"cell_type", "batch", "age"}  # barcode is an id
    assert associations.loc["cell_type", "test"] == "chi2" and associations.loc["cell_type", "q"] < 1e-20
    assert associations.loc["cell_type", "effect"] == pytest.approx(1.0)
    assert associations.loc["age", "test"] == "kruskal" and associations.loc["age", "q"] < 1e-10
    assert associations.loc["batch", "q"] > 0.05

    subtypes = pd.read_csv(out / "subtypes.tsv", sep="\t")
    assert subtypes["n"].tolist() == [40, 40, 40] and (subtypes["cell_type_top_share"] == 1.0).all()

    metrics = json.loads((out / "metrics.json").read_text())["clusters"]
    assert metrics["n_clusters"] == 3 and metrics["cluster_sizes"] == [40, 40, 40]
    assert metrics["stability"]["subsample_ari_mean"] > 0.9 and metrics["stability"]["n_repeats"] == 3
    assert set(metrics["significant_columns"]) == {"cell_type", "age"}
    assert yaml.safe_load((out / "config.yaml").read_text())["clusters"]["method"] == "leiden"
    assert json.loads((out / "provenance.json").read_text())["command"] == "discover"
    for name in ("clusters_pca.png", "associations.png"):
        assert (out / name).read_bytes().startswith(PNG)
    assert any("3 clusters" in m for m in messages)
    assert not list(out.glob(".*.tmp"))


def test_run_clusters_kmeans_needs_k_and_rejects_unknown_methods(embeddings_file, tmp_path):
    path, _ = embeddings_file
    with pytest.raises(DataError, match="needs the number of clusters k"):
        run_clusters(path, tmp_path / "o", method="kmeans", say=lambda _: None)
    with pytest.raises(DataError, match="unknown clustering method"):
        run_clusters(path, tmp_path / "o", method="hdbscan", say=lambda _: None)
    assert not (tmp_path / "o").exists()


def test_scatter_uses_the_report_umap_and_one_colour_per_cluster(monkeypatch, tmp_path):
    calls = {}

    def fake_umap(embeddings, max_points, seed):
        calls["seed"] = seed
        return np.asarray(embeddings)[:, :2], np.arange(len(embeddings))

    monkeypatch.setattr(cluster_plots, "umap_coordinates", fake_umap)
    x = np.random.default_rng(0).normal(size=(30, 4))
    labels = np.repeat([0, 1, 2], 10)
    figure = cluster_plots.cluster_scatter_figure(x, labels, projection="umap", seed=4)
    ax = figure.axes[0]
    assert calls["seed"] == 4 and ax.get_xlabel() == "UMAP 1"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1", "2"]
    paths = cluster_plots.write_cluster_figures(tmp_path, x, labels, pd.DataFrame(), projection="umap")
    assert [p.name for p in paths] == ["clusters_umap.png"] and paths[0].read_bytes().startswith(PNG)
