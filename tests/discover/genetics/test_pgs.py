"""Polygenic scores against a hand computation and against ``plink2 --score`` on the same files."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.pgs import polygenic_score, read_weights
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes
from biolatent.io.genotypes import write_plink

RNG = np.random.default_rng(0)
N, M = 50, 8
DOSAGES = RNG.binomial(2, 0.3, (N, M)).astype(np.float32)
DOSAGES[3, 2] = np.nan
GENO = Genotypes(DOSAGES, [f"s{i}" for i in range(N)], pd.DataFrame({
    "chrom": "1", "pos": np.arange(1, M + 1) * 100, "id": [f"rs{j}" for j in range(M)], "ref": "A", "alt": "G"}))
WEIGHTS = pd.DataFrame({"ID": ["rs0", "rs2", "rs5", "rs9"], "A1": ["G", "A", "G", "G"], "BETA": [0.5, -1.0, 2.0, 3.0]})


def test_by_hand():
    score = polygenic_score(GENO, WEIGHTS)
    d = DOSAGES.astype(float)
    mean2 = np.nanmean(d[:, 2])
    expected = 0.5 * d[:, 0] - 1.0 * (2.0 - np.where(np.isnan(d[:, 2]), mean2, d[:, 2])) + 2.0 * d[:, 5]
    np.testing.assert_allclose(score.to_numpy(), expected, rtol=1e-12)
    assert score.attrs == {"n_weights": 4, "n_used": 3, "n_absent": 1, "n_allele_mismatch": 0}


def test_equals_plink2_score(tmp_path):
    if shutil.which("plink2") is None:
        pytest.skip("plink2 is not on PATH")
    prefix = write_plink(GENO, tmp_path / "g")
    WEIGHTS.to_csv(tmp_path / "w.tsv", sep="\t", index=False)
    subprocess.run(["plink2", "--bfile", str(prefix), "--score", str(tmp_path / "w.tsv"), "1", "2", "3", "header",
                    "cols=+scoresums", "--out", str(tmp_path / "out")], check=True, capture_output=True)
    ref = pd.read_csv(tmp_path / "out.sscore", sep="\t")
    ours = polygenic_score(GENO, read_weights(tmp_path / "w.tsv"))
    np.testing.assert_allclose(ours.loc[ref["IID"].astype(str)].to_numpy(), ref["SCORE1_SUM"], rtol=1e-5, atol=1e-5)


def test_errors(tmp_path):
    with pytest.raises(DataError, match="none of the 1 weighted variants"):
        polygenic_score(GENO, pd.DataFrame({"ID": ["rs1"], "A1": ["T"], "BETA": [1.0]}))
    (tmp_path / "bad.tsv").write_text("ID\tBETA\nrs1\t1\n")
    with pytest.raises(DataError, match="lack the column"):
        read_weights(tmp_path / "bad.tsv")
