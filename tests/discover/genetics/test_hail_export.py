"""``biolatent export-hail``: latent phenotypes as MatrixTable column fields, read back with Hail and compared
with the phenotypes computed in-process for the matching sample ids (unmatched ids: missing, and reported)."""

from __future__ import annotations

import json
import subprocess

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hail_checks import write_toy_plink

from biolatent.discover.genetics.hail_engine import find_hail_python, hail_available
from biolatent.discover.phenotypes import latent_phenotypes

READ_BACK = """
import json, sys
import hail as hl
hl.init(master="local[1]", quiet=True, log="/dev/null")
out = {}
for path in sys.argv[1:]:
    mt = hl.read_matrix_table(path)
    cols = mt.cols().flatten().to_pandas()
    gt = mt.annotate_rows(alt=hl.agg.sum(mt.GT.n_alt_alleles())).rows().to_pandas()
    out[path] = {"cols": json.loads(cols.to_json(orient="records", double_precision=15)),
                 "globals": json.loads(hl.eval(hl.json(mt.globals))),
                 "alt_sums": gt["alt"].tolist(), "variants": gt["rsid"].tolist()}
print(json.dumps(out))
"""


def _read_back(*paths) -> dict:
    proc = subprocess.run([find_hail_python() or "", "-c", READ_BACK, *map(str, paths)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _embeddings(path, ids, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(ids), 6)).astype(np.float32)
    adata = ad.AnnData(obs=pd.DataFrame(index=ids))
    adata.obsm["X_biolatent"] = x
    adata.write_h5ad(path)
    return x


@pytest.fixture
def toy(tmp_path):
    return write_toy_plink(tmp_path)


def test_export_refuses_bad_input_in_one_line_and_writes_nothing(run_cli, toy, tmp_path):
    ids = [f"x{i}" for i in range(20)]  # no id in common with the PLINK samples s0..s149
    _embeddings(tmp_path / "emb.h5ad", ids)
    out = tmp_path / "out.mt"
    run_cli("export-hail", tmp_path / "emb.h5ad", "--out", out).expect_error("--genotypes", "--matrix-table")
    run_cli("export-hail", tmp_path / "emb.h5ad", "--out", out, "--genotypes", toy.prefix,
            "--field", "1bad").expect_error("--field")
    run_cli("export-hail", tmp_path / "emb.h5ad", "--out", out, "--genotypes", tmp_path / "nope").expect_error(
        "PLINK file set", "nope.bed")
    run_cli("export-hail", tmp_path / "emb.h5ad", "--out", out, "--genotypes", toy.prefix).expect_error(
        "no sample of", "x0", "s0")
    run_cli("export-hail", tmp_path / "emb.h5ad", "--out", out, "--matrix-table", tmp_path).expect_error(
        "not a Hail MatrixTable")
    assert not out.exists() and not list(tmp_path.glob(".out.mt.*"))


@pytest.mark.slow
def test_exported_column_fields_equal_the_latent_phenotypes(run_cli, toy, tmp_path):
    reason = hail_available()
    if reason:
        pytest.skip(reason)
    ids = [f"s{i}" for i in range(10, 160)]  # s0..s9: genotyped only; s150..s159: embedded only
    x = _embeddings(tmp_path / "emb.h5ad", ids)
    expected = latent_phenotypes(x.astype(np.float64), ids, decorrelate="pca", n_components=4)
    first = tmp_path / "latent.mt"
    result = run_cli("export-hail", tmp_path / "emb.h5ad", "--out", first, "--genotypes", toy.prefix,
                     "--n-components", "4")
    assert result.code == 0, result.err
    assert "140 of 150 MatrixTable columns have phenotypes (10 without" in result.err + result.out
    assert "10 phenotyped samples not in the MatrixTable" in result.err + result.out

    # annotate the MatrixTable just written with a second field from a table (a discover-style phenotypes.tsv)
    table = pd.DataFrame({"id": ["s0", "s1", "s2", "zz"], "score": [0.5, np.nan, -1.25, 3.0]})
    table.to_csv(tmp_path / "phenotypes.tsv", sep="\t", index=False)
    second = tmp_path / "both.mt"
    result = run_cli("export-hail", tmp_path / "phenotypes.tsv", "--out", second, "--matrix-table", first,
                     "--field", "clinical")
    assert result.code == 0, result.err
    # the field name is taken: one line, nothing written
    taken = tmp_path / "taken.mt"
    run_cli("export-hail", tmp_path / "phenotypes.tsv", "--out", taken, "--matrix-table", first).expect_error(
        "already has a column field or global named 'biolatent'")
    assert not taken.exists() and not list(tmp_path.glob(".taken.mt.*"))

    back = _read_back(first, second)
    cols = pd.DataFrame(back[str(second)]["cols"]).set_index("s")
    assert sorted(cols.index) == sorted(toy.phenotypes.index)  # every PLINK sample (mt.cols() is sorted by id)
    for trait in expected.columns:
        np.testing.assert_allclose(cols.loc[expected.index[:140], f"biolatent.{trait}"],
                                   expected.loc[expected.index[:140], trait], rtol=1e-12)
    assert cols.loc[[f"s{i}" for i in range(10)], "biolatent.Z0"].isna().all()
    assert cols.loc["s0", "clinical.score"] == 0.5 and cols.loc["s2", "clinical.score"] == -1.25
    assert np.isnan(cols.loc["s1", "clinical.score"]) and cols["clinical.score"].notna().sum() == 2
    meta = back[str(second)]["globals"]
    assert meta["biolatent_export"]["n_matched"] == 140 and meta["biolatent_export"]["traits"] == list(expected.columns)
    assert meta["clinical_export"]["n_only_phenotypes"] == 1
    # rows and entries are the PLINK file set's: its variants and the allele counts the GWAS regresses on
    assert back[str(second)]["variants"] == [f"rs{j}" for j in range(toy.dosages.shape[1])]
    np.testing.assert_array_equal(back[str(second)]["alt_sums"], toy.dosages.sum(axis=0))
