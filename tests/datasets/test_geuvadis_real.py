"""geuvadis-chr22 through the apt route into a temporary cache: the shape facts, plink2 QC agreement, PCs.

Skips only when the Debian archive cannot be reached (RegistryUnreachable); any other failure fails.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from biolatent.datasets import RegistryUnreachable
from biolatent.datasets.apt import fetch_apt
from biolatent.discover.genetics.pcs import genetic_pcs, ld_prune
from biolatent.discover.genetics.qc import QCConfig, hwe_pvalues, run_qc
from biolatent.io import read_table
from biolatent.io.genotypes import read_genotypes

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("BIOLATENT_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        yield fetch_apt("geuvadis-chr22", progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"Debian archive unreachable: {exc}")
    finally:
        mp.undo()


def test_facts(folder):
    geno = read_genotypes(folder / "geuvadis_chr22")
    expression = read_table(folder / "expression.tsv")
    covariates = read_table(folder / "covariates.tsv")
    assert geno.dosages.shape == (358, 85485)
    assert geno.variants.chrom.eq("chr22").all() and geno.variants.ref.str.len().eq(1).all()
    assert expression.shape == (358, 608) and expression.columns.str.startswith("ENSG").all()
    assert covariates.shape == (358, 53) and not expression.isna().any().any()
    assert list(expression.index) == geno.samples and set(covariates.index) == set(geno.samples)
    assert not np.isnan(geno.dosages).any() and set(np.unique(geno.dosages)) == {0.0, 1.0, 2.0}


def test_qc_equals_plink2_and_pcs_track_the_shipped_ones(folder, tmp_path):
    geno = read_genotypes(folder / "geuvadis_chr22")
    kept, report = run_qc(geno, QCConfig())
    assert report["n_variants_after"] == 84233 and report["variants_removed"]["hwe"] == 1252
    if shutil.which("plink2") is not None:
        proc = subprocess.run(["plink2", "--bfile", str(folder / "geuvadis_chr22"), "--hardy", "--threads", "2",
                               "--out", str(tmp_path / "h")], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout[-2000:]
        ref = pd.read_csv(tmp_path / "h.hardy", sep="\t")
        np.testing.assert_allclose(hwe_pvalues(geno.dosages), ref.P.to_numpy(), rtol=2e-5)
    pcs = genetic_pcs(ld_prune(kept), n_components=3)
    shipped = read_table(folder / "covariates.tsv").loc[pcs.index, "genotypes_1_1_svd_PC1"]
    assert abs(np.corrcoef(pcs.PC1, shipped)[0, 1]) > 0.8
