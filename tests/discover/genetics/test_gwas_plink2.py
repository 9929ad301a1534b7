"""linear_gwas against plink2 --glm on the same PLINK files: covariates, missing calls, missing phenotypes."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.gwas import linear_gwas
from biolatent.io.genotype_matrix import Genotypes

pytestmark = pytest.mark.slow


def _plink_table(frame: pd.DataFrame, path) -> None:
    out = frame.copy()
    out.insert(0, "IID", out.index)
    out.insert(0, "#FID", out.index)
    out.to_csv(path, sep="\t", index=False, na_rep="NA")


def test_linear_gwas_equals_plink2_glm(tmp_path):
    if shutil.which("plink2") is None:
        pytest.skip("plink2 is not on PATH: the comparison with plink2 --glm cannot run")
    from bed_reader import to_bed

    rng = np.random.default_rng(42)
    n, m = 200, 500
    dosages = rng.binomial(2, rng.uniform(0.03, 0.97, m), (n, m)).astype(np.float32)  # ALT often the major allele
    dosages[rng.random((n, m)) < 0.02] = np.nan
    ids = [f"s{i}" for i in range(n)]
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(1, m + 1) * 1000, "id": [f"rs{j}" for j in range(m)],
                             "ref": "A", "alt": "G"})
    geno = Genotypes(dosages, ids, variants)
    to_bed(str(tmp_path / "toy.bed"), dosages, properties={
        "iid": ids, "fid": ids, "sid": variants.id.tolist(), "chromosome": variants.chrom.tolist(),
        "bp_position": variants.pos.to_numpy(), "allele_1": variants.alt.tolist(), "allele_2": variants.ref.tolist()})
    g = np.nan_to_num(dosages[:, :5].astype(float), nan=1.0)
    phen = pd.DataFrame(rng.normal(size=(n, 3)) + g @ rng.normal(0, 0.8, (5, 3)), index=ids, columns=["ya", "yb", "yc"])
    phen.iloc[rng.choice(n, 12, replace=False), 1] = np.nan
    cov = pd.DataFrame({"pc1": rng.normal(size=n), "age": rng.uniform(20, 80, n), "sex": rng.integers(0, 2, n)},
                       index=ids)
    _plink_table(phen, tmp_path / "pheno.txt")
    _plink_table(cov, tmp_path / "covar.txt")
    proc = subprocess.run(["plink2", "--bfile", "toy", "--pheno", "pheno.txt", "--covar", "covar.txt",
                           "--glm", "hide-covar", "log10", "--threads", "1", "--out", "out"],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]

    ours = linear_gwas(geno, phen, cov)
    rel_beta, rel_logp = [], []
    for trait in phen.columns:
        ref = pd.read_csv(tmp_path / f"out.{trait}.glm.linear", sep="\t", na_values=["NA"])
        mine = ours[ours.TRAIT == trait].reset_index(drop=True)
        assert (ref.ID.to_numpy() == mine.ID.to_numpy()).all()
        assert (ref.OBS_CT.to_numpy() == mine.OBS_CT.to_numpy()).all()  # same samples per variant and trait
        sign = np.where(ref.A1 == ref.ALT, 1.0, -1.0)  # plink2's A1 is the minor allele: align to ALT
        ok = ref.BETA.notna().to_numpy()
        assert ok.mean() > 0.99 and mine.BETA[ok].notna().all()
        rel_beta.append(np.abs(sign * ref.BETA - mine.BETA)[ok] / np.abs(mine.BETA[ok]))
        rel_logp.append(np.abs(ref.LOG10_P - mine.LOG10_P)[ok] / np.abs(mine.LOG10_P[ok]))
        np.testing.assert_allclose(ref.SE[ok], mine.SE[ok], rtol=1e-4)
    max_beta, max_logp = float(pd.concat(rel_beta).max()), float(pd.concat(rel_logp).max())
    print(f"max relative difference vs plink2: BETA {max_beta:.2e}, -log10 P {max_logp:.2e}")
    assert max_beta < 1e-4
    assert max_logp < 1e-3
