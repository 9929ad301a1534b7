"""Clusters of an embeddings file: labels, their stability, and how every metadata column goes with them.

Embeddings (``biolatent.embed.read_embeddings``) -> clusters (``discover.clusters``: Leiden, k-means or
GMM) -> resampling stability (ARI; Lange et al. 2004, Hennig 2007) -> chi-square / Kruskal-Wallis tests of
every ``obs`` column with Benjamini-Hochberg q-values (``discover.associations``). Writes into ``out_dir``:
``clusters.tsv`` (id, cluster), ``subtypes.tsv``, ``associations.tsv`` (column test statistic p q effect
...), ``metrics.json`` (section ``clusters``: sizes, stability), ``clusters_<projection>.png``,
``associations.png``, ``config.yaml`` and ``provenance.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from biolatent import provenance
from biolatent.embed import EMBEDDING_KEY
from biolatent.errors import DataError
from biolatent.rundir import atomic_path, update_json, write_json, write_text

CLUSTERS_FILE = "clusters.tsv"
SUBTYPES_FILE = "subtypes.tsv"
ASSOCIATIONS_FILE = "associations.tsv"
ALPHA = 0.05


def _write_tsv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)


def _method_params(method: str, k: int | None, n_neighbors: int, resolution: float) -> dict[str, Any]:
    from biolatent.discover.clusters import CLUSTERERS

    if method not in CLUSTERERS:
        raise DataError(f"unknown clustering method {method!r} (choose from {', '.join(CLUSTERERS)})")
    if method == "leiden":
        return {"n_neighbors": n_neighbors, "resolution": resolution}
    if k is None:
        raise DataError(f"method {method!r} needs the number of clusters k")
    return {"k": k}


def check_cluster_method(method: str, k: int | None) -> None:
    """DataError for an unknown clustering method or a missing k, before any work."""
    _method_params(method, k, 15, 1.0)


def run_clusters(
    embeddings_path: str | Path,
    out_dir: str | Path,
    *,
    method: str = "leiden",
    k: int | None = None,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    n_repeats: int = 10,
    subsample: float = 0.8,
    polygenic_score: str | pd.Series | None = None,
    projection: Literal["umap", "pca"] = "umap",
    seed: int = 0,
    key: str = EMBEDDING_KEY,
    say: Callable[[str], object] = print,
) -> Path:
    """Cluster the samples of ``embeddings_path`` and describe the clusters; return the path of clusters.tsv.

    ``polygenic_score`` names an ``obs`` column tested as numeric whatever its type, or is a Series of scores
    indexed by sample id (e.g. ``discover.genetics.pgs.polygenic_score``).
    """
    from biolatent.discover.associations import cluster_associations, subtypes_table
    from biolatent.discover.cluster_plots import write_cluster_figures
    from biolatent.discover.clusters import cluster, cluster_stability
    from biolatent.embed import read_embeddings

    params = _method_params(method, k, n_neighbors, resolution)
    out_dir = Path(out_dir)
    adata = read_embeddings(embeddings_path, key=key)
    x = np.asarray(adata.obsm[key], dtype=np.float32)
    obs = adata.obs.copy()
    obs.index = obs.index.map(str)
    if obs.index.has_duplicates:
        raise DataError(f"{embeddings_path} has duplicated sample ids, e.g. {obs.index[obs.index.duplicated()][0]!r}")
    say(f"{x.shape[0]} samples x {x.shape[1]} dimensions; clustering with {method} {params}")
    labels = cluster(x, method, seed=seed, **params)
    sizes = np.bincount(labels).tolist()
    say(f"{len(sizes)} clusters, sizes {sizes}")
    stability = cluster_stability(x, method, n_repeats=n_repeats, subsample=subsample, seed=seed, **params)
    say(f"stability: subsample ARI {stability['subsample_ari_mean']:.3f} ± {stability['subsample_ari_sd']:.3f}, "
        f"seed ARI {stability['seed_ari_mean']:.3f} ± {stability['seed_ari_sd']:.3f}")
    associations = cluster_associations(labels, obs, polygenic_score=polygenic_score)
    subtypes = subtypes_table(labels, obs)

    settings = {"embeddings": str(embeddings_path), "key": key, "method": method, **params,
                "n_repeats": n_repeats, "subsample": subsample,
                "polygenic_score": polygenic_score if not isinstance(polygenic_score, pd.Series)
                else str(polygenic_score.name),
                "projection": projection, "seed": seed}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "config.yaml", yaml.safe_dump({"clusters": settings}, sort_keys=False))
    write_json(out_dir / "provenance.json", provenance.collect("discover", **settings))
    clusters_path = out_dir / CLUSTERS_FILE
    _write_tsv(pd.DataFrame({"id": obs.index, "cluster": labels}), clusters_path)
    _write_tsv(subtypes, out_dir / SUBTYPES_FILE)
    _write_tsv(associations, out_dir / ASSOCIATIONS_FILE)
    figures = write_cluster_figures(out_dir, x, labels, associations, projection=projection, seed=seed)
    significant = associations.loc[associations["q"] < ALPHA, "column"].tolist()
    update_json(out_dir / "metrics.json", "clusters", {
        **settings, "n_samples": int(x.shape[0]), "n_clusters": len(sizes), "cluster_sizes": sizes,
        "stability": stability, "n_tests": len(associations), "significant_columns": significant,
        "skipped_columns": associations.attrs.get("skipped", {}), "figures": [p.name for p in figures],
    })
    for row in associations.itertuples():
        say(f"{row.column}: {row.test} p = {row.p:.3g}, q = {row.q:.3g}, {row.effect_measure} = {row.effect:.3f}")
    say(f"clusters -> {clusters_path}")
    return clusters_path
